//! The leader epoch history of one partition: which leader epoch started at which offset,
//! persisted to `leader-epoch-checkpoint` in Kafka's text format (`0`, the entry count, then
//! one `epoch start_offset` line per entry). It answers OffsetForLeaderEpoch and lets
//! consumers and followers detect log divergence.
//!
//! Invariants:
//! - Entries are sorted with strictly increasing epochs and strictly increasing start
//!   offsets; epochs are never negative.
//! - The in-memory list changes only through [`LeaderEpochCache::assign`] and the two
//!   truncations, each of which reports whether it changed anything; the owner then calls
//!   [`LeaderEpochCache::persist`]. On the append path the checkpoint is written *before*
//!   the first batch of a new epoch (as Kafka does), so after a crash the file may run ahead
//!   of the log, never behind it; recovery trims it with `truncate_from_end(log_end_offset)`.
//! - Writes are atomic (see `checkpoint`).

use std::path::{Path, PathBuf};

use super::checkpoint;
use super::error::LogError;

/// File name of the checkpoint in the partition directory.
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const CHECKPOINT_VERSION: u32 = 0;

/// Kafka's UNDEFINED_EPOCH.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One epoch and the first offset written under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The first offset appended with that epoch.
    pub start_offset: i64,
}

/// The epoch history of one partition.
#[derive(Debug)]
pub struct LeaderEpochCache {
    dir: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// An empty cache for the partition in `dir` (nothing is written until `persist`).
    pub fn empty(dir: &Path) -> Self {
        LeaderEpochCache {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        }
    }

