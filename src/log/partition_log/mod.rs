//! [`PartitionLog`]: the log of one partition. It owns the segments, the log start and end
//! offsets, the leader epoch history and the config, and is the only writer of its
//! directory.
//!
//! Invariants:
//! - There is always at least one segment; the last one is the active segment (appends go
//!   there), every other one is sealed.
//! - `log_start_offset <= log_end_offset`, and the first segment's base offset is `<=
//!   log_start_offset`. The log end offset is the active segment's next offset.
//! - Offsets are assigned consecutively from the log end offset; a batch never spans two
//!   segments.
//! - A new leader epoch is written to `leader-epoch-checkpoint` before the first batch that
//!   carries it, and epochs never decrease (an append with an older epoch is refused).
//! - A moved log start offset is persisted to `log-start-offset` before segments below it
//!   are deleted, so a crash in between only leaves segments that the next open deletes.
//! - After an I/O error on a write or flush path the log is offline: every later write
//!   fails with [`LogError::Offline`], so nothing is acknowledged that the disk may have
//!   lost. Reads still work.
//! - The idempotent-producer state ([`ProducerStateManager`]) always describes the batches
//!   below the log end offset: an append is checked against it before anything is written
//!   (a duplicate writes nothing and is answered with the original offsets, see
//!   [`AppendInfo::duplicate`]) and applied after the write. A snapshot of it is written at
//!   every roll (named for the new segment's base offset) and on shutdown; open loads the
//!   newest one at or below the log end offset and replays the batch headers after it, and a
//!   truncation deletes the snapshots above the new end and rebuilds the state the same way.
//!
//! Concurrency: every method is synchronous and the caller keeps a `PartitionLog` in a
//! `std::sync::Mutex` that it never holds across an `.await`. Because the methods are
//! synchronous they are cancellation-safe: a task cancelled at an `.await` cannot leave an
//! append half done. Appends do blocking file I/O (and `fdatasync` with
//! [`FlushPolicy::Always`]); call them from `spawn_blocking` or accept the short block.
//! To keep a fetch's disk read outside the lock, use [`PartitionLog::plan_read`] under the
//! lock and [`ReadPlan::execute`] after releasing it.
//!
//! The methods are grouped by job, after Apache Kafka's `LocalLog` / `UnifiedLog`, one
//! file each; this file holds the state they share, the accessors, the offline guard and
//! config updates:
//! - `lifecycle`: open (recovery, the stored offsets and histories), close, shutdown,
//!   delete, and the clean-shutdown marker.
//! - `segments`: the segment list, the active segment, and rolling.
//! - `append`: the leader's append (offsets, epochs, LogAppendTime, duplicates) and the
//!   follower's append of replicated batches.
//! - `flush`: the flush policy and `fdatasync` of segments and the directory.
//! - `read`: fetch reads ([`ReadPlan`], [`ReadResult`]).
//! - `lookup`: ListOffsets by timestamp and max timestamp.
//! - `truncate`: truncation to an offset (followers) and full truncation.
//! - `retention`: deleting old segments by size and time, moving the log start offset.
//! - `log_start`: the `log-start-offset` file.
//! - `epochs`: the leader epoch history as this log uses it.
//! - `producers`: the idempotent-producer state as this log keeps it.
//! - `compact`: the log as the cleaner sees it (dirtiness, cleaning jobs, swaps, the
//!   cleaner checkpoint).
//! - `test_support`: helpers for the tests of these files.

mod append;
mod compact;
mod epochs;
mod flush;
mod lifecycle;
mod log_start;
mod lookup;
mod producers;
mod read;
mod retention;
mod segments;
#[cfg(test)]
mod test_support;
mod truncate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use super::config::{FlushPolicy, LogConfig};
use super::epoch_cache::LeaderEpochCache;
use super::error::LogError;
use super::producer_state::ProducerStateManager;
use super::segment::Segment;

pub use append::AppendInfo;
pub use compact::{Dirtiness, CLEANER_CHECKPOINT_FILE};
pub use lifecycle::CLEAN_SHUTDOWN_FILE;
pub use log_start::LOG_START_OFFSET_FILE;
pub use read::{ReadPlan, ReadResult};

/// The log of one partition.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    epoch_cache: LeaderEpochCache,
    producers: ProducerStateManager,
    unflushed_messages: u64,
    last_flush_ms: Option<i64>,
    dir_dirty: bool,
    offline: bool,
    closed: bool,
    /// The cleaner checkpoint: everything below it was cleaned.
    first_dirty_offset: i64,
    /// Bumped by every truncation (see `compact`).
    layout_version: u64,
}

impl PartitionLog {
    fn check_online(&self) -> Result<(), LogError> {
        if self.closed {
            return Err(LogError::Closed {
                dir: self.dir.clone(),
            });
        }
        if self.offline {
            return Err(LogError::Offline {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Takes the log offline when `result` is a storage failure.
    fn guard<T>(&mut self, result: Result<T, LogError>) -> Result<T, LogError> {
        if let Err(e) = &result {
            if e.is_storage_failure() {
                if !self.offline {
                    tracing::error!(dir = %self.dir.display(), "taking the log offline: {e}");
                }
                self.offline = true;
            }
        }
        result
    }

    fn invalid_append(&self, detail: String) -> LogError {
        LogError::InvalidAppend {
            dir: self.dir.clone(),
            detail,
        }
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// First offset still held.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// True when the log refuses writes after an I/O failure.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// Replaces the config. Segment size, retention, timestamps, message size and flush
    /// policy apply from the next call; the index interval applies to the active segment from
    /// its next append; `index_max_bytes` applies to new segments. An invalid config is
    /// refused with a warning and the old one stays; use
    /// [`try_update_config`](Self::try_update_config) to get the error.
    pub fn update_config(&mut self, config: LogConfig) {
        if let Err(e) = self.try_update_config(config) {
            tracing::warn!(dir = %self.dir.display(), "kept the previous log configuration: {e}");
        }
    }

    /// [`update_config`](Self::update_config) that reports an invalid config.
    pub fn try_update_config(&mut self, config: LogConfig) -> Result<(), LogError> {
        config.validate()?;
        let interval = config.index_interval_bytes;
        if let Ok(active) = self.active_mut() {
            active.set_index_interval_bytes(interval);
        }
        self.config = config;
        Ok(())
    }
}
