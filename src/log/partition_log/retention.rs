//! Retention of a [`PartitionLog`]: deleting whole segments, oldest first, below the log
//! start offset, beyond `retention_bytes` and older than `retention_ms`, and forgetting
//! producers idle for a day.
//!
//! What always holds: only whole segments are deleted, oldest first; the log start offset
//! moves to the first remaining segment and is persisted before any segment is deleted;
//! when every segment is to go, the active one is rolled first so an empty active segment
//! remains; the epoch history is trimmed to the new log start offset.

use super::{LogError, PartitionLog};

impl PartitionLog {
    /// Deletes whole segments that retention no longer keeps, oldest first, as Kafka does:
    /// segments entirely below the log start offset; then, with `retention_bytes`, the oldest
    /// segments while the log would still be at least `retention_bytes` without them; then,
    /// with `retention_ms`, the oldest segments whose largest timestamp is more than
    /// `retention_ms` before `now_ms`. The active segment counts too: when every segment is
    /// to go, the active one is rolled first so an empty active segment remains. Advances and
    /// persists the log start offset. Returns the number of segments deleted.
    ///
    /// Producer state outlives the deleted batches (KIP-360, so a producer whose batches
    /// expired is not told its id is unknown); producers idle for a day are forgotten here.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        self.check_online()?;
        let expired = self.producers.remove_expired(now_ms);
        if expired > 0 {
            tracing::debug!(dir = %self.dir.display(), expired, "forgot idle producers");
        }
        let mut deleted = self.delete_segments_below_log_start()?;

        if let Some(limit) = self.config.effective_retention_bytes() {
            let size = self.size_bytes() as i64;
            if size >= limit {
                let mut excess = size - limit;
                let mut n = 0;
                for (i, seg) in self.segments.values().enumerate() {
                    let last_and_empty = i + 1 == self.segments.len() && seg.is_empty();
                    if last_and_empty || excess < seg.size() as i64 {
                        break;
                    }
                    excess -= seg.size() as i64;
                    n += 1;
                }
                deleted += self.delete_oldest(n, "retention_bytes")?;
            }
        }

        if let Some(retention_ms) = self.config.effective_retention_ms() {
            let mut n = 0;
            for (i, seg) in self.segments.values().enumerate() {
                let last_and_empty = i + 1 == self.segments.len() && seg.is_empty();
                if last_and_empty
                    || now_ms.saturating_sub(seg.largest_timestamp_for_retention()) <= retention_ms
                {
                    break;
                }
                n += 1;
            }
            deleted += self.delete_oldest(n, "retention_ms")?;
        }
        Ok(deleted)
    }

    /// Deletes segments whose successor starts at or below the log start offset.
    pub(super) fn delete_segments_below_log_start(&mut self) -> Result<usize, LogError> {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let n = bases
            .windows(2)
            .take_while(|pair| pair[1] <= self.log_start_offset)
            .count();
        self.delete_oldest(n, "log start offset")
    }

    /// Deletes the `n` oldest segments (rolling first if that is all of them), moving the
    /// log start offset to the first remaining segment.
    fn delete_oldest(&mut self, n: usize, reason: &str) -> Result<usize, LogError> {
        if n == 0 {
            return Ok(0);
        }
        if n >= self.segments.len() {
            let r = self.roll(self.log_end_offset);
            self.guard(r)?;
        }
        let bases: Vec<i64> = self.segments.keys().take(n).copied().collect();
        let Some(new_first) = self.segments.keys().nth(n).copied() else {
            return Ok(0);
        };
        if new_first > self.log_start_offset {
            self.log_start_offset = new_first;
            let r = self.persist_log_start_offset();
            self.guard(r)?;
            self.producers.on_log_start_offset(new_first);
        }
        for base in bases {
            if let Some(seg) = self.segments.remove(&base) {
                tracing::info!(
                    dir = %self.dir.display(),
                    base_offset = base,
                    size = seg.size(),
                    "deleting segment {} ({reason}); the log now starts at offset {}",
                    seg.log_path().display(),
                    self.log_start_offset
                );
                let r = seg.delete();
                self.guard(r)?;
            }
        }
        self.dir_dirty = true;
        if self.epoch_cache.truncate_from_start(self.log_start_offset) {
            let r = self.epoch_cache.persist();
            self.guard(r)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::log::partition_log::test_support::open;
    use crate::log::test_util::{produce, producer_batch, small_config};

    #[test]
    fn retention_by_time_deletes_expired_segments_and_rolls_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let mut config = small_config(batch_size * 2);
        config.retention_ms = Some(1_000);
        let mut log = open(dir.path(), config);
        for i in 0..6 {
            produce(&mut log, 5, 100, 10_000 + i, 0);
        }
        produce(&mut log, 5, 100, 50_000, 0);
        assert_eq!(log.segment_base_offsets(), vec![0, 10, 20, 30]);
        assert_eq!(
            log.apply_retention(10_500).unwrap(),
            0,
            "nothing old enough yet"
        );
        assert_eq!(log.apply_retention(40_000).unwrap(), 3);
        assert_eq!(log.segment_base_offsets(), vec![30]);
        assert_eq!(log.log_start_offset(), 30);
        assert!(log.read(0, 100).is_err());
        // Everything expired: the active segment is rolled, then deleted.
        assert_eq!(log.apply_retention(100_000).unwrap(), 1);
        assert_eq!(log.segment_base_offsets(), vec![35]);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (35, 35));
        assert_eq!(
            log.apply_retention(200_000).unwrap(),
            0,
            "empty active stays"
        );
        let info = produce(&mut log, 1, 10, 300_000, 0);
        assert_eq!(info.base_offset, 35);
        assert_eq!(info.log_start_offset, 35);
    }

    #[test]
    fn retention_by_bytes_keeps_at_least_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let mut config = small_config(batch_size * 2);
        config.retention_bytes = Some((batch_size * 5) as i64);
        let mut log = open(dir.path(), config);
        for i in 0..9 {
            produce(&mut log, 5, 100, i, 0);
        }
        assert_eq!(log.segment_base_offsets(), vec![0, 10, 20, 30, 40]);
        assert_eq!(log.apply_retention(0).unwrap(), 2);
        assert_eq!(log.segment_base_offsets(), vec![20, 30, 40]);
        assert!(log.size_bytes() >= batch_size * 5);
        assert_eq!(log.log_start_offset(), 20);
        assert_eq!(log.apply_retention(0).unwrap(), 0);
    }
}
