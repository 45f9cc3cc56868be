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

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{
    self, peek_batch_length, BatchHeader, ATTR_TIMESTAMP_TYPE, CRC_OFFSET, LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
};
use super::checkpoint;
pub use super::config::{FlushPolicy, LogConfig};
use super::epoch_cache::LeaderEpochCache;
use super::error::LogError;
use super::producer_state::{Checked, ProducerBatch, ProducerStateManager};
use super::recovery;
use super::segment::Segment;

/// File holding the persisted log start offset: a version line `0`, then the offset.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// Marker written by [`PartitionLog::close`]; its presence at open means the last segment
/// was sealed and flushed, so recovery only checks its tail.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

/// What an append produced (the Produce response fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first appended record.
    pub base_offset: i64,
    /// Offset of the last appended record.
    pub last_offset: i64,
    /// The broker time stamped on the batches, or -1 for CreateTime.
    pub log_append_time: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
    /// True when the batch repeated one an idempotent producer had already written: nothing
    /// was written, and the offsets (and, for LogAppendTime, the time) are the original
    /// append's. Produce answers it with NONE, as Kafka does.
    pub duplicate: bool,
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, starting with the batch that contains the fetch offset; empty at the
    /// log end (never "null").
    pub bytes: Bytes,
    /// The log start offset when the read was planned.
    pub log_start_offset: i64,
    /// The log end offset when the read was planned.
    pub log_end_offset: i64,
}

/// A read decided under the log's lock and carried out without it: which file, where, how
/// many bytes. It stays valid when retention deletes the segment meanwhile (the open handle
/// keeps the data) and when appends continue (bytes already written never change). A
/// truncation in between (replication only) can make it return fewer batches.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    file: Option<Arc<File>>,
    path: PathBuf,
    position: u64,
    len: usize,
    log_start_offset: i64,
    log_end_offset: i64,
}

impl ReadPlan {
    /// Bytes the read will ask for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is nothing to read (fetch at the log end).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Does the read: one positioned read into one buffer, cut back to whole batches.
    pub fn execute(self) -> Result<ReadResult, LogError> {
        let bytes = match self.file {
            Some(file) if self.len > 0 => {
                // No zero-fill: pread writes into the spare capacity and the length is set
                // to what it wrote (zeroing a fresh buffer per fetch was half the CPU of a
                // catch-up read).
                let mut buf: Vec<u8> = Vec::with_capacity(self.len);
                let mut filled = 0;
                while filled < self.len {
                    // SAFETY: the destination is the vector's unused capacity past `filled`
                    // (`self.len - filled` bytes are reserved); the kernel writes at most that
                    // many bytes, and only the bytes it reports written become part of the
                    // vector (`set_len` below).
                    let n = unsafe {
                        libc::pread(
                            file.as_raw_fd(),
                            buf.as_mut_ptr().add(filled) as *mut libc::c_void,
                            self.len - filled,
                            (self.position + filled as u64) as libc::off_t,
                        )
                    };
                    if n < 0 {
                        let e = std::io::Error::last_os_error();
                        if e.kind() == std::io::ErrorKind::Interrupted {
                            continue;
                        }
                        return Err(LogError::io("read", &self.path, e));
                    }
                    if n == 0 {
                        break;
                    }
                    filled += n as usize;
                    // SAFETY: pread initialised the first `filled` bytes.
                    unsafe { buf.set_len(filled) };
                }
                buf.truncate(filled);
                let whole = whole_batches_prefix(&buf);
                buf.truncate(whole);
                Bytes::from(buf)
            }
            _ => Bytes::new(),
        };
        Ok(ReadResult {
            bytes,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        })
    }
}

