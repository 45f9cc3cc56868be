//! Opening and closing a [`PartitionLog`]: [`PartitionLog::open`] recovers the directory
//! (see `recovery`) and restores the log start offset, the leader epoch history and the
//! producer state; [`PartitionLog::close`] / [`PartitionLog::shutdown`] seal, flush and
//! snapshot, then leave the clean-shutdown marker; [`PartitionLog::delete`] removes the
//! directory.
//!
//! What always holds: the marker exists only while no `PartitionLog` has the directory open
//! (open removes it, and syncs the directory, before it recovers anything), and it is written last
//! on shutdown, after everything it vouches for is on disk; an offline log never writes it.
//! After `shutdown` every write fails with [`LogError::Closed`].

use std::fs;
use std::path::Path;

use super::super::checkpoint;
use super::super::epoch_cache::LeaderEpochCache;
use super::super::producer_state::ProducerStateManager;
use super::super::recovery;
use super::super::segment::Segment;
use super::log_start::read_log_start_offset;
use super::{LogConfig, LogError, PartitionLog};

/// Marker written by [`PartitionLog::close`]; its presence at open means the last segment
/// was sealed and flushed, so recovery only checks its tail.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

impl PartitionLog {
    /// Opens (creating if needed) the partition directory `dir` and recovers it: see
    /// `recovery` for what is checked. Also restores the log start offset and the leader
    /// epoch history (rebuilt from the batches when the checkpoint is missing or corrupt).
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
        config.validate()?;
        fs::create_dir_all(dir).map_err(|e| LogError::io("create directory", dir, e))?;
        let clean = checkpoint::remove_optional(dir, CLEAN_SHUTDOWN_FILE)?;
        if clean {
            // The marker must not come back after a power loss during this run.
            checkpoint::sync_dir(dir)?;
        }
        super::super::cleaner::swap::recover(dir)?;
        let recovered = recovery::load_segments(dir, &config, clean)?;
        let txn_rebuild_from = recovered.txn_rebuild_from;
        let stored_lso = read_log_start_offset(dir)?;

        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            segments: recovered.segments,
            log_start_offset: 0,
            log_end_offset: 0,
            epoch_cache: LeaderEpochCache::empty(dir),
            producers: ProducerStateManager::empty(dir),
            unflushed_messages: 0,
            last_flush_ms: None,
            dir_dirty: false,
            offline: false,
            closed: false,
            first_dirty_offset: super::compact::read_cleaner_checkpoint(dir),
            layout_version: 0,
            config,
        };
        if log.segments.is_empty() {
            let base = stored_lso.unwrap_or(0).max(0);
            let seg = Segment::create(
                dir,
                base,
                log.config.index_interval_bytes,
                log.config.index_max_bytes,
            )?;
            log.segments.insert(base, seg);
            log.dir_dirty = true;
        }
        log.log_end_offset = log.active()?.next_offset();

        let (mut cache, mut changed) = match LeaderEpochCache::load(dir) {
            Ok(Some(cache)) => (cache, false),
            Ok(None) => {
                let cache = log.epoch_cache_from_batches()?;
                let rebuilt = !cache.entries().is_empty();
                (cache, rebuilt)
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "{e}; rebuilding it from the log");
                (log.epoch_cache_from_batches()?, true)
            }
        };
        for (epoch, start) in recovered.epoch_starts {
            changed |= cache.assign(epoch, start);
        }
        log.epoch_cache = cache;

        let first_base = log.first_segment_base()?;
        let lso = stored_lso.unwrap_or(first_base).max(first_base);
        if lso > log.log_end_offset {
            tracing::warn!(
                dir = %dir.display(),
                "the stored log start offset {lso} is past the log end offset {}; starting \
                 an empty log at {lso}",
                log.log_end_offset
            );
            log.truncate_fully_and_start_at(lso)?;
        } else {
            log.log_start_offset = lso;
        }
        changed |= log.epoch_cache.truncate_from_end(log.log_end_offset);
        changed |= log.epoch_cache.truncate_from_start(log.log_start_offset);
        if changed {
            log.epoch_cache.persist()?;
        }
        log.delete_segments_below_log_start()?;
        log.load_producer_state(txn_rebuild_from)?;
        Ok(log)
    }

    /// Deletes the partition directory with everything in it (topic deletion).
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).map_err(|e| LogError::io("delete directory", &dir, e))
    }

    /// Seals the active segment, flushes everything, snapshots the producer state at the log
    /// end offset and leaves the clean-shutdown marker, so the next open only checks the last
    /// segment's tail and replays no batch for the producer state. An offline log is closed
    /// without the marker (the next open recovers it fully) and reports why.
    pub fn close(mut self) -> Result<(), LogError> {
        self.shutdown()
    }

    /// [`close`](Self::close) for a log that lives behind a lock: does the same, then refuses
    /// every later write with [`LogError::Closed`] (reads keep working). Calling it twice is
    /// harmless.
    pub fn shutdown(&mut self) -> Result<(), LogError> {
        if self.closed {
            return Ok(());
        }
        self.check_online()?;
        let r = self.active_mut().and_then(Segment::seal);
        self.guard(r)?;
        self.flush()?;
        let r = self.producers.take_snapshot(self.log_end_offset);
        self.guard(r)?;
        let r = checkpoint::write_atomic(&self.dir, CLEAN_SHUTDOWN_FILE, b"");
        self.guard(r)?;
        self.closed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::log::batch::validate_producer_batches;
    use crate::log::partition_log::test_support::open;
    use crate::log::test_util::{headers_of, produce, producer_batch, small_config};

    #[test]
    fn clean_close_then_reopen_continues_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(1 << 20);
        let mut log = open(dir.path(), config.clone());
        for i in 0..100 {
            produce(&mut log, 3, 50, i, 0);
        }
        log.close().unwrap();
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        let mut log = open(dir.path(), config.clone());
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        assert_eq!(log.log_end_offset(), 300);
        for i in 100..200 {
            produce(&mut log, 3, 50, i, 0);
        }
        for offset in (0..600).step_by(13) {
            let hs = headers_of(&log.read(offset, 1).unwrap().bytes);
            assert_eq!(hs[0].base_offset, offset / 3 * 3);
        }
        let mut out = Vec::new();
        let summary = crate::log::dump_path(dir.path(), &mut out).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    }

    #[test]
    fn shutdown_behind_a_lock_refuses_later_writes_but_serves_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        produce(&mut log, 3, 10, 1, 0);
        log.shutdown().unwrap();
        log.shutdown().unwrap();
        let bytes = producer_batch(1, 1, 1);
        let hs = validate_producer_batches(&bytes, 1 << 20).unwrap();
        let e = log.append(&bytes, &hs, 0, 0).unwrap_err();
        assert!(matches!(e, LogError::Closed { .. }));
        assert_eq!(e.kafka_error_code(), 6);
        assert_eq!(headers_of(&log.read(0, 100).unwrap().bytes).len(), 1);
        drop(log);
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        assert_eq!(open(dir.path(), LogConfig::default()).log_end_offset(), 3);
    }
}
