//! One log segment: the record file `<base_offset:020>.log` with its sparse offset index
//! `.index` and time index `.timeindex` (Kafka's names and formats), and the in-memory facts
//! about it (size, next offset, max timestamp).
//!
//! Invariants:
//! - The `.log` holds whole, offset-assigned v2 batches from byte 0 to `size`, with strictly
//!   increasing offsets, all `>= base_offset` and within `i32::MAX` of it. Bytes past `size`
//!   (a write that failed half way) are never read and are overwritten by the next append,
//!   because appends are positioned writes at `size`.
//! - `next_offset` is one past the last offset in the file (`base_offset` when empty);
//!   `max_timestamp` / `offset_of_max_timestamp` are the largest batch max timestamp and the
//!   last offset of the first batch that reached it (Kafka's shallow offset of max timestamp).
//! - Index entries follow Kafka's rule: before appending a batch, if more than
//!   `index_interval_bytes` were written since the last entry, the batch gets an `.index`
//!   entry (its last offset, its position) and the `.timeindex` gets `(max timestamp so far,
//!   its offset)` if the timestamp grew. Every entry points inside `[0, size)`.
//! - An *active* segment has its index files preallocated; a *sealed* one has them trimmed
//!   and a final time index entry for its max timestamp ([`Segment::seal`]). Only the last
//!   segment of a partition is active.
//! - Append does no per-record work and writes the caller's bytes with one positioned write.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// The most a compressed batch may inflate to when the broker looks inside it.
const INFLATE_CAP: usize = 64 << 20;

use super::batch::{parse_header, BatchHeader, HEADER_SIZE};
use super::error::LogError;
use super::index::{relative_offset, OffsetIndex, TimeIndex};
use super::records;
use super::scan::{BatchScanner, ScanError, SMALL_CHUNK};
use super::txn_index::{AbortedTxn, TxnIndex, TXN_INDEX_SUFFIX};

/// Suffix of record files.
pub const LOG_SUFFIX: &str = ".log";
/// Suffix of offset index files.
pub const INDEX_SUFFIX: &str = ".index";
/// Suffix of time index files.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// `<base_offset>` zero-padded to 20 digits plus `suffix`, as Kafka names segment files.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// Splits a segment file name into its base offset and suffix (`.log`, `.index`,
/// `.timeindex`, `.txnindex`); `None` for any other name.
pub fn parse_file_name(name: &str) -> Option<(i64, &'static str)> {
    for suffix in [
        LOG_SUFFIX,
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
    ] {
        if let Some(stem) = name.strip_suffix(suffix) {
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                return stem.parse().ok().map(|base| (base, suffix));
            }
        }
    }
    None
}

/// Converts a scan failure on a segment that was already recovered into a `LogError`.
pub(crate) fn scan_error(path: &Path, e: ScanError) -> LogError {
    match e {
        ScanError::Io(source) => LogError::io("read", path, source),
        ScanError::Invalid { position, why } => LogError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "the batch at byte {position} is unreadable: {}",
                why.reason()
            ),
        },
    }
}

/// One segment of a partition log.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    log: Arc<File>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// The aborted transactions whose markers are in this segment.
    txn_index: TxnIndex,
    /// What was wrong with the `.txnindex` file at open, if anything.
    txn_index_damage: Option<String>,
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// The first batch's max timestamp, which a time-based roll counts from.
    first_timestamp: Option<i64>,
    bytes_since_last_index_entry: usize,
    index_interval_bytes: usize,
    active: bool,
    dirty: bool,
}

