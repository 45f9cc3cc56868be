//! The leader epoch history of a [`PartitionLog`] as the log uses it: the latest epoch,
//! OffsetForLeaderEpoch answers, the epoch of an offset, a new leader's epoch, and the
//! history rebuilt from the batches when the checkpoint is missing.
//!
//! What always holds: epochs never decrease (only an epoch above the latest is recorded),
//! and a new epoch is persisted to `leader-epoch-checkpoint` before the first batch that
//! carries it is written.

use super::super::epoch_cache::LeaderEpochCache;
use super::super::recovery;
use super::{LogError, PartitionLog};

impl PartitionLog {
    /// The latest leader epoch written to this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epoch_cache.latest_epoch()
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)` per Kafka's `endOffsetFor` (see
    /// `LeaderEpochCache::end_offset_for`); `(-1, -1)` when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epoch_cache.end_offset_for(epoch, self.log_end_offset)
    }

    /// The leader epoch under which `offset` was written, if known (for the `leader_epoch`
    /// field of ListOffsets and Fetch answers).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epoch_cache.epoch_for_offset(offset)
    }

    /// Records that this replica leads from `epoch` on, starting at the log end offset (as
    /// Kafka's new leader does), so OffsetForLeaderEpoch from followers sees the new epoch
    /// before the first write in it.
    pub fn begin_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        self.check_online()?;
        if epoch < 0 || self.epoch_cache.latest_epoch().is_some_and(|e| epoch <= e) {
            return Ok(());
        }
        if self.epoch_cache.assign(epoch, self.log_end_offset) {
            let r = self.epoch_cache.persist();
            self.guard(r)?;
        }
        Ok(())
    }

    pub(super) fn epoch_cache_from_batches(&self) -> Result<LeaderEpochCache, LogError> {
        let mut cache = LeaderEpochCache::empty(&self.dir);
        for (epoch, start) in recovery::scan_epochs(&self.segments)? {
            cache.assign(epoch, start);
        }
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::log::batch::validate_producer_batches;
    use crate::log::epoch_cache::CHECKPOINT_FILE;
    use crate::log::partition_log::test_support::open;
    use crate::log::partition_log::LogConfig;
    use crate::log::test_util::{produce, producer_batch};
    use std::fs;

    #[test]
    fn epochs_are_recorded_persisted_and_answered_like_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        assert_eq!(log.latest_epoch(), None);
        assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
        produce(&mut log, 5, 10, 1, 0); // epoch 0: 0..5
        produce(&mut log, 5, 10, 2, 0);
        produce(&mut log, 5, 10, 3, 3); // epoch 3: 10..
        assert_eq!(log.latest_epoch(), Some(3));
        assert_eq!(log.end_offset_for_epoch(0), (0, 10));
        assert_eq!(log.end_offset_for_epoch(2), (0, 10));
        assert_eq!(log.end_offset_for_epoch(3), (3, 15));
        assert_eq!(log.end_offset_for_epoch(4), (-1, -1));
        assert_eq!(log.epoch_for_offset(12), Some(3));
        let e = log.append(&producer_batch(1, 1, 1), &[], 2, 0).unwrap_err();
        assert!(matches!(e, LogError::InvalidAppend { .. }));
        let bytes = producer_batch(1, 1, 1);
        let hs = validate_producer_batches(&bytes, 1 << 20).unwrap();
        let e = log.append(&bytes, &hs, 2, 0).unwrap_err();
        assert!(matches!(e, LogError::StaleLeaderEpoch { .. }), "{e}");
        assert_eq!(e.kafka_error_code(), 74);
        drop(log);

        let text = fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n3 10\n");
        let log = open(dir.path(), LogConfig::default());
        assert_eq!(log.end_offset_for_epoch(0), (0, 10));

        // A missing checkpoint is rebuilt from the batches' leader epochs.
        drop(log);
        fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
        let log = open(dir.path(), LogConfig::default());
        assert_eq!(log.end_offset_for_epoch(0), (0, 10));
        assert_eq!(log.latest_epoch(), Some(3));
        assert!(dir.path().join(CHECKPOINT_FILE).exists());
    }
}
