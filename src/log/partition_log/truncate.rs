//! Truncating a [`PartitionLog`] (replication): [`PartitionLog::truncate_to`] removes every
//! batch at or after an offset; [`PartitionLog::truncate_fully_and_start_at`] empties the log
//! and restarts it at an offset.
//!
//! What always holds: truncation is at batch granularity (a batch containing the offset goes
//! whole); afterwards the last remaining segment is active again, the epoch history ends at
//! the new log end offset, and the producer state describes exactly the batches kept
//! (rebuilt from the snapshots and batches below the new end).

use super::super::segment::Segment;
use super::{LogError, PartitionLog};

impl PartitionLog {
    /// Removes every record at or after `offset` (for replication: a follower truncating to
    /// the leader's log). Truncation is at batch granularity: a batch containing `offset` is
    /// removed whole, so the new log end offset is `offset` or the start of that batch. The
    /// epoch history is truncated to the new end, and the producer state is rebuilt for it
    /// (snapshots above the new end deleted, the newest remaining one loaded, later batches
    /// replayed). With `offset` before the first segment, the log is emptied and restarts at
    /// `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.layout_version += 1;
        self.first_dirty_offset = self.first_dirty_offset.min(offset);
        self.check_online()?;
        if offset < 0 {
            return Err(self.invalid_append(format!("cannot truncate to offset {offset}")));
        }
        if offset >= self.log_end_offset {
            return Ok(());
        }
        if self.first_segment_base()? > offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let later: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in later {
            if let Some(seg) = self.segments.remove(&base) {
                let r = seg.delete();
                self.guard(r)?;
                self.dir_dirty = true;
            }
        }
        let index_max = self.config.index_max_bytes;
        let r = self.active_mut().and_then(|seg| {
            seg.truncate_to(offset)?;
            if !seg.is_active() {
                seg.activate(index_max)?;
            }
            Ok(seg.next_offset())
        });
        self.log_end_offset = self.guard(r)?;
        if offset < self.log_start_offset {
            self.log_start_offset = offset;
            let r = self.persist_log_start_offset();
            self.guard(r)?;
        }
        if self.epoch_cache.truncate_from_end(self.log_end_offset) {
            let r = self.epoch_cache.persist();
            self.guard(r)?;
        }
        let r = self.load_producer_state(None);
        self.guard(r)?;
        Ok(())
    }

    /// Deletes every segment and starts an empty log at `offset` (Kafka's
    /// `truncateFullyAndStartAt`); the epoch history and the producer state are cleared.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.layout_version += 1;
        self.first_dirty_offset = offset;
        self.log_start_offset = offset;
        let r = self.persist_log_start_offset();
        self.guard(r)?;
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for base in bases {
            if let Some(seg) = self.segments.remove(&base) {
                let r = seg.delete();
                self.guard(r)?;
            }
        }
        let r = Segment::create(
            &self.dir,
            offset,
            self.config.index_interval_bytes,
            self.config.index_max_bytes,
        );
        let seg = self.guard(r)?;
        self.segments.insert(offset, seg);
        self.log_end_offset = offset;
        self.dir_dirty = true;
        if self.epoch_cache.clear() {
            let r = self.epoch_cache.persist();
            self.guard(r)?;
        }
        let r = self.producers.truncate_fully();
        self.guard(r)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::log::partition_log::test_support::open;
    use crate::log::test_util::{produce, producer_batch, small_config};

    #[test]
    fn truncate_to_drops_later_records_and_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let mut log = open(dir.path(), small_config(batch_size * 2));
        for i in 0..4 {
            produce(&mut log, 5, 100, i, 0);
        }
        for i in 4..8 {
            produce(&mut log, 5, 100, i, 1);
        }
        assert_eq!(log.segment_base_offsets(), vec![0, 10, 20, 30]);
        log.truncate_to(12).unwrap();
        assert_eq!(log.log_end_offset(), 10, "the batch holding 12 goes whole");
        assert_eq!(log.segment_base_offsets(), vec![0, 10]);
        log.truncate_to(20).unwrap();
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(log.latest_epoch(), Some(0));
        assert_eq!(produce(&mut log, 5, 100, 9, 2).base_offset, 10);
        assert_eq!(log.end_offset_for_epoch(0), (0, 10));
        drop(log);
        let log = open(dir.path(), small_config(batch_size * 2));
        assert_eq!(log.log_end_offset(), 15);
    }
}