impl Segment {
    /// Creates a new, empty, active segment in `dir` (replacing leftovers with that base).
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: usize,
        index_max_bytes: usize,
    ) -> Result<Segment, LogError> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| LogError::io("create segment file", &log_path, e))?;
        let offset_index = OffsetIndex::create(
            &dir.join(file_name(base_offset, INDEX_SUFFIX)),
            base_offset,
            index_max_bytes,
        )?;
        let time_index = TimeIndex::create(
            &dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
            base_offset,
            index_max_bytes,
        )?;
        let txn_index = TxnIndex::create(&dir.join(file_name(base_offset, TXN_INDEX_SUFFIX)))?;
        Ok(Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            offset_index,
            time_index,
            txn_index,
            txn_index_damage: None,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_timestamp: None,
            bytes_since_last_index_entry: 0,
            index_interval_bytes,
            active: true,
            dirty: true,
        })
    }

    /// Opens the files of an existing segment as they are, for recovery. The in-memory state
    /// is that of an empty segment until recovery scans it; indexes keep their file lengths.
    pub(crate) fn open_existing(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: usize,
    ) -> Result<Segment, LogError> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| LogError::io("open segment file", &log_path, e))?;
        let size = log
            .metadata()
            .map_err(|e| LogError::io("read the size of", &log_path, e))?
            .len();
        let offset_index = OffsetIndex::open(
            &dir.join(file_name(base_offset, INDEX_SUFFIX)),
            base_offset,
            None,
        )?;
        let time_index = TimeIndex::open(
            &dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
            base_offset,
            None,
        )?;
        let (txn_index, txn_index_damage) =
            TxnIndex::open(&dir.join(file_name(base_offset, TXN_INDEX_SUFFIX)))?;
        let mut segment = Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            offset_index,
            time_index,
            txn_index,
            txn_index_damage,
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_timestamp: None,
            bytes_since_last_index_entry: 0,
            index_interval_bytes,
            active: false,
            dirty: false,
        };
        segment.first_timestamp = segment.read_first_timestamp();
        Ok(segment)
    }

    /// First offset this segment may hold (its name).
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Bytes of valid batches in the `.log`.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True when the segment holds no batch.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// One past the last offset held (`base_offset` when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Last offset held, `None` when empty.
    pub fn last_offset(&self) -> Option<i64> {
        (!self.is_empty()).then_some(self.next_offset - 1)
    }

    /// Largest batch max timestamp, -1 when none.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Last offset of the first batch that reached `max_timestamp` (-1 when none).
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }

    /// Path of the `.log` file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The offset index.
    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    /// The time index.
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    /// The aborted-transaction index.
    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn_index
    }

    /// What was wrong with the `.txnindex` file when the segment was opened (its damaged
    /// tail was dropped), if anything.
    pub(crate) fn txn_index_damage(&self) -> Option<&str> {
        self.txn_index_damage.as_deref()
    }

    /// Records an aborted transaction whose marker is in this segment; false when the index
    /// already holds it.
    pub(crate) fn append_aborted(&mut self, txn: AbortedTxn) -> Result<bool, LogError> {
        self.txn_index.append(txn)
    }

    /// Replaces the aborted-transaction index (the cleaner's rewrite).
    pub(crate) fn replace_aborted(&mut self, txns: Vec<AbortedTxn>) -> Result<(), LogError> {
        self.txn_index.replace(txns)
    }

    /// Drops the aborted-transaction entries whose markers are not in the segment any more.
    pub(crate) fn trim_txn_index(&mut self) -> Result<(), LogError> {
        self.txn_index.truncate_to(self.next_offset)
    }

    /// True while this is the segment appends go to.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// True when data was written since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub(crate) fn file(&self) -> &Arc<File> {
        &self.log
    }

    /// True when appending batches spanning up to `last_offset` needs a new segment because
    /// the relative offset would not fit the index or an index is full.
    pub fn needs_roll_for(&self, last_offset: i64) -> bool {
        relative_offset(self.base_offset, last_offset).is_none()
            || self.offset_index.is_full()
            || self.time_index.is_full()
    }

    /// The first batch's max timestamp, read from the file.
    fn read_first_timestamp(&self) -> Option<i64> {
        if self.size < HEADER_SIZE as u64 {
            return None;
        }
        let bytes = self.read_bytes(0, HEADER_SIZE).ok()?;
        parse_header(&bytes)
            .ok()
            .map(|h| h.max_timestamp)
            .filter(|t| *t >= 0)
    }

    /// The first batch's max timestamp, if the segment holds a batch that has one.
    pub fn first_timestamp(&self) -> Option<i64> {
        self.first_timestamp
    }

    /// True when a time-based roll is due (Kafka's `segment.ms`, `timeWaitedForRoll`): the
    /// segment holds a batch with a timestamp, and the incoming batch's `timestamp` is more
    /// than `segment_ms` after it. Kafka compares the incoming timestamp, not the clock, so
    /// old or replayed timestamps do not roll every batch.
    pub fn is_older_than(&self, segment_ms: i64, timestamp: i64) -> bool {
        self.first_timestamp
            .is_some_and(|first| timestamp.saturating_sub(first) > segment_ms)
    }

    /// The largest timestamp for time-based retention: the max timestamp, or the file's
    /// modification time when no batch carries a timestamp (as Kafka's
    /// `LogSegment.largestTimestamp`).
    pub fn largest_timestamp_for_retention(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        std::fs::metadata(&self.log_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Updates the in-memory state and indexes for a batch now at `position`.
    pub(crate) fn track_batch(&mut self, position: u64, header: &BatchHeader) {
        if position == 0 {
            self.first_timestamp = Some(header.max_timestamp).filter(|t| *t >= 0);
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.bytes_since_last_index_entry > self.index_interval_bytes {
            if let Ok(pos) = u32::try_from(position) {
                self.offset_index.append(header.last_offset(), pos);
            }
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, false);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.total_size();
        self.next_offset = header.next_offset();
    }

    /// Appends one validated, offset-assigned batch.
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader) -> Result<(), LogError> {
        self.append_batches(batch, std::slice::from_ref(header))
    }

    /// Appends contiguous validated, offset-assigned batches with a single positioned write;
    /// `headers` describe `bytes` in order. On error nothing is counted as written.
    pub fn append_batches(
        &mut self,
        bytes: &[u8],
        headers: &[BatchHeader],
    ) -> Result<(), LogError> {
        let position = self.size;
        self.log
            .write_all_at(bytes, position)
            .map_err(|e| LogError::io("append to", &self.log_path, e))?;
        self.size += bytes.len() as u64;
        self.dirty = true;
        let mut at = position;
        for header in headers {
            self.track_batch(at, header);
            at += header.total_size() as u64;
        }
        Ok(())
    }

    /// Appends batches given as pieces (each batch's patched header, then its body as the
    /// producer sent it) with positioned vectored writes, so record bytes are not copied
    /// into an intermediate buffer. `headers` describe the batches in order. On error
    /// nothing is counted as written.
    pub fn append_pieces(
        &mut self,
        pieces: &[&[u8]],
        headers: &[BatchHeader],
    ) -> Result<(), LogError> {
        let position = self.size;
        let total: usize = pieces.iter().map(|p| p.len()).sum();
        write_all_vectored_at(&self.log, pieces, position)
            .map_err(|e| LogError::io("append to", &self.log_path, e))?;
        self.size += total as u64;
        self.dirty = true;
        let mut at = position;
        for header in headers {
            self.track_batch(at, header);
            at += header.total_size() as u64;
        }
        Ok(())
    }

    /// Reads up to `len` bytes from `position` (fewer at the end of the segment).
    pub fn read_bytes(&self, position: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let available = self.size.saturating_sub(position);
        let len = (len as u64).min(available) as usize;
        let mut buf = vec![0u8; len];
        self.log
            .read_exact_at(&mut buf, position)
            .map_err(|e| LogError::io("read", &self.log_path, e))?;
        Ok(buf)
    }

    /// The position and header of the batch that contains `offset`, or of the first batch
    /// after it when `offset` falls in a gap; `None` when the segment ends before `offset`.
    /// Index lookup, then a forward scan of batch headers.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let start = self
            .offset_index
            .lookup(offset)
            .map_or(0, |e| u64::from(e.position));
        self.scan_for(start, |h| h.last_offset() >= offset)
    }

    fn scan_for(
        &self,
        start: u64,
        mut wanted: impl FnMut(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let mut scanner = BatchScanner::new(&self.log, start, self.size, SMALL_CHUNK);
        while let Some((pos, header)) = scanner
            .next_header()
            .map_err(|e| scan_error(&self.log_path, e))?
        {
            if wanted(&header) {
                return Ok(Some((pos, header)));
            }
        }
        Ok(None)
    }

    /// The first record with timestamp `>= target` and offset `>= min_offset`, as
    /// `(offset, timestamp)`: time index lookup, then a scan of batch headers from the
    /// indexed position, then a walk of that batch's records when it is uncompressed.
    ///
    /// Record-level precision needs decompression, which this layer does not do: for a
    /// compressed CreateTime batch the answer is the batch's first offset (never later than
    /// the true answer, so a consumer that seeks there misses nothing), with its first
    /// timestamp when that already reaches `target`, else its max timestamp. LogAppendTime
    /// batches are exact without decoding (every record has the batch's max timestamp).
    pub fn offset_for_timestamp(
        &self,
        target: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        if self.max_timestamp < target || min_offset >= self.next_offset {
            return Ok(None);
        }
        let from = self
            .time_index
            .lookup(target)
            .map_or(self.base_offset, |e| e.offset)
            .max(min_offset);
        let start = self
            .offset_index
            .lookup(from)
            .map_or(0, |e| u64::from(e.position));
        let mut scanner = BatchScanner::new(&self.log, start, self.size, SMALL_CHUNK);
        while let Some((pos, h)) = scanner
            .next_header()
            .map_err(|e| scan_error(&self.log_path, e))?
        {
            if h.max_timestamp < target || h.last_offset() < min_offset {
                continue;
            }
            if let Some(found) = self.timestamp_in_batch(pos, &h, target, min_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Looks for the first record with a timestamp at or after `target` in one batch.
    fn timestamp_in_batch(
        &self,
        pos: u64,
        h: &BatchHeader,
        target: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let first = h.base_offset.max(min_offset);
        if h.timestamp_type_is_log_append() {
            return Ok(Some((first, h.max_timestamp)));
        }
        let bytes = self.read_bytes(pos, h.total_size())?;
        if h.compression() != 0 {
            // Kafka decompresses to find the exact record; so do we, within a bound.
            match super::decompress::inflate_batch(&bytes, h, INFLATE_CAP) {
                Ok((plain, ph)) => {
                    let found = records::first_at_or_after(&plain, &ph, target, min_offset)
                        .map_err(|e| self.corrupt_at(pos, e))?;
                    return Ok(found.map(|p| (p.offset, p.timestamp)));
                }
                Err(e) => {
                    tracing::warn!(batch = h.base_offset, error = %e, "timestamp lookup falls back to the batch start");
                    let ts = if h.base_timestamp >= target && first == h.base_offset {
                        h.base_timestamp
                    } else {
                        h.max_timestamp
                    };
                    return Ok(Some((first, ts)));
                }
            }
        }
        let found = records::first_at_or_after(&bytes, h, target, min_offset)
            .map_err(|e| self.corrupt_at(pos, e))?;
        Ok(found.map(|p| (p.offset, p.timestamp)))
    }

    /// The record with the segment's largest timestamp, as `(offset, timestamp)` (for
    /// ListOffsets MAX_TIMESTAMP). Exact for uncompressed and LogAppendTime batches; for a
    /// compressed CreateTime batch the batch is inflated (bounded) to find the exact record,
    /// as Kafka 3.8+ does.
    pub fn max_timestamp_record(&self) -> Result<Option<(i64, i64)>, LogError> {
        if self.max_timestamp < 0 {
            return Ok(None);
        }
        let max = self.max_timestamp;
        let Some((pos, h)) = self.find_batch(self.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        if h.max_timestamp != max {
            return Ok(Some((self.offset_of_max_timestamp, max)));
        }
        if h.timestamp_type_is_log_append() {
            return Ok(Some((h.base_offset, max)));
        }
        let bytes = self.read_bytes(pos, h.total_size())?;
        let (bytes, h) = if h.compression() != 0 {
            match super::decompress::inflate_batch(&bytes, &h, INFLATE_CAP) {
                Ok(plain) => plain,
                Err(e) => {
                    tracing::warn!(batch = h.base_offset, error = %e, "max timestamp lookup answers at batch level");
                    let offset = if h.base_timestamp == max {
                        h.base_offset
                    } else {
                        h.last_offset()
                    };
                    return Ok(Some((offset, max)));
                }
            }
        } else {
            (bytes, h)
        };
        let found =
            records::first_with_timestamp(&bytes, &h, max).map_err(|e| self.corrupt_at(pos, e))?;
        Ok(Some((found.map_or(h.last_offset(), |p| p.offset), max)))
    }

    fn corrupt_at(&self, pos: u64, e: super::batch::BatchError) -> LogError {
        LogError::Corrupt {
            path: self.log_path.clone(),
            detail: format!("the batch at byte {pos} has unreadable records: {e}"),
        }
    }

    /// Forces the `.log` to disk (`fdatasync`) if anything was written since the last flush.
    /// Indexes are not synced: they are caches that recovery checks and rebuilds.
    pub fn flush(&mut self) -> Result<(), LogError> {
        if self.dirty {
            self.log
                .sync_data()
                .map_err(|e| LogError::io("fsync", &self.log_path, e))?;
            self.dirty = false;
        }
        self.txn_index.flush()
    }

    /// Marks the segment inactive: writes the final time index entry for the max timestamp
    /// and trims both index files to their valid entries (Kafka's
    /// `onBecomeInactiveSegment`). Idempotent.
    pub fn seal(&mut self) -> Result<(), LogError> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true);
        }
        self.offset_index.trim()?;
        self.time_index.trim()?;
        self.active = false;
        Ok(())
    }

    /// Makes the segment the active one again: index files grow back to `index_max_bytes`.
    pub fn activate(&mut self, index_max_bytes: usize) -> Result<(), LogError> {
        self.offset_index.resize(index_max_bytes)?;
        self.time_index.resize(index_max_bytes)?;
        self.active = true;
        Ok(())
    }

    /// Changes the index interval for future appends.
    pub fn set_index_interval_bytes(&mut self, bytes: usize) {
        self.index_interval_bytes = bytes;
    }

    /// Drops every batch at or after the one containing `offset` (truncation happens at batch
    /// granularity: a mid-batch offset removes its whole batch). Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<u64, LogError> {
        match self.find_batch(offset)? {
            Some((pos, _)) => self.truncate_to_position(pos),
            None => Ok(0),
        }
    }

    /// Cuts the `.log` at `position` (a batch boundary), drops index entries at or past it
    /// and recomputes the in-memory state from what remains. Returns the bytes removed.
    pub(crate) fn truncate_to_position(&mut self, position: u64) -> Result<u64, LogError> {
        let file_len = self
            .log
            .metadata()
            .map_err(|e| LogError::io("read the size of", &self.log_path, e))?
            .len();
        if position >= file_len && position >= self.size {
            return Ok(0);
        }
        self.log
            .set_len(position)
            .map_err(|e| LogError::io("truncate", &self.log_path, e))?;
        let removed = file_len.max(self.size).saturating_sub(position);
        self.size = position;
        if position == 0 {
            self.first_timestamp = None;
        }
        self.dirty = true;
        self.offset_index.truncate_to_position(position);
        self.reload_tail_state()?;
        self.trim_txn_index()?;
        Ok(removed)
    }

    /// Recomputes `next_offset`, the max timestamp and `bytes_since_last_index_entry` from
    /// the indexes plus a header scan of the log after the relevant index entries (Kafka's
    /// `readLargestTimestamp`). Time index entries past the new end are dropped first.
    pub(crate) fn reload_tail_state(&mut self) -> Result<(), LogError> {
        let last_entry_pos = self
            .offset_index
            .last_entry()
            .map_or(0, |e| u64::from(e.position));
        let mut next_offset = self.base_offset;
        let mut scanner = BatchScanner::new(&self.log, last_entry_pos, self.size, SMALL_CHUNK);
        while let Some((_, h)) = scanner
            .next_header()
            .map_err(|e| scan_error(&self.log_path, e))?
        {
            next_offset = h.next_offset();
        }
        self.next_offset = next_offset;
        self.time_index.truncate_to(next_offset);

        let (mut max_ts, mut max_off) = self
            .time_index
            .last_entry()
            .map_or((-1, -1), |e| (e.timestamp, e.offset));
        let from = self
            .offset_index
            .lookup(if max_off >= 0 {
                max_off
            } else {
                self.base_offset
            })
            .map_or(0, |e| u64::from(e.position));
        let mut scanner = BatchScanner::new(&self.log, from, self.size, SMALL_CHUNK);
        while let Some((_, h)) = scanner
            .next_header()
            .map_err(|e| scan_error(&self.log_path, e))?
        {
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                max_off = h.last_offset();
            }
        }
        self.max_timestamp = max_ts;
        self.offset_of_max_timestamp = max_off;
        self.bytes_since_last_index_entry = self.size.saturating_sub(last_entry_pos) as usize;
        Ok(())
    }

    /// Empties both indexes (sized for appending) and the in-memory state, before recovery
    /// rebuilds them with [`Segment::track_batch`].
    pub(crate) fn reset_for_rebuild(&mut self, index_max_bytes: usize) -> Result<(), LogError> {
        self.offset_index.reset();
        self.time_index.reset();
        self.offset_index.resize(index_max_bytes)?;
        self.time_index.resize(index_max_bytes)?;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.bytes_since_last_index_entry = 0;
        Ok(())
    }

    /// Deletes the segment's files. Readers holding the file handle of a read plan can still
    /// finish their read (the inode lives until the last handle closes).
    pub fn delete(self) -> Result<(), LogError> {
        let Segment {
            log_path,
            offset_index,
            time_index,
            txn_index,
            ..
        } = self;
        match std::fs::remove_file(&log_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io("delete", &log_path, e)),
        }
        offset_index.delete()?;
        time_index.delete()?;
        txn_index.delete()
    }
}