/// Length of the longest prefix of `buf` made of whole batches.
fn whole_batches_prefix(buf: &[u8]) -> usize {
    let mut at = 0usize;
    while let Some(len) = buf.get(at..).and_then(peek_batch_length) {
        if len < MIN_BATCH_LENGTH {
            break;
        }
        let end = at + len as usize + LOG_OVERHEAD;
        if end > buf.len() {
            break;
        }
        at = end;
    }
    at
}

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
}

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
        let recovered = recovery::load_segments(dir, &config, clean)?;
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
        log.producers = ProducerStateManager::load(
            dir,
            &log.segments,
            log.log_start_offset,
            log.log_end_offset,
        )?;
        Ok(log)
    }

    fn epoch_cache_from_batches(&self) -> Result<LeaderEpochCache, LogError> {
        let mut cache = LeaderEpochCache::empty(&self.dir);
        for (epoch, start) in recovery::scan_epochs(&self.segments)? {
            cache.assign(epoch, start);
        }
        Ok(cache)
    }

    fn no_active_segment(&self) -> LogError {
        LogError::Corrupt {
            path: self.dir.clone(),
            detail: "the partition has no active segment".to_string(),
        }
    }

    fn active(&self) -> Result<&Segment, LogError> {
        self.segments
            .values()
            .next_back()
            .ok_or_else(|| self.no_active_segment())
    }

    fn active_mut(&mut self) -> Result<&mut Segment, LogError> {
        let err = self.no_active_segment();
        self.segments.values_mut().next_back().ok_or(err)
    }

    fn first_segment_base(&self) -> Result<i64, LogError> {
        self.segments
            .keys()
            .next()
            .copied()
            .ok_or_else(|| self.no_active_segment())
    }

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

    /// Bytes of batches across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// True when the log refuses writes after an I/O failure.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The latest leader epoch written to this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epoch_cache.latest_epoch()
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)` per Kafka's `endOffsetFor` (see
    /// `LeaderEpochCache::end_offset_for`); `(-1, -1)` when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epoch_cache.end_offset_for(epoch, self.log_end_offset)
    }

    /// The idempotent-producer state (epochs, sequences, retained batches).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// The leader epoch under which `offset` was written, if known (for the `leader_epoch`
    /// field of ListOffsets and Fetch answers).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epoch_cache.epoch_for_offset(offset)
    }

    /// Appends the records of one produce request (already checked with
    /// `batch::validate_producer_batches`, which returned `headers`).
    ///
    /// Batches with a producer id are first checked against the idempotent-producer state
    /// (see `producer_state`): an older producer epoch is [`LogError::InvalidProducerEpoch`],
    /// a sequence gap [`LogError::OutOfOrderSequence`], and a repeat of one of the producer's
    /// last five batches writes nothing and returns that batch's original offsets with
    /// [`AppendInfo::duplicate`] set.
    ///
    /// Assigns offsets consecutively from the log end offset and writes `leader_epoch` into
    /// each batch, in copies of their headers (`records` is not changed); with LogAppendTime configured, stamps `now_ms` and
    /// recomputes the CRC. Records a newer `leader_epoch` in the epoch history first. Rolls
    /// the active segment when the payload would push it past `segment_bytes`, when the last
    /// offset would not fit the 4-byte relative offset, or when an index is full. Then writes
    /// `records` with one write (no copy), updates the indexes and applies the flush policy
    /// ([`FlushPolicy::Always`]: `fdatasync` before returning; `EveryMessages(n)`: once `n`
    /// records are unflushed).
    pub fn append(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_online()?;
        let count = self.check_append_args(records, headers, leader_epoch)?;
        let base = self.log_end_offset;
        let last = base + count - 1;
        let log_append_time = self
            .config
            .message_timestamp_type_log_append
            .then_some(now_ms);

        let mut producer_batches = Vec::new();
        let mut next = base;
        for h in headers {
            let max_timestamp = log_append_time.unwrap_or(h.max_timestamp);
            producer_batches.extend(ProducerBatch::of(h, next, max_timestamp));
            next += h.offset_count();
        }
        let pending = if producer_batches.is_empty() {
            None
        } else {
            match self.producers.check_append(&producer_batches)? {
                Checked::Append(pending) => Some(pending),
                Checked::Duplicate(original) => {
                    return Ok(AppendInfo {
                        base_offset: original.first_offset,
                        last_offset: original.last_offset,
                        log_append_time: log_append_time.map_or(-1, |_| original.max_timestamp),
                        log_start_offset: self.log_start_offset,
                        duplicate: true,
                    });
                }
            }
        };

        self.roll_if_needed(base, last, records.len())?;

        if self
            .epoch_cache
            .latest_epoch()
            .is_none_or(|latest| leader_epoch > latest)
        {
            self.epoch_cache.assign(leader_epoch, base);
            let r = self.epoch_cache.persist();
            self.guard(r)?;
        }

        // Only each batch's 61-byte header is copied and patched; the record bytes are
        // written from the caller's buffer by one vectored write.
        let mut assigned: Vec<BatchHeader> = headers.to_vec();
        let mut patched: Vec<[u8; batch::HEADER_SIZE]> = Vec::with_capacity(headers.len());
        let (mut at, mut next) = (0usize, base);
        for h in assigned.iter_mut() {
            let size = h.total_size();
            let mut header = [0u8; batch::HEADER_SIZE];
            header.copy_from_slice(&records[at..at + batch::HEADER_SIZE]);
            let body = &records[at + batch::HEADER_SIZE..at + size];
            batch::assign_offsets_split(&mut header, body, next, leader_epoch, log_append_time);
            h.base_offset = next;
            h.partition_leader_epoch = leader_epoch;
            if let Some(now) = log_append_time {
                h.attributes |= ATTR_TIMESTAMP_TYPE;
                h.max_timestamp = now;
                h.crc = u32::from_be_bytes([
                    header[CRC_OFFSET],
                    header[CRC_OFFSET + 1],
                    header[CRC_OFFSET + 2],
                    header[CRC_OFFSET + 3],
                ]);
            }
            patched.push(header);
            next += h.offset_count();
            at += size;
        }
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(headers.len() * 2);
        let mut at = 0usize;
        for (h, header) in assigned.iter().zip(patched.iter()) {
            let size = h.total_size();
            pieces.push(header);
            pieces.push(&records[at + batch::HEADER_SIZE..at + size]);
            at += size;
        }

        let r = self
            .active_mut()
            .and_then(|seg| seg.append_pieces(&pieces, &assigned));
        self.guard(r)?;
        self.log_end_offset = next;
        if let Some(pending) = pending {
            self.producers.commit(pending, now_ms);
        }
        self.after_write(count, now_ms)?;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: next - 1,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Appends batches fetched from the partition leader (a follower's write): they keep
    /// the offsets, leader epochs and timestamps the leader gave them, and must start at
    /// this log's end offset. Each new leader epoch goes into the epoch history at its first
    /// batch, and producer batches update the idempotent-producer state as they do on the
    /// leader, so a follower that becomes leader still recognises retries.
    pub fn append_replicated(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<(), LogError> {
        self.check_online()?;
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
            return Ok(());
        };
        if first.base_offset != self.log_end_offset {
            return Err(self.invalid_append(format!(
                "replicated batches start at offset {} but the log ends at {}",
                first.base_offset, self.log_end_offset
            )));
        }
        let mut expected = first.base_offset;
        let mut total = 0usize;
        for h in headers {
            if h.base_offset != expected || h.last_offset_delta < 0 {
                return Err(self.invalid_append(format!(
                    "replicated batch at offset {} does not follow offset {}",
                    h.base_offset,
                    expected - 1
                )));
            }
            expected = h.next_offset();
            total += h.total_size();
        }
        if total != records.len() {
            return Err(self.invalid_append(format!(
                "the headers describe {total} bytes but the payload has {}",
                records.len()
            )));
        }
        self.roll_if_needed(first.base_offset, last.last_offset(), records.len())?;
        let mut epochs_changed = false;
        for h in headers {
            let epoch = h.partition_leader_epoch;
            if epoch >= 0 && self.epoch_cache.latest_epoch().is_none_or(|e| epoch > e) {
                epochs_changed |= self.epoch_cache.assign(epoch, h.base_offset);
            }
        }
        if epochs_changed {
            let r = self.epoch_cache.persist();
            self.guard(r)?;
        }
        let r = self
            .active_mut()
            .and_then(|seg| seg.append_batches(records, headers));
        self.guard(r)?;
        self.log_end_offset = last.next_offset();
        for h in headers {
            if let Some(batch) = ProducerBatch::stored(h) {
                self.producers.replay(&batch, now_ms);
            }
        }
        self.after_write(last.next_offset() - first.base_offset, now_ms)
    }

    /// Rolls the active segment before a write of `bytes` covering offsets `base..=last`
    /// when it would push the segment past `segment_bytes`, when `last` would not fit the
    /// 4-byte relative offset, or when an index is full.
    fn roll_if_needed(&mut self, base: i64, last: i64, bytes: usize) -> Result<(), LogError> {
        let needs_roll = {
            let active = self.active()?;
            !active.is_empty()
                && (active.size() + bytes as u64 > self.config.segment_bytes
                    || active.needs_roll_for(last))
        };
        if needs_roll {
            let r = self.roll(base);
            self.guard(r)?;
        }
        Ok(())
    }

    /// Counts `records` newly written and applies the flush policy
    /// ([`FlushPolicy::Always`]: `fdatasync` now; `EveryMessages(n)`: once `n` are unflushed).
    fn after_write(&mut self, records: i64, now_ms: i64) -> Result<(), LogError> {
        self.unflushed_messages += records as u64;
        self.last_flush_ms.get_or_insert(now_ms);
        match self.config.flush {
            FlushPolicy::Always => self.flush(),
            FlushPolicy::EveryMessages(n) if self.unflushed_messages >= n => self.flush(),
            _ => Ok(()),
        }
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

    /// Checks that `headers` describe `records` exactly; returns the number of offsets.
    fn check_append_args(
        &self,
        records: &[u8],
        headers: &[BatchHeader],
        leader_epoch: i32,
    ) -> Result<i64, LogError> {
        if headers.is_empty() {
            return Err(self.invalid_append("no batch headers were given".to_string()));
        }
        if leader_epoch < 0 {
            return Err(self.invalid_append(format!(
                "leader epoch {leader_epoch} is negative; the leader must pass its epoch"
            )));
        }
        if let Some(latest) = self.epoch_cache.latest_epoch() {
            if leader_epoch < latest {
                return Err(LogError::StaleLeaderEpoch {
                    dir: self.dir.clone(),
                    epoch: leader_epoch,
                    latest,
                });
            }
        }
        let (mut at, mut count) = (0usize, 0i64);
        for h in headers {
            let size = h.total_size();
            let slice = records.get(at..at.saturating_add(size));
            if slice.and_then(peek_batch_length) != Some(h.batch_length) {
                return Err(self.invalid_append(format!(
                    "the header of batch {} does not match the bytes at position {at}",
                    count
                )));
            }
            if h.last_offset_delta < 0 {
                return Err(self.invalid_append(format!(
                    "a batch header has lastOffsetDelta {}",
                    h.last_offset_delta
                )));
            }
            count += h.offset_count();
            at += size;
        }
        if at != records.len() {
            return Err(self.invalid_append(format!(
                "the headers describe {at} bytes but the payload has {}",
                records.len()
            )));
        }
        Ok(count)
    }

    /// Seals the active segment and starts a new one at `new_base` (the log end offset),
    /// snapshotting the producer state at `new_base` as Kafka does on a roll.
    fn roll(&mut self, new_base: i64) -> Result<(), LogError> {
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

    /// Plans a read of whole batches starting with the batch that contains `fetch_offset`,
    /// up to `max_bytes`, but always at least that one whole batch even when it is larger
    /// (Kafka's "make progress" rule). A read stops at the end of the segment holding that
    /// batch; the client's next fetch continues in the next segment. `fetch_offset` equal to
    /// the log end offset gives an empty read; below the log start offset or above the log
    /// end offset it is [`LogError::OffsetOutOfRange`].
    pub fn plan_read(&self, fetch_offset: i64, max_bytes: usize) -> Result<ReadPlan, LogError> {
        let (lso, leo) = (self.log_start_offset, self.log_end_offset);
        if fetch_offset < lso || fetch_offset > leo {
            return Err(LogError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: lso,
                log_end_offset: leo,
                dir: self.dir.clone(),
            });
        }
        let empty = ReadPlan {
            file: None,
            path: self.dir.clone(),
            position: 0,
            len: 0,
            log_start_offset: lso,
            log_end_offset: leo,
        };
        if fetch_offset == leo {
            return Ok(empty);
        }
        let start = self
            .segments
            .range(..=fetch_offset)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        for seg in self.segments.range(start..).map(|(_, s)| s) {
            if let Some((pos, h)) = seg.find_batch(fetch_offset)? {
                let available = seg.size().saturating_sub(pos);
                let wanted = (max_bytes as u64).min(available);
                let len = wanted.max(h.total_size() as u64) as usize;
                return Ok(ReadPlan {
                    file: Some(Arc::clone(seg.file())),
                    path: seg.log_path().to_path_buf(),
                    position: pos,
                    len,
                    log_start_offset: lso,
                    log_end_offset: leo,
                });
            }
        }
        Ok(empty)
    }

    /// [`plan_read`](Self::plan_read) that returns no batch at or above `max_offset` (a
    /// consumer reads only up to the high watermark, which is always a batch boundary).
    /// A fetch offset between `max_offset` and the log end offset reads nothing.
    pub fn plan_read_below(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadPlan, LogError> {
        if max_offset >= self.log_end_offset {
            return self.plan_read(fetch_offset, max_bytes);
        }
        if fetch_offset >= max_offset && fetch_offset <= self.log_end_offset {
            return self.plan_read(self.log_end_offset, max_bytes);
        }
        let mut plan = self.plan_read(fetch_offset, max_bytes)?;
        let stop = self
            .segments
            .range(..=max_offset)
            .next_back()
            .map(|(_, seg)| seg)
            .filter(|seg| seg.log_path() == plan.path)
            .map(|seg| seg.find_batch(max_offset))
            .transpose()?
            .flatten();
        if let Some((stop_at, _)) = stop {
            if stop_at >= plan.position {
                plan.len = plan.len.min((stop_at - plan.position) as usize);
            }
        }
        Ok(plan)
    }

    /// [`plan_read`](Self::plan_read) and [`ReadPlan::execute`] in one call.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        self.plan_read(fetch_offset, max_bytes)?.execute()
    }

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
    fn delete_segments_below_log_start(&mut self) -> Result<usize, LogError> {
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

    fn persist_log_start_offset(&self) -> Result<(), LogError> {
        checkpoint::write_atomic(
            &self.dir,
            LOG_START_OFFSET_FILE,
            format!("0\n{}\n", self.log_start_offset).as_bytes(),
        )
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

    /// Removes every record at or after `offset` (for replication: a follower truncating to
    /// the leader's log). Truncation is at batch granularity: a batch containing `offset` is
    /// removed whole, so the new log end offset is `offset` or the start of that batch. The
    /// epoch history is truncated to the new end, and the producer state is rebuilt for it
    /// (snapshots above the new end deleted, the newest remaining one loaded, later batches
    /// replayed). With `offset` before the first segment, the log is emptied and restarts at
    /// `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
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
        let r = ProducerStateManager::load(
            &self.dir,
            &self.segments,
            self.log_start_offset,
            self.log_end_offset,
        );
        self.producers = self.guard(r)?;
        Ok(())
    }

    /// Deletes every segment and starts an empty log at `offset` (Kafka's
    /// `truncateFullyAndStartAt`); the epoch history and the producer state are cleared.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
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

