//! The log start offset of a [`PartitionLog`]: moving it up (DeleteRecords on the leader, the
//! leader's log start taken by a follower) and its `log-start-offset` file (a version line
//! `0`, then the offset).
//!
//! What always holds: the log start offset only grows and never passes the log end offset;
//! it is persisted before any segment below it is deleted; the file is replaced
//! atomically; a malformed file is reported and ignored (the first segment's base offset
//! then applies), never fatal.

use std::path::Path;

use super::super::checkpoint;
use super::{LogError, PartitionLog};

/// File holding the persisted log start offset: a version line `0`, then the offset.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";

impl PartitionLog {
    /// Moves the log start offset up to `offset` (capped at the log end offset), as Kafka's
    /// `maybeIncrementLogStartOffset`: records below it are no longer read (OFFSET_OUT_OF_RANGE,
    /// ListOffsets earliest answers it), segments wholly below it are deleted at once, and
    /// the epoch history is trimmed to it. Whether it moved.
    pub fn increment_log_start_offset(&mut self, offset: i64) -> Result<bool, LogError> {
        self.check_online()?;
        let offset = offset.min(self.log_end_offset);
        if offset <= self.log_start_offset {
            return Ok(false);
        }
        self.log_start_offset = offset;
        let r = self.persist_log_start_offset();
        self.guard(r)?;
        if self.epoch_cache.truncate_from_start(offset) {
            let r = self.epoch_cache.persist();
            self.guard(r)?;
        }
        self.delete_segments_below_log_start()?;
        self.producers.on_log_start_offset(offset);
        tracing::info!(dir = %self.dir.display(), log_start_offset = offset, "log start offset moved up");
        Ok(true)
    }

    pub(super) fn persist_log_start_offset(&self) -> Result<(), LogError> {
        checkpoint::write_offset(&self.dir, LOG_START_OFFSET_FILE, self.log_start_offset)
    }
}

/// Reads `log-start-offset`; a malformed file is reported and ignored (the first segment's
/// base offset then applies).
pub(super) fn read_log_start_offset(dir: &Path) -> Result<Option<i64>, LogError> {
    let Some(text) = checkpoint::read_optional(dir, LOG_START_OFFSET_FILE)? else {
        return Ok(None);
    };
    let parsed = checkpoint::parse_offset(&text);
    if parsed.is_none() {
        tracing::warn!(
            file = %dir.join(LOG_START_OFFSET_FILE).display(),
            "ignoring a malformed log start offset file; the log starts at its first segment"
        );
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::log::partition_log::test_support::open;
    use crate::log::partition_log::LogConfig;
    use crate::log::test_util::{produce, producer_batch, small_config};
    use std::fs;

    #[test]
    fn log_start_offset_is_persisted_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let mut config = small_config(batch_size * 2);
        config.retention_bytes = Some(0);
        let mut log = open(dir.path(), config.clone());
        for i in 0..5 {
            produce(&mut log, 5, 100, i, 0);
        }
        log.apply_retention(0).unwrap();
        let (lso, leo) = (log.log_start_offset(), log.log_end_offset());
        assert!(lso > 0);
        log.close().unwrap();
        let text = fs::read_to_string(dir.path().join(LOG_START_OFFSET_FILE)).unwrap();
        assert_eq!(text, format!("0\n{lso}\n"));
        let log = open(dir.path(), config);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (lso, leo));
    }

    #[test]
    fn an_incremented_log_start_offset_hides_older_records_and_deletes_whole_segments() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let config = small_config(batch_size * 2);
        let mut log = open(dir.path(), config.clone());
        for i in 0..5 {
            produce(&mut log, 5, 100, i, 0);
        }
        // Segments hold offsets 0-9, 10-19, 20-24; the log ends at 25.
        assert_eq!(log.segment_base_offsets(), vec![0, 10, 20]);
        assert!(log.increment_log_start_offset(12).unwrap());
        assert_eq!(log.log_start_offset(), 12);
        assert_eq!(log.segment_base_offsets(), vec![10, 20]);
        assert_eq!(log.read(11, 1 << 20).unwrap_err().kafka_error_code(), 1);
        assert!(!log.read(12, 1 << 20).unwrap().bytes.is_empty());
        assert!(
            !log.increment_log_start_offset(5).unwrap(),
            "it never goes back"
        );
        assert!(log.increment_log_start_offset(100).unwrap());
        assert_eq!(log.log_start_offset(), 25, "capped at the log end");
        log.close().unwrap();
        let log = open(dir.path(), config);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (25, 25));
    }

    #[test]
    fn stored_log_start_offset_past_the_end_starts_an_empty_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        produce(&mut log, 5, 10, 1, 0);
        drop(log);
        fs::write(dir.path().join(LOG_START_OFFSET_FILE), "0\n100\n").unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
        assert_eq!(produce(&mut log, 1, 10, 2, 0).base_offset, 100);
    }
}
