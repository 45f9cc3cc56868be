//! ListOffsets lookups on a [`PartitionLog`]: the first record at or after a timestamp, and
//! the record with the largest timestamp.
//!
//! What always holds: answers are at or after the log start offset and record-exact except
//! inside a compressed batch too large to inflate (then the batch's first offset, which may
//! be early but never skips a record); the infallible forms answer a disk error with `None`
//! and log it.

use super::super::segment::Segment;
use super::{LogError, PartitionLog};

impl PartitionLog {
    /// ListOffsets by timestamp: the first record with timestamp `>= ts` at or after the log
    /// start offset, as `(offset, timestamp)`; `None` when every record is older. Special
    /// negative timestamps (-1 latest, -2 earliest, -3 max) are the caller's to map.
    ///
    /// Exact for every batch: a compressed CreateTime batch is inflated (within a bound) to
    /// find the record, as Kafka does; one that inflates beyond the bound is answered with
    /// its first offset, which may point a few records early but never skips a record.
    ///
    /// A disk error while looking is logged and answered as `None`; use
    /// [`try_offset_for_timestamp`](Self::try_offset_for_timestamp) to get the error.
    pub fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        self.try_offset_for_timestamp(ts)
            .unwrap_or_else(|e| self.lookup_failed("a timestamp lookup", e))
    }

    /// [`offset_for_timestamp`](Self::offset_for_timestamp) that reports read errors.
    pub fn try_offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        for seg in self.segments.values() {
            if seg.next_offset() <= self.log_start_offset || seg.max_timestamp() < ts {
                continue;
            }
            if let Some(found) = seg.offset_for_timestamp(ts, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the record with the largest timestamp (the earliest one on
    /// ties), as `(offset, timestamp)`; `None` for an empty log or one without timestamps.
    /// Record-exact except in compressed CreateTime batches (see
    /// `Segment::max_timestamp_record`).
    ///
    /// A disk error while looking is logged and answered as `None`; use
    /// [`try_max_timestamp_offset`](Self::try_max_timestamp_offset) to get the error.
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        self.try_max_timestamp_offset()
            .unwrap_or_else(|e| self.lookup_failed("a max-timestamp lookup", e))
    }

    /// [`max_timestamp_offset`](Self::max_timestamp_offset) that reports read errors.
    pub fn try_max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<&Segment> = None;
        for seg in self.segments.values() {
            if seg.max_timestamp() >= 0
                && best.is_none_or(|b| seg.max_timestamp() > b.max_timestamp())
            {
                best = Some(seg);
            }
        }
        match best {
            Some(seg) => seg.max_timestamp_record(),
            None => Ok(None),
        }
    }

    fn lookup_failed(&self, what: &str, e: LogError) -> Option<(i64, i64)> {
        tracing::warn!(dir = %self.dir.display(), "{what} failed and was answered as not found: {e}");
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::log::batch::validate_producer_batches;
    use crate::log::partition_log::test_support::open;
    use crate::log::partition_log::LogConfig;
    use crate::log::test_util::{produce, producer_batch, small_config};

    #[test]
    fn time_index_lookup_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let mut log = open(dir.path(), small_config(batch_size * 4));
        for i in 0..20 {
            // batch i: timestamps 10_000 + 100 i + (0..5)
            produce(&mut log, 5, 100, 10_000 + 100 * i, 0);
        }
        assert_eq!(log.offset_for_timestamp(0), Some((0, 10_000)));
        assert_eq!(log.offset_for_timestamp(10_502), Some((27, 10_502)));
        assert_eq!(log.offset_for_timestamp(10_505), Some((30, 10_600)));
        assert_eq!(log.offset_for_timestamp(11_904), Some((99, 11_904)));
        assert_eq!(log.offset_for_timestamp(11_905), None);
        assert_eq!(log.max_timestamp_offset(), Some((99, 11_904)));
    }

    #[test]
    fn max_timestamp_offset_finds_the_record_not_the_batch_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        produce(&mut log, 3, 10, 100, 0);
        let mut b = crate::log::RecordBatchBuilder::new();
        for ts in [150, 900, 200] {
            b.push(ts, None, Some(b"v"), &[]);
        }
        let bytes = b.build();
        let hs = validate_producer_batches(&bytes, 1 << 20).unwrap();
        log.append(&bytes, &hs, 0, 0).unwrap();
        produce(&mut log, 3, 10, 300, 0);
        assert_eq!(log.max_timestamp_offset(), Some((4, 900)));
        assert_eq!(log.offset_for_timestamp(160), Some((4, 900)));
    }
}