    /// Loads the checkpoint from `dir`. `Ok(None)` when there is no checkpoint file; an
    /// error when it exists but cannot be trusted (the caller rebuilds from the log).
    pub fn load(dir: &Path) -> Result<Option<Self>, LogError> {
        let Some(text) = checkpoint::read_optional(dir, CHECKPOINT_FILE)? else {
            return Ok(None);
        };
        let corrupt = |detail: String| LogError::Corrupt {
            path: dir.join(CHECKPOINT_FILE),
            detail,
        };
        let lines = checkpoint::parse_checkpoint(&text, CHECKPOINT_VERSION, 2).map_err(corrupt)?;
        let mut cache = LeaderEpochCache::empty(dir);
        for fields in lines {
            let epoch: i32 = fields[0]
                .parse()
                .map_err(|_| corrupt(format!("epoch {:?} is not a number", fields[0])))?;
            let start_offset: i64 = fields[1]
                .parse()
                .map_err(|_| corrupt(format!("offset {:?} is not a number", fields[1])))?;
            if epoch < 0 || start_offset < 0 {
                return Err(corrupt(format!(
                    "entry ({epoch}, {start_offset}) is negative"
                )));
            }
            if let Some(last) = cache.entries.last() {
                if epoch <= last.epoch || start_offset <= last.start_offset {
                    return Err(corrupt(format!(
                        "entry ({epoch}, {start_offset}) does not follow ({}, {})",
                        last.epoch, last.start_offset
                    )));
                }
            }
            cache.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        Ok(Some(cache))
    }

    /// Writes the checkpoint atomically and durably.
    pub fn persist(&self) -> Result<(), LogError> {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        checkpoint::write_atomic(&self.dir, CHECKPOINT_FILE, text.as_bytes())
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest entry.
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The latest epoch, `None` when nothing was ever written with an epoch.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Only an epoch larger than the latest is
    /// recorded (epochs never decrease); as in Kafka's `LeaderEpochFileCache.assign`, any
    /// trailing entries whose start offset is at or past `start_offset` are dropped first,
    /// because they describe offsets that no longer exist. Returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(latest) = self.latest_epoch() {
            if epoch <= latest {
                return false;
            }
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: the end offset of `requested` epoch.
    ///
    /// - `requested` is -1 (undefined), or larger than every known epoch, or the cache is
    ///   empty: `(-1, -1)`.
    /// - `requested` is the latest epoch: `(requested, log_end_offset)`.
    /// - otherwise, with the next larger epoch `h`: the largest epoch `<= requested` and `h`'s
    ///   start offset; when no epoch `<= requested` exists (the history was truncated from the
    ///   start), Kafka answers `(requested, h.start_offset)` so a follower truncates to the
    ///   leader's earliest known point rather than failing.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The epoch of the record at `offset`: the epoch with the largest start offset `<=
    /// offset`, `None` when `offset` precedes every entry.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .take_while(|e| e.start_offset <= offset)
            .last()
            .map(|e| e.epoch)
    }

    /// Removes every entry whose start offset is `>= end_offset` (the log was truncated to
    /// end there). Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        if end_offset < 0 {
            return false;
        }
        let before = self.entries.len();
        while self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= end_offset)
        {
            self.entries.pop();
        }
        self.entries.len() != before
    }

    /// The log now starts at `start_offset`: entries starting at or before it are removed,
    /// except the latest of them, which is kept with its start offset moved up to
    /// `start_offset` (Kafka's `truncateFromStart`, exclusive of `start_offset`). Returns
    /// whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if covered == 0 {
            return false;
        }
        let kept_epoch = self.entries[covered - 1].epoch;
        let unchanged = covered == 1 && self.entries[0].start_offset == start_offset;
        self.entries.drain(..covered);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: kept_epoch,
                start_offset,
            },
        );
        !unchanged
    }

    /// Drops every entry.
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::empty(Path::new("/nonexistent"));
        for &(e, o) in entries {
            assert!(c.assign(e, o));
        }
        c
    }

    #[test]
    fn assign_only_moves_forward() {
        let mut c = cache(&[(1, 0), (3, 100)]);
        assert!(!c.assign(3, 150), "same epoch is not recorded again");
        assert!(!c.assign(2, 200), "older epoch is ignored");
        assert!(c.assign(5, 200));
        assert_eq!(c.latest_epoch(), Some(5));
        // A newer epoch starting before the latest entry drops the entries it overlaps.
        assert!(c.assign(6, 100));
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 6,
                    start_offset: 100
                }
            ]
        );
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 0), (3, 100), (5, 250)]);
        let leo = 300;
        assert_eq!(c.end_offset_for(-1, leo), (-1, -1));
        assert_eq!(c.end_offset_for(5, leo), (5, 300), "latest epoch: LEO");
        assert_eq!(c.end_offset_for(1, leo), (1, 100));
        assert_eq!(
            c.end_offset_for(2, leo),
            (1, 100),
            "gap: largest epoch <= 2"
        );
        assert_eq!(c.end_offset_for(3, leo), (3, 250));
        assert_eq!(c.end_offset_for(4, leo), (3, 250));
        assert_eq!(c.end_offset_for(6, leo), (-1, -1), "above every epoch");
        assert_eq!(c.end_offset_for(0, leo), (0, 0), "below the first epoch");
        let empty = cache(&[]);
        assert_eq!(empty.end_offset_for(0, 10), (-1, -1));
    }

    #[test]
    fn truncations_match_kafka() {
        let mut c = cache(&[(1, 0), (3, 100), (5, 250)]);
        assert!(!c.truncate_from_end(300));
        assert!(c.truncate_from_end(250));
        assert_eq!(c.latest_epoch(), Some(3));
        assert!(c.truncate_from_start(150));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 150
            }]
        );
        assert!(!c.truncate_from_start(150));
        assert!(!c.truncate_from_start(10));
        assert_eq!(c.epoch_for_offset(149), None);
        assert_eq!(c.epoch_for_offset(500), Some(3));
    }

    #[test]
    fn checkpoint_round_trips_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LeaderEpochCache::load(dir.path()).unwrap().is_none());
        let mut c = LeaderEpochCache::empty(dir.path());
        c.assign(0, 0);
        c.assign(4, 42);
        c.persist().unwrap();
        let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n4 42\n");
        let loaded = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.entries(), c.entries());
    }

    #[test]
    fn corrupt_checkpoint_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "0\n2\n3 10\n1 20\n").unwrap();
        let e = LeaderEpochCache::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("does not follow"), "{e}");
    }
}