/// `pwritev` of every piece at `position`, retrying short writes and EINTR.
fn write_all_vectored_at(file: &File, pieces: &[&[u8]], position: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // Skip what was written already: (piece index, offset within it).
    let (mut index, mut within, mut at) = (0usize, 0usize, position);
    while index < pieces.len() {
        if within >= pieces[index].len() {
            index += 1;
            within = 0;
            continue;
        }
        let iov: Vec<libc::iovec> = pieces[index..]
            .iter()
            .enumerate()
            .take(libc::UIO_MAXIOV as usize)
            .map(|(i, p)| {
                let p = if i == 0 { &p[within..] } else { p };
                libc::iovec {
                    iov_base: p.as_ptr() as *mut libc::c_void,
                    iov_len: p.len(),
                }
            })
            .collect();
        // SAFETY: every iovec points into a slice borrowed for the duration of the call,
        // and the file descriptor is open for as long as `file` lives.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                at as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        let mut n = n as usize;
        at += n as u64;
        while n > 0 && index < pieces.len() {
            let left = pieces[index].len() - within;
            if n >= left {
                n -= left;
                index += 1;
                within = 0;
            } else {
                within += n;
                n = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{assign_offsets, parse_header};
    use crate::log::builder::RecordBatchBuilder;

    /// A batch at `base` with `n` records of `value` bytes, timestamps `ts..ts+n`.
    fn batch(base: i64, n: usize, value: usize, ts: i64) -> (Vec<u8>, BatchHeader) {
        let mut b = RecordBatchBuilder::new();
        for i in 0..n {
            b.push(ts + i as i64, None, Some(&vec![1u8; value]), &[]);
        }
        let mut bytes = b.build();
        assign_offsets(&mut bytes, base, 0, None);
        let h = parse_header(&bytes).unwrap();
        (bytes, h)
    }

    fn filled(dir: &Path, batches: usize) -> (Segment, Vec<(u64, BatchHeader)>) {
        let mut seg = Segment::create(dir, 100, 1024, 64 * 1024).unwrap();
        let mut placed = Vec::new();
        let mut next = 100;
        for i in 0..batches {
            let (bytes, h) = batch(next, 5, 100, 1_000 + 10 * i as i64);
            placed.push((seg.size(), h));
            seg.append(&bytes, &h).unwrap();
            next = h.next_offset();
        }
        (seg, placed)
    }

    #[test]
    fn file_names_are_kafkas() {
        assert_eq!(file_name(42, LOG_SUFFIX), "00000000000000000042.log");
        assert_eq!(
            parse_file_name("00000000000000000042.timeindex"),
            Some((42, TIME_INDEX_SUFFIX))
        );
        assert_eq!(parse_file_name("42.log"), None);
        assert_eq!(parse_file_name("leader-epoch-checkpoint"), None);
    }

    #[test]
    fn index_lookup_then_scan_finds_the_containing_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (seg, placed) = filled(dir.path(), 60);
        assert!(seg.offset_index().len() > 5, "sparse index has entries");
        for (pos, h) in &placed {
            for off in h.base_offset..=h.last_offset() {
                let (p, found) = seg.find_batch(off).unwrap().unwrap();
                assert_eq!((p, found.base_offset), (*pos, h.base_offset));
            }
        }
        assert!(seg.find_batch(seg.next_offset()).unwrap().is_none());
    }

    #[test]
    fn time_index_lookup_finds_first_record_at_or_after() {
        let dir = tempfile::tempdir().unwrap();
        let (seg, _) = filled(dir.path(), 60);
        assert!(!seg.time_index().is_empty());
        // Batch i has timestamps 1000+10i .. 1000+10i+4 at offsets 100+5i ..
        assert_eq!(seg.offset_for_timestamp(0, 0).unwrap(), Some((100, 1000)));
        assert_eq!(
            seg.offset_for_timestamp(1203, 0).unwrap(),
            Some((203, 1203))
        );
        assert_eq!(
            seg.offset_for_timestamp(1206, 0).unwrap(),
            Some((205, 1210))
        );
        assert_eq!(seg.offset_for_timestamp(1_000_000, 0).unwrap(), None);
        assert_eq!(seg.max_timestamp(), 1000 + 590 + 4);
        assert_eq!(
            seg.max_timestamp_record().unwrap(),
            Some((seg.next_offset() - 1, 1594))
        );
    }

    #[test]
    fn seal_trims_indexes_and_reopen_reloads_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut seg, _) = filled(dir.path(), 30);
        let (next, max, size) = (seg.next_offset(), seg.max_timestamp(), seg.size());
        let entries = seg.offset_index().len();
        seg.seal().unwrap();
        let idx_len = std::fs::metadata(seg.offset_index().path()).unwrap().len();
        assert_eq!(idx_len, entries as u64 * 8);
        drop(seg);
        let mut seg = Segment::open_existing(dir.path(), 100, 1024).unwrap();
        assert_eq!(seg.size(), size);
        seg.reload_tail_state().unwrap();
        assert_eq!(seg.next_offset(), next);
        assert_eq!(seg.max_timestamp(), max);
    }

    #[test]
    fn truncate_to_drops_the_containing_batch_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let (mut seg, placed) = filled(dir.path(), 40);
        let (pos, h) = placed[20];
        let removed = seg.truncate_to(h.base_offset + 2).unwrap();
        assert!(removed > 0);
        assert_eq!(seg.size(), pos);
        assert_eq!(seg.next_offset(), h.base_offset);
        assert_eq!(seg.max_timestamp(), placed[19].1.max_timestamp);
        assert!(seg
            .offset_index()
            .last_entry()
            .is_none_or(|e| u64::from(e.position) < pos));
        // Appending continues where the truncation left off.
        let (bytes, nh) = batch(seg.next_offset(), 3, 10, 5_000);
        seg.append(&bytes, &nh).unwrap();
        assert_eq!(seg.find_batch(nh.base_offset).unwrap().unwrap().0, pos);
    }

    #[test]
    fn relative_offset_overflow_requires_roll() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 0, 4096, 1024).unwrap();
        assert!(!seg.needs_roll_for(i64::from(i32::MAX)));
        assert!(seg.needs_roll_for(i64::from(i32::MAX) + 1));
    }
}
