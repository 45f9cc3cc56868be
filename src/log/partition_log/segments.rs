//! The segment list of a [`PartitionLog`] (Kafka's `LocalLog` segments): the active
//! segment, the first segment, sizes, and rolling to a new segment.
//!
//! What always holds: there is always at least one segment and the last one is the active
//! segment; a roll seals the active segment, snapshots the producer state at the new base
//! offset, and starts the new segment at the log end offset, so a batch never spans two
//! segments; the roll happens before a write that would pass `segment_bytes`, overflow the
//! 4-byte relative offset, or find an index full (never for an empty active segment).

use super::super::segment::Segment;
use super::{LogError, PartitionLog};

impl PartitionLog {
    fn no_active_segment(&self) -> LogError {
        LogError::Corrupt {
            path: self.dir.clone(),
            detail: "the partition has no active segment".to_string(),
        }
    }

    pub(super) fn active(&self) -> Result<&Segment, LogError> {
        self.segments
            .values()
            .next_back()
            .ok_or_else(|| self.no_active_segment())
    }

    pub(super) fn active_mut(&mut self) -> Result<&mut Segment, LogError> {
        let err = self.no_active_segment();
        self.segments.values_mut().next_back().ok_or(err)
    }

    pub(super) fn first_segment_base(&self) -> Result<i64, LogError> {
        self.segments
            .keys()
            .next()
            .copied()
            .ok_or_else(|| self.no_active_segment())
    }

    /// Bytes of batches across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// Rolls the active segment before a write of `bytes` covering offsets `base..=last`
    /// when it would push the segment past `segment_bytes`, when `last` would not fit the
    /// 4-byte relative offset, when an index is full, or when the incoming batches' largest
    /// `timestamp` is more than `segment_ms` after the active segment's first batch.
    pub(super) fn roll_if_needed(
        &mut self,
        base: i64,
        last: i64,
        bytes: usize,
        timestamp: i64,
    ) -> Result<(), LogError> {
        let needs_roll = {
            let active = self.active()?;
            !active.is_empty()
                && (active.size() + bytes as u64 > self.config.segment_bytes
                    || active.needs_roll_for(last)
                    || self
                        .config
                        .segment_ms
                        .is_some_and(|ms| active.is_older_than(ms, timestamp)))
        };
        if needs_roll {
            let r = self.roll(base);
            self.guard(r)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at `new_base` (the log end offset),
    /// snapshotting the producer state at `new_base` as Kafka does on a roll.
    pub(super) fn roll(&mut self, new_base: i64) -> Result<(), LogError> {
        let active = self.active_mut()?;
        if active.is_empty() && active.base_offset() == new_base {
            return Ok(());
        }
        active.seal()?;
        self.producers.take_snapshot(new_base)?;
        let seg = Segment::create(
            &self.dir,
            new_base,
            self.config.index_interval_bytes,
            self.config.index_max_bytes,
        )?;
        tracing::debug!(dir = %self.dir.display(), base_offset = new_base, "rolled a new segment");
        self.segments.insert(new_base, seg);
        self.dir_dirty = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::log::partition_log::test_support::open;
    use crate::log::partition_log::LogConfig;
    use crate::log::test_util::{headers_of, produce, producer_batch, small_config};
    use std::fs;

    #[test]
    fn segment_rolls_at_segment_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let mut log = open(dir.path(), small_config(batch_size * 3));
        for i in 0..10 {
            produce(&mut log, 5, 100, i, 0);
        }
        let bases = log.segment_base_offsets();
        assert_eq!(bases, vec![0, 15, 30, 45]);
        for base in &bases {
            let size = fs::metadata(crate::log::test_util::log_file(dir.path(), *base))
                .unwrap()
                .len();
            assert!(size <= batch_size * 3);
        }
        // A read stops at the end of its segment.
        let r = headers_of(&log.read(0, 1 << 20).unwrap().bytes);
        assert_eq!(r.len(), 3);
        // Every offset is found in the right segment.
        for offset in 0..50 {
            let hs = headers_of(&log.read(offset, 1).unwrap().bytes);
            assert_eq!(hs[0].base_offset, offset / 5 * 5);
        }
        assert_eq!(log.size_bytes(), batch_size * 10);
    }

    #[test]
    fn segment_ms_rolls_by_the_incoming_timestamps_not_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: Some(1_000),
            ..small_config(1 << 20)
        };
        let mut log = open(dir.path(), config);
        produce(&mut log, 1, 10, 1_000, 0);
        produce(&mut log, 1, 10, 2_000, 0);
        assert_eq!(
            log.segment_base_offsets(),
            vec![0],
            "1000 ms apart is not more than 1000"
        );
        produce(&mut log, 1, 10, 2_001, 0);
        assert_eq!(log.segment_base_offsets(), vec![0, 2]);
        // Old timestamps (a 1970 clock, a replay) do not roll every batch.
        produce(&mut log, 1, 10, 5, 0);
        produce(&mut log, 1, 10, 6, 0);
        assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    }

    #[test]
    fn a_full_index_rolls_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            index_interval_bytes: 0,
            index_max_bytes: 48, // 6 offset entries, 4 time entries (one kept for the roll)
            ..small_config(1 << 20)
        };
        let mut log = open(dir.path(), config.clone());
        for i in 0..20 {
            produce(&mut log, 1, 10, i * 10, 0);
        }
        assert!(
            log.segment_base_offsets().len() > 3,
            "{:?}",
            log.segment_base_offsets()
        );
        for offset in 0..20 {
            let hs = headers_of(&log.read(offset, 1).unwrap().bytes);
            assert_eq!(hs[0].base_offset, offset);
        }
        assert_eq!(log.offset_for_timestamp(95), Some((10, 100)));
        log.close().unwrap();
        let mut out = Vec::new();
        let summary = crate::log::dump_path(dir.path(), &mut out).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let log = open(dir.path(), config);
        assert_eq!(log.log_end_offset(), 20);
    }
}