/// Reads `log-start-offset`; a malformed file is reported and ignored (the first segment's
/// base offset then applies).
fn read_log_start_offset(dir: &Path) -> Result<Option<i64>, LogError> {
    let Some(text) = checkpoint::read_optional(dir, LOG_START_OFFSET_FILE)? else {
        return Ok(None);
    };
    let mut lines = text.lines().map(str::trim);
    let parsed = match (lines.next(), lines.next()) {
        (Some("0"), Some(value)) => value.parse::<i64>().ok().filter(|v| *v >= 0),
        _ => None,
    };
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
    use crate::log::batch::validate_producer_batches;
    use crate::log::epoch_cache::CHECKPOINT_FILE;
    use crate::log::test_util::{headers_of, produce, producer_batch, small_config};

    fn open(dir: &Path, config: LogConfig) -> PartitionLog {
        PartitionLog::open(dir, config).unwrap()
    }

    #[test]
    fn append_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        let mut sent = Vec::new();
        for i in 0..3 {
            let mut bytes = producer_batch(4, 100, 1_000 + i);
            let headers = validate_producer_batches(&bytes, 1 << 20).unwrap();
            let info = log.append(&bytes, &headers, 7, 5_000).unwrap();
            assert_eq!(info.base_offset, i * 4);
            assert_eq!(info.last_offset, i * 4 + 3);
            assert_eq!(info.log_append_time, -1);
            assert_eq!(info.log_start_offset, 0);
            // The caller's buffer is untouched; the log stores it with offsets assigned.
            batch::assign_offsets(&mut bytes, i * 4, 7, None);
            sent.extend_from_slice(&bytes);
        }
        assert_eq!(log.log_end_offset(), 12);
        let got = log.read(0, 1 << 20).unwrap();
        assert_eq!(
            &got.bytes[..],
            &sent[..],
            "stored exactly as sent after patching"
        );
        assert_eq!((got.log_start_offset, got.log_end_offset), (0, 12));
        let hs = headers_of(&got.bytes);
        assert_eq!(
            hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
            vec![0, 4, 8]
        );
        assert!(hs.iter().all(|h| h.partition_leader_epoch == 7));
    }

    #[test]
    fn a_follower_copy_matches_the_leader_and_reads_stop_at_the_high_watermark() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(ldir.path(), small_config(4096));
        let mut follower = open(fdir.path(), small_config(4096));
        for i in 0..20 {
            produce(&mut leader, 3, 200, 1_000 + i, if i < 10 { 1 } else { 2 });
        }
        leader.begin_leader_epoch(3).unwrap();
        // Replicate in fetch-sized pieces, as the fetcher does.
        while follower.log_end_offset() < leader.log_end_offset() {
            let got = leader.read(follower.log_end_offset(), 1500).unwrap();
            let (headers, len) = batch::split_whole_batches(&got.bytes).unwrap();
            follower
                .append_replicated(&got.bytes[..len], &headers, 9_000)
                .unwrap();
        }
        assert_eq!(
            leader.read(0, 1 << 20).unwrap().bytes,
            follower.read(0, 1 << 20).unwrap().bytes
        );
        assert_eq!(follower.end_offset_for_epoch(1), (1, 30));
        assert_eq!(follower.latest_epoch(), Some(2));
        assert_eq!(leader.latest_epoch(), Some(3));
        assert!(
            follower.segment_base_offsets().len() > 1,
            "the follower rolls too"
        );
        // Replicated batches must continue the log exactly.
        let again = leader.read(0, 1 << 20).unwrap();
        let (headers, len) = batch::split_whole_batches(&again.bytes).unwrap();
        assert!(follower
            .append_replicated(&again.bytes[..len], &headers, 9_000)
            .is_err());
        // A consumer read never passes the high watermark (a batch boundary).
        let below = leader
            .plan_read_below(0, 1 << 20, 9)
            .unwrap()
            .execute()
            .unwrap();
        let hs = headers_of(&below.bytes);
        assert_eq!(hs.last().unwrap().next_offset(), 9);
        let at_hw = leader
            .plan_read_below(9, 1 << 20, 9)
            .unwrap()
            .execute()
            .unwrap();
        assert!(at_hw.bytes.is_empty());
        assert!(leader.plan_read_below(61, 1 << 20, 9).is_err());
    }

    #[test]
    fn read_returns_the_whole_batch_containing_a_mid_batch_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        produce(&mut log, 10, 50, 1, 0);
        produce(&mut log, 10, 50, 2, 0);
        for offset in [5, 9] {
            let hs = headers_of(&log.read(offset, 1 << 20).unwrap().bytes);
            assert_eq!(
                hs[0].base_offset, 0,
                "batch containing {offset}, not the next"
            );
        }
        let hs = headers_of(&log.read(13, 1 << 20).unwrap().bytes);
        assert_eq!(hs[0].base_offset, 10);
        assert_eq!(hs.len(), 1);
    }

    #[test]
    fn read_returns_at_least_one_whole_batch_and_only_whole_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        for i in 0..4 {
            produce(&mut log, 5, 200, i, 0);
        }
        let one = log.read(0, 1).unwrap().bytes;
        let hs = headers_of(&one);
        assert_eq!(
            hs.len(),
            1,
            "a batch larger than max_bytes is still returned whole"
        );
        let size = hs[0].total_size();
        let r = log.read(0, size * 2 + size / 2).unwrap().bytes;
        assert_eq!(headers_of(&r).len(), 2, "a partial third batch is cut off");
        assert_eq!(r.len(), size * 2);
    }

    #[test]
    fn read_at_the_end_is_empty_and_outside_the_log_is_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        assert!(log.read(0, 100).unwrap().bytes.is_empty());
        produce(&mut log, 3, 10, 1, 0);
        assert!(log.read(3, 100).unwrap().bytes.is_empty());
        let e = log.read(4, 100).unwrap_err();
        assert!(matches!(e, LogError::OffsetOutOfRange { .. }));
        assert_eq!(e.kafka_error_code(), 1);
        assert!(log.read(-1, 100).is_err());
    }

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
    fn index_lookup_finds_every_offset_among_many_small_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config(1 << 20));
        for i in 0..500 {
            produce(&mut log, 2, 20, i, 0);
        }
        for offset in (0..1000).step_by(7) {
            let hs = headers_of(&log.read(offset, 1).unwrap().bytes);
            assert_eq!(hs[0].base_offset, offset / 2 * 2);
        }
    }

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

    #[test]
    fn log_append_time_stamps_the_batch_and_keeps_it_valid() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            message_timestamp_type_log_append: true,
            ..LogConfig::default()
        };
        let mut log = open(dir.path(), config);
        let bytes = producer_batch(3, 10, 5);
        let headers = validate_producer_batches(&bytes, 1 << 20).unwrap();
        let info = log.append(&bytes, &headers, 0, 777_000).unwrap();
        assert_eq!(info.log_append_time, 777_000);
        let hs = headers_of(&log.read(0, 1 << 20).unwrap().bytes);
        assert!(hs[0].timestamp_type_is_log_append());
        assert_eq!(hs[0].max_timestamp, 777_000);
        assert_eq!(log.offset_for_timestamp(700_000), Some((0, 777_000)));
        drop(log);
        let log = open(dir.path(), LogConfig::default());
        assert_eq!(
            log.log_end_offset(),
            3,
            "the recomputed CRC survives recovery"
        );
    }

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

    #[test]
    fn append_refuses_headers_that_do_not_match_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        let a = producer_batch(2, 10, 0);
        let hs = validate_producer_batches(&a, 1 << 20).unwrap();
        let b = producer_batch(3, 30, 0);
        assert!(matches!(
            log.append(&b, &hs, 0, 0),
            Err(LogError::InvalidAppend { .. })
        ));
        assert!(log.append(&a, &hs, -1, 0).is_err());
        assert_eq!(log.log_end_offset(), 0);
    }

    /// An idempotent producer batch: `n` records of 100 bytes from `pid` at `epoch`,
    /// starting at sequence `seq`.
    fn idem_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
        let mut b = crate::log::RecordBatchBuilder::new().producer(pid, epoch, seq);
        for i in 0..n {
            b.push(1_000 + i as i64, Some(b"k"), Some(&[7u8; 100]), &[]);
        }
        b.build()
    }

    fn send(log: &mut PartitionLog, bytes: &[u8]) -> Result<AppendInfo, LogError> {
        let hs = validate_producer_batches(bytes, 1 << 20).unwrap();
        log.append(bytes, &hs, 0, 5_000)
    }

    fn fresh(log: &mut PartitionLog, bytes: &[u8]) -> AppendInfo {
        let info = send(log, bytes).unwrap();
        assert!(!info.duplicate, "{info:?}");
        info
    }

    fn duplicate(log: &mut PartitionLog, bytes: &[u8]) -> AppendInfo {
        let leo = log.log_end_offset();
        let info = send(log, bytes).unwrap();
        assert!(info.duplicate, "{info:?}");
        assert_eq!(log.log_end_offset(), leo, "a duplicate writes nothing");
        info
    }

    fn snapshot_offsets(dir: &Path) -> Vec<i64> {
        crate::log::producer_state::list_snapshots(dir).unwrap()
    }

    #[test]
    fn a_retried_batch_is_answered_with_its_original_offsets_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        let first = idem_batch(7, 0, 0, 3);
        let second = idem_batch(7, 0, 3, 2);
        assert_eq!(fresh(&mut log, &first).base_offset, 0);
        produce(&mut log, 4, 10, 1, 0); // another client in between
        assert_eq!(fresh(&mut log, &second).base_offset, 7);
        let info = duplicate(&mut log, &first);
        assert_eq!((info.base_offset, info.last_offset), (0, 2));
        assert_eq!((info.log_append_time, info.log_start_offset), (-1, 0));
        assert_eq!(duplicate(&mut log, &second).base_offset, 7);
        let hs = headers_of(&log.read(0, 1 << 20).unwrap().bytes);
        assert_eq!(hs.len(), 3, "each batch stored once");
        // Producer errors map to their Kafka codes and write nothing.
        let e = send(&mut log, &idem_batch(7, 0, 9, 1)).unwrap_err();
        assert!(
            matches!(e, LogError::OutOfOrderSequence { expected: 5, .. }),
            "{e}"
        );
        assert_eq!(e.kafka_error_code(), 45);
        fresh(&mut log, &idem_batch(7, 1, 0, 1));
        let e = send(&mut log, &idem_batch(7, 0, 5, 1)).unwrap_err();
        assert_eq!(e.kafka_error_code(), 47, "{e}");
        assert_eq!(log.log_end_offset(), 10);
    }

    #[test]
    fn a_duplicate_under_log_append_time_gets_the_original_time() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            message_timestamp_type_log_append: true,
            ..LogConfig::default()
        };
        let mut log = open(dir.path(), config);
        let bytes = idem_batch(3, 0, 0, 2);
        let hs = validate_producer_batches(&bytes, 1 << 20).unwrap();
        let first = log.append(&bytes, &hs, 0, 111_000).unwrap();
        let again = log.append(&bytes, &hs, 0, 222_000).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.log_append_time, 111_000);
        assert_eq!(first.base_offset, again.base_offset);
    }

    #[test]
    fn producer_state_is_rebuilt_from_the_log_without_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        let batches: Vec<_> = (0..7).map(|i| idem_batch(11, 2, i * 2, 2)).collect();
        for b in &batches {
            fresh(&mut log, b);
        }
        drop(log); // a crash: no snapshot, no marker
        assert!(snapshot_offsets(dir.path()).is_empty());
        let mut log = open(dir.path(), LogConfig::default());
        let entry = log.producer_state().entry(11).unwrap().clone();
        assert_eq!(
            (entry.epoch, entry.last_seq(), entry.batches.len()),
            (2, 13, 5)
        );
        // Every one of the last five is still recognised; older ones are out of order.
        for (i, b) in batches.iter().enumerate().skip(2) {
            assert_eq!(duplicate(&mut log, b).base_offset, 2 * i as i64);
        }
        assert!(matches!(
            send(&mut log, &batches[1]),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        fresh(&mut log, &idem_batch(11, 2, 14, 1));
    }

    #[test]
    fn producer_state_is_restored_from_the_shutdown_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        for i in 0..6 {
            fresh(&mut log, &idem_batch(21, 0, i, 1));
        }
        let before = log.producer_state().entry(21).cloned();
        log.close().unwrap();
        assert_eq!(snapshot_offsets(dir.path()), vec![6]);
        // The snapshot at the log end offset is the whole state: nothing is replayed, so the
        // entry (with its broker-time last update) comes back exactly.
        let mut log = open(dir.path(), LogConfig::default());
        assert_eq!(log.producer_state().entry(21).cloned(), before);
        assert_eq!(duplicate(&mut log, &idem_batch(21, 0, 5, 1)).base_offset, 5);
        assert!(
            send(&mut log, &idem_batch(21, 0, 0, 1)).is_err(),
            "batch 0 is too old"
        );
    }

    #[test]
    fn producer_state_uses_the_roll_snapshot_plus_the_batches_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let size = idem_batch(1, 0, 0, 2).len() as u64;
        let config = small_config(size * 3);
        let mut log = open(dir.path(), config.clone());
        // Producer 1 writes only in the first segment; producer 2 keeps writing.
        for i in 0..3 {
            fresh(&mut log, &idem_batch(1, 0, i * 2, 2));
        }
        for i in 0..5 {
            fresh(&mut log, &idem_batch(2, 4, i * 2, 2));
        }
        assert_eq!(log.segment_base_offsets(), vec![0, 6, 12]);
        assert_eq!(snapshot_offsets(dir.path()), vec![6, 12]);
        drop(log); // a crash after the rolls
        let mut log = open(dir.path(), config);
        assert_eq!(log.producer_state().entry(1).unwrap().last_seq(), 5);
        assert_eq!(log.producer_state().entry(2).unwrap().last_seq(), 9);
        assert_eq!(duplicate(&mut log, &idem_batch(1, 0, 2, 2)).base_offset, 2);
        assert_eq!(duplicate(&mut log, &idem_batch(2, 4, 8, 2)).base_offset, 14);
        assert_eq!(duplicate(&mut log, &idem_batch(2, 4, 0, 2)).base_offset, 6);
    }

    #[test]
    fn torn_tail_then_the_lost_batch_is_accepted_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        for i in 0..4 {
            fresh(&mut log, &idem_batch(5, 0, i * 3, 3));
        }
        drop(log);
        let path = crate::log::test_util::log_file(dir.path(), 0);
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - 10).unwrap();
        drop(f);
        let mut log = open(dir.path(), LogConfig::default());
        assert_eq!(log.log_end_offset(), 9, "the torn fourth batch is gone");
        assert_eq!(log.producer_state().entry(5).unwrap().last_seq(), 8);
        // The producer's retry of the torn batch is new data again, not a duplicate.
        assert_eq!(fresh(&mut log, &idem_batch(5, 0, 9, 3)).base_offset, 9);
        assert_eq!(duplicate(&mut log, &idem_batch(5, 0, 9, 3)).base_offset, 9);
    }

    #[test]
    fn snapshots_above_the_log_end_are_removed_and_two_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let size = idem_batch(1, 0, 0, 1).len() as u64;
        let config = small_config(size);
        let mut log = open(dir.path(), config.clone());
        for i in 0..6 {
            fresh(&mut log, &idem_batch(1, 0, i, 1));
        }
        assert_eq!(snapshot_offsets(dir.path()), vec![4, 5]);
        drop(log);
        // A snapshot from a future the disk lost.
        fs::write(dir.path().join("00000000000000000100.snapshot"), b"junk").unwrap();
        let mut log = open(dir.path(), config);
        assert_eq!(snapshot_offsets(dir.path()), vec![4, 5]);
        assert_eq!(log.producer_state().entry(1).unwrap().last_seq(), 5);
        assert_eq!(duplicate(&mut log, &idem_batch(1, 0, 4, 1)).base_offset, 4);
    }

    #[test]
    fn a_corrupt_snapshot_falls_back_to_an_older_one_or_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        for i in 0..3 {
            fresh(&mut log, &idem_batch(9, 1, i, 1));
        }
        log.close().unwrap();
        let mut out = Vec::new();
        let summary = crate::log::dump_path(dir.path(), &mut out).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("producerId: 9 producerEpoch: 1"), "{text}");
        fs::write(dir.path().join("00000000000000000003.snapshot"), b"garbage").unwrap();
        let summary = crate::log::dump_path(dir.path(), &mut Vec::new()).unwrap();
        assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
        let mut log = open(dir.path(), LogConfig::default());
        assert!(
            snapshot_offsets(dir.path()).is_empty(),
            "the bad one is deleted"
        );
        assert_eq!(log.producer_state().entry(9).unwrap().last_seq(), 2);
        assert_eq!(duplicate(&mut log, &idem_batch(9, 1, 2, 1)).base_offset, 2);
    }

    #[test]
    fn truncation_rebuilds_producer_state() {
        let dir = tempfile::tempdir().unwrap();
        let size = idem_batch(1, 0, 0, 2).len() as u64;
        let mut log = open(dir.path(), small_config(size * 2));
        for i in 0..6 {
            fresh(&mut log, &idem_batch(1, 0, i * 2, 2));
        }
        assert_eq!(snapshot_offsets(dir.path()), vec![4, 8]);
        log.truncate_to(6).unwrap();
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(snapshot_offsets(dir.path()), vec![4]);
        assert_eq!(log.producer_state().entry(1).unwrap().last_seq(), 5);
        assert_eq!(fresh(&mut log, &idem_batch(1, 0, 6, 2)).base_offset, 6);
        log.truncate_to(0).unwrap();
        assert!(log.producer_state().entry(1).is_none());
        assert!(snapshot_offsets(dir.path()).is_empty());
        // Unknown again: any sequence is accepted.
        fresh(&mut log, &idem_batch(1, 0, 40, 1));
    }

    #[test]
    fn producer_state_outlives_retention_of_its_batches() {
        let dir = tempfile::tempdir().unwrap();
        let size = idem_batch(1, 0, 0, 2).len() as u64;
        let mut config = small_config(size * 2);
        config.retention_bytes = Some(0);
        let mut log = open(dir.path(), config.clone());
        for i in 0..4 {
            fresh(&mut log, &idem_batch(1, 0, i * 2, 2));
        }
        log.apply_retention(5_000).unwrap();
        assert_eq!(log.log_start_offset(), 8);
        assert_eq!(log.producer_state().entry(1).unwrap().last_seq(), 7);
        log.close().unwrap();
        let mut log = open(dir.path(), config);
        assert_eq!(duplicate(&mut log, &idem_batch(1, 0, 6, 2)).base_offset, 6);
        assert!(matches!(
            send(&mut log, &idem_batch(1, 0, 10, 1)),
            Err(LogError::OutOfOrderSequence { expected: 8, .. })
        ));
        // A day after its last batch (broker time, kept in the snapshot), the producer is
        // forgotten.
        let expiry = crate::log::producer_state::PRODUCER_ID_EXPIRATION_MS;
        log.apply_retention(5_000 + expiry - 1).unwrap();
        assert!(!log.producer_state().is_empty());
        log.apply_retention(5_000 + expiry).unwrap();
        assert!(log.producer_state().is_empty());
    }

    #[test]
    fn read_plan_survives_retention_deleting_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let mut config = small_config(batch_size);
        config.retention_bytes = Some(0);
        let mut log = open(dir.path(), config);
        produce(&mut log, 5, 100, 0, 0);
        produce(&mut log, 5, 100, 1, 0);
        let plan = log.plan_read(0, 1 << 20).unwrap();
        log.apply_retention(0).unwrap();
        let r = plan.execute().unwrap();
        assert_eq!(headers_of(&r.bytes)[0].base_offset, 0);
    }
}
