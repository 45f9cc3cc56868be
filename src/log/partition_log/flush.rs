//! Flushing a [`PartitionLog`]: the flush policy applied after each write
//! ([`FlushPolicy`]), explicit and periodic flushes, and `fdatasync` of the segments and of
//! the directory when segments were created or deleted.
//!
//! What always holds: with [`FlushPolicy::Always`] an append returns only after its bytes
//! are synced; a flush failure takes the log offline, so nothing that may be lost is
//! acknowledged afterwards; the unflushed-record count is reset only by a successful flush.

use super::super::checkpoint;
use super::super::segment::Segment;
use super::{FlushPolicy, LogError, PartitionLog};

impl PartitionLog {
    /// Counts `records` newly written and applies the flush policy
    /// ([`FlushPolicy::Always`]: `fdatasync` now; `EveryMessages(n)`: once `n` are unflushed).
    pub(super) fn after_write(&mut self, records: i64, now_ms: i64) -> Result<(), LogError> {
        self.unflushed_messages += records as u64;
        self.last_flush_ms.get_or_insert(now_ms);
        match self.config.flush {
            FlushPolicy::Always => self.flush(),
            FlushPolicy::EveryMessages(n) if self.unflushed_messages >= n => self.flush(),
            _ => Ok(()),
        }
    }

    /// Forces every segment written since the last flush to disk (`fdatasync`), and the
    /// directory when segments were created or deleted. A failure takes the log offline.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.check_online()?;
        for seg in self.segments.values_mut() {
            if seg.is_dirty() {
                if let Err(e) = seg.flush() {
                    return self.guard(Err(e));
                }
            }
        }
        if self.dir_dirty {
            let r = checkpoint::sync_dir(&self.dir);
            self.guard(r)?;
            self.dir_dirty = false;
        }
        self.unflushed_messages = 0;
        Ok(())
    }

    /// With [`FlushPolicy::IntervalMs`], flushes when the interval has passed since the last
    /// flush and something is unflushed; meant to be called periodically by a background
    /// task. Returns whether it flushed. Other policies: does nothing.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<bool, LogError> {
        let FlushPolicy::IntervalMs(interval) = self.config.flush else {
            return Ok(false);
        };
        let last = *self.last_flush_ms.get_or_insert(now_ms);
        let unflushed = self.dir_dirty || self.segments.values().any(Segment::is_dirty);
        if !unflushed || now_ms.saturating_sub(last) < interval as i64 {
            return Ok(false);
        }
        self.flush()?;
        self.last_flush_ms = Some(now_ms);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::log::partition_log::test_support::open;
    use crate::log::partition_log::LogConfig;
    use crate::log::test_util::{produce, small_config};

    #[test]
    fn flush_policies_do_not_change_what_is_stored() {
        for policy in [
            FlushPolicy::Never,
            FlushPolicy::Always,
            FlushPolicy::EveryMessages(7),
            FlushPolicy::IntervalMs(100),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                flush: policy,
                ..small_config(4096)
            };
            let mut log = open(dir.path(), config.clone());
            for i in 0..20 {
                produce(&mut log, 3, 100, i, 0);
                log.flush_if_due(i * 10).unwrap();
            }
            if policy == FlushPolicy::IntervalMs(100) {
                produce(&mut log, 1, 1, 1_000, 0);
                assert!(log.flush_if_due(10_000).unwrap(), "due after the interval");
                assert!(!log.flush_if_due(10_001).unwrap(), "nothing left to flush");
            }
            log.flush().unwrap();
            let leo = log.log_end_offset();
            drop(log);
            let log = open(dir.path(), config);
            assert_eq!(log.log_end_offset(), leo, "policy {policy:?}");
        }
    }
}
