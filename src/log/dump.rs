//! The `dump-log` tool: prints every batch and index entry of a partition directory or of
//! one `.log`, `.index`, `.timeindex` or `.txnindex` file, and checks them (after Kafka's
//! `DumpLogSegments`). Transactional and control batches say so, a transaction marker
//! prints its type and coordinator epoch (`endTxnMarker: COMMIT coordinatorEpoch: 3`), the
//! aborted-transaction index prints its entries, and snapshots print each producer's
//! coordinator epoch and open transaction.
//!
//! Checks: each batch's structure and CRC-32C; offsets increasing inside a segment and from
//! one segment to the next (gaps are normal in a compacted log); every `.index` entry at a batch start with that batch's last
//! offset; `.timeindex` entries strictly increasing in timestamp, never decreasing in
//! offset, each naming a batch whose max timestamp is the entry's; the epoch checkpoint
//! and the producer state snapshots parse (each snapshot's producers are printed).
//! Problems are collected in [`DumpSummary::errors`] (the tool keeps going after a bad CRC,
//! and stops a file at the first unreadable batch header).
//!
//! Invariant: the dump only reads; it never maps, truncates or repairs a file, so it is safe
//! to run on the directory of a running or crashed broker. Trailing all-zero index entries
//! (the preallocated part of an active segment's index) end an index listing, as in Kafka.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::batch::BatchHeader;
use super::cleaner::swap::STAGING_DIR;
use super::cleaner::ATTR_DELETE_HORIZON;
use super::epoch_cache::{LeaderEpochCache, CHECKPOINT_FILE};
use super::error::LogError;
use super::index::{OFFSET_ENTRY_SIZE, TIME_ENTRY_SIZE};
use super::partition_log::{CLEANER_CHECKPOINT_FILE, LOG_START_OFFSET_FILE};
use super::producer_state;
use super::scan::{BatchScanner, ScanError, LARGE_CHUNK};
use super::segment::{file_name, parse_file_name, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use super::txn_index::{self, TXN_INDEX_SUFFIX};

/// True for the preallocated, still unused index file of an active segment: more than one
/// entry, all zero (a real first entry of zeros is a whole trimmed file of one entry).
fn all_zero_entries(bytes: &[u8], entry_size: usize) -> bool {
    bytes.len() > entry_size && bytes.iter().all(|b| *b == 0)
}

/// Records with a null value (tombstones) in a batch, if its records can be read.
fn count_tombstones(bytes: &[u8], h: &BatchHeader) -> Option<usize> {
    if h.is_control() {
        return Some(0);
    }
    let (plain, ph) = super::rewrite::uncompressed(bytes, h, 64 << 20).ok()?;
    let mut n = 0;
    for r in super::rewrite::records(&plain, &ph) {
        n += usize::from(!r.ok()?.has_value);
    }
    Some(n)
}

/// What a dump found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Batches printed.
    pub batches: usize,
    /// Index entries printed (both kinds).
    pub index_entries: usize,
    /// Every problem found, one sentence each. Empty means the data checked out.
    pub errors: Vec<String>,
}

/// Which parts of a segment to print.
#[derive(Debug, Clone, Copy)]
struct Parts {
    log: bool,
    index: bool,
    time_index: bool,
    txn_index: bool,
}

/// Dumps `path`: a partition directory, or a single `.log`, `.index` or `.timeindex` file.
/// Index files are checked against their sibling `.log` when it exists.
pub fn dump_path(path: &Path, out: &mut impl Write) -> Result<DumpSummary, LogError> {
    let meta = fs::metadata(path).map_err(|e| LogError::io("inspect", path, e))?;
    let mut d = Dumper {
        out,
        summary: DumpSummary::default(),
    };
    if meta.is_dir() {
        d.dump_dir(path)?;
        return Ok(d.summary);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some((base, suffix)) = parse_file_name(name) else {
        return Err(LogError::NotALogPath {
            path: path.to_path_buf(),
        });
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let parts = Parts {
        log: suffix == LOG_SUFFIX,
        index: suffix == INDEX_SUFFIX,
        time_index: suffix == TIME_INDEX_SUFFIX,
        txn_index: suffix == TXN_INDEX_SUFFIX,
    };
    d.dump_segment(dir, base, parts)?;
    Ok(d.summary)
}

struct Dumper<'w, W: Write> {
    out: &'w mut W,
    summary: DumpSummary,
}

/// What a segment scan learned, for checks across segments.
struct SegmentEnd {
    first_offset: Option<i64>,
    next_offset: Option<i64>,
}

fn write_error(e: std::io::Error) -> LogError {
    LogError::io("write the dump to", PathBuf::from("the output"), e)
}

impl<W: Write> Dumper<'_, W> {
    fn line(&mut self, text: std::fmt::Arguments<'_>) -> Result<(), LogError> {
        self.out.write_fmt(text).map_err(write_error)?;
        self.out.write_all(b"\n").map_err(write_error)
    }

    fn error(&mut self, msg: String) -> Result<(), LogError> {
        self.line(format_args!("ERROR: {msg}"))?;
        self.summary.errors.push(msg);
        Ok(())
    }

    fn dump_dir(&mut self, dir: &Path) -> Result<(), LogError> {
        let mut logs = Vec::new();
        let mut indexes = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| LogError::io("list", dir, e))? {
            let entry = entry.map_err(|e| LogError::io("list", dir, e))?;
            let name = entry.file_name();
            match name.to_str().and_then(parse_file_name) {
                Some((base, LOG_SUFFIX)) => logs.push(base),
                Some((base, _)) => indexes.push((base, entry.path())),
                None => {}
            }
        }
        logs.sort_unstable();
        self.line(format_args!(
            "Dumping partition directory {}",
            dir.display()
        ))?;
        self.dump_control_files(dir)?;
        for (base, path) in indexes {
            if logs.binary_search(&base).is_err() {
                self.error(format!(
                    "{} has no {} beside it",
                    path.display(),
                    file_name(base, LOG_SUFFIX)
                ))?;
            }
        }
        let all = Parts {
            log: true,
            index: true,
            time_index: true,
            txn_index: true,
        };
        let mut prev_next: Option<i64> = None;
        for base in logs {
            let end = self.dump_segment(dir, base, all)?;
            if let (Some(prev), Some(first)) = (prev_next, end.first_offset) {
                if first < prev {
                    self.error(format!(
                        "segments overlap: the previous segment ends before offset {prev} but \
                         {} starts at offset {first}",
                        file_name(base, LOG_SUFFIX)
                    ))?;
                }
            }
            if end.next_offset.is_some() {
                prev_next = end.next_offset;
            }
        }
        Ok(())
    }

    /// Prints a one-offset control file (`log-start-offset`, `cleaner-offset-checkpoint`).
    fn dump_offset_file(&mut self, dir: &Path, name: &str, meaning: &str) -> Result<(), LogError> {
        match fs::read_to_string(dir.join(name)) {
            Ok(text) => match super::checkpoint::parse_offset(&text) {
                Some(offset) => self.line(format_args!("{name}: {offset}{meaning}")),
                None => self.error(format!(
                    "{} does not hold an offset",
                    dir.join(name).display()
                )),
            },
            Err(_) => self.line(format_args!("{name}: absent")),
        }
    }

    fn dump_control_files(&mut self, dir: &Path) -> Result<(), LogError> {
        match LeaderEpochCache::load(dir) {
            Ok(Some(cache)) => {
                self.line(format_args!("{CHECKPOINT_FILE}:"))?;
                for e in cache.entries() {
                    self.line(format_args!(
                        "  epoch: {} startOffset: {}",
                        e.epoch, e.start_offset
                    ))?;
                }
            }
            Ok(None) => self.line(format_args!("{CHECKPOINT_FILE}: absent"))?,
            Err(e) => self.error(e.to_string())?,
        }
        self.dump_offset_file(dir, LOG_START_OFFSET_FILE, "")?;
        self.dump_offset_file(
            dir,
            CLEANER_CHECKPOINT_FILE,
            " (the log cleaner compacted the segments below this offset)",
        )?;
        if dir.join(STAGING_DIR).exists() {
            self.line(format_args!(
                "{STAGING_DIR}/: a cleaner rewrite in progress (finished or discarded at open)"
            ))?;
        }
        for offset in producer_state::list_snapshots(dir)? {
            let name = producer_state::snapshot_file_name(offset);
            match producer_state::read_snapshot(dir, offset) {
                Ok(producers) => {
                    self.line(format_args!("{name}: {} producers", producers.len()))?;
                    for (id, e) in producers {
                        let batches: Vec<String> = e
                            .batches
                            .iter()
                            .map(|b| {
                                format!(
                                    "seq {}..{} offsets {}..{}",
                                    b.first_seq, b.last_seq, b.first_offset, b.last_offset
                                )
                            })
                            .collect();
                        self.line(format_args!(
                            "  producerId: {id} producerEpoch: {} lastUpdateMs: {} \
                             coordinatorEpoch: {} currentTxnFirstOffset: {} batches: [{}]",
                            e.epoch,
                            e.last_update_ms,
                            e.coordinator_epoch,
                            e.current_txn_first_offset.unwrap_or(-1),
                            batches.join(", ")
                        ))?;
                    }
                }
                Err(why) => self.error(format!(
                    "{} is unreadable: {why}",
                    dir.join(&name).display()
                ))?,
            }
        }
        Ok(())
    }

    fn dump_segment(
        &mut self,
        dir: &Path,
        base: i64,
        parts: Parts,
    ) -> Result<SegmentEnd, LogError> {
        let log_path = dir.join(file_name(base, LOG_SUFFIX));
        let index_path = dir.join(file_name(base, INDEX_SUFFIX));
        let time_path = dir.join(file_name(base, TIME_INDEX_SUFFIX));
        let offset_entries = if parts.index {
            self.dump_offset_index(&index_path, base)?
        } else {
            Vec::new()
        };
        let time_entries = if parts.time_index {
            self.dump_time_index(&time_path, base)?
        } else {
            Vec::new()
        };
        let file = match File::open(&log_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !parts.log => {
                self.line(format_args!(
                    "{} is absent: index entries not checked against it",
                    log_path.display()
                ))?;
                return Ok(SegmentEnd {
                    first_offset: None,
                    next_offset: None,
                });
            }
            Err(e) => return Err(LogError::io("open", &log_path, e)),
        };
        let size = file
            .metadata()
            .map_err(|e| LogError::io("inspect", &log_path, e))?
            .len();
        if parts.txn_index {
            self.dump_txn_index(&dir.join(file_name(base, TXN_INDEX_SUFFIX)))?;
        }
        let checker = EntryChecker::new(offset_entries, time_entries);
        self.scan_log(&file, &log_path, base, size, parts.log, checker)
    }

    /// Prints the entries of a `.txnindex` file (absent: no aborted transaction there).
    fn dump_txn_index(&mut self, path: &Path) -> Result<(), LogError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LogError::io("read", path, e)),
        };
        self.line(format_args!("Dumping {}", path.display()))?;
        let (entries, damage) = txn_index::parse(&bytes);
        for e in entries {
            self.line(format_args!(
                "version: 0 producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
                e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset
            ))?;
        }
        if let Some(why) = damage {
            self.error(format!("{}: {why}", path.display()))?;
        }
        Ok(())
    }

    fn scan_log(
        &mut self,
        file: &File,
        log_path: &Path,
        base: i64,
        size: u64,
        print: bool,
        mut checker: EntryChecker,
    ) -> Result<SegmentEnd, LogError> {
        if print {
            self.line(format_args!(
                "Dumping {} ({size} bytes)",
                log_path.display()
            ))?;
        }
        let mut scanner = BatchScanner::new(file, 0, size, LARGE_CHUNK);
        let (mut first, mut next): (Option<i64>, Option<i64>) = (None, None);
        loop {
            let (pos, h, crc_ok, tombstones, marker) = match scanner.next_batch_unverified() {
                Ok(Some((pos, h, bytes))) => {
                    let ok = super::batch::crc_matches(bytes, &h);
                    (
                        pos,
                        h,
                        ok,
                        if print && !h.is_control() {
                            count_tombstones(bytes, &h)
                        } else {
                            None
                        },
                        if print {
                            super::control::parse_marker_batch(bytes, &h)
                        } else {
                            None
                        },
                    )
                }
                Ok(None) => break,
                Err(ScanError::Invalid { position, why }) => {
                    self.error(format!(
                        "{}: the {} bytes from position {position} are not a valid batch: {}",
                        log_path.display(),
                        size - position,
                        why.reason()
                    ))?;
                    break;
                }
                Err(ScanError::Io(e)) => return Err(LogError::io("read", log_path, e)),
            };
            if print {
                self.print_batch(pos, &h, crc_ok, tombstones, marker)?;
                self.summary.batches += 1;
            }
            if !crc_ok {
                self.error(format!(
                    "{}: the batch at position {pos} (offsets {}..={}) has a CRC-32C mismatch",
                    log_path.display(),
                    h.base_offset,
                    h.last_offset()
                ))?;
            }
            match next {
                None if h.base_offset < base => self.error(format!(
                    "{}: the first batch starts at offset {}, below the segment's base offset {base}",
                    log_path.display(),
                    h.base_offset
                ))?,
                // A cleaned segment has gaps (whole batches compacted away), never overlaps.
                Some(expected) if h.base_offset < expected => self.error(format!(
                    "{}: offsets go backwards at position {pos}: expected offset {expected} or \
                     later, found {}",
                    log_path.display(),
                    h.base_offset
                ))?,
                _ => {}
            }
            first.get_or_insert(h.base_offset);
            next = Some(h.next_offset());
            for msg in checker.on_batch(pos, &h) {
                self.error(format!("{}: {msg}", log_path.display()))?;
            }
        }
        for msg in checker.finish() {
            self.error(format!("{}: {msg}", log_path.display()))?;
        }
        Ok(SegmentEnd {
            first_offset: first,
            next_offset: next,
        })
    }

    fn print_batch(
        &mut self,
        pos: u64,
        h: &BatchHeader,
        crc_ok: bool,
        tombstones: Option<usize>,
        marker: Option<super::control::Marker>,
    ) -> Result<(), LogError> {
        let codec = match h.compression() {
            0 => "none",
            1 => "gzip",
            2 => "snappy",
            3 => "lz4",
            4 => "zstd",
            _ => "unknown",
        };
        let ts_type = if h.timestamp_type_is_log_append() {
            "LogAppendTime"
        } else {
            "CreateTime"
        };
        self.line(format_args!(
            "baseOffset: {} lastOffset: {} count: {} position: {pos} size: {} \
             partitionLeaderEpoch: {} magic: {} crc: {} crcValid: {crc_ok} compresscodec: {codec} \
             isTransactional: {} isControl: {} {ts_type}: {} baseTimestamp: {} producerId: {} \
             producerEpoch: {} baseSequence: {}{}{}{}",
            h.base_offset,
            h.last_offset(),
            h.records_count,
            h.total_size(),
            h.partition_leader_epoch,
            h.magic,
            h.crc,
            h.is_transactional(),
            h.is_control(),
            h.max_timestamp,
            h.base_timestamp,
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            tombstones.map_or(String::new(), |n| format!(" tombstones: {n}")),
            if h.attributes & ATTR_DELETE_HORIZON != 0 {
                format!(" deleteHorizonMs: {}", h.base_timestamp)
            } else {
                String::new()
            },
            marker.map_or(String::new(), |m| format!(
                " endTxnMarker: {}",
                super::control::describe(&m)
            ))
        ))
    }

    /// Prints the entries of an `.index` file; returns them for the checks against the log.
    fn dump_offset_index(&mut self, path: &Path, base: i64) -> Result<Vec<(i64, u64)>, LogError> {
        let Some(bytes) = self.read_index(path, OFFSET_ENTRY_SIZE)? else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<(i64, u64)> = Vec::new();
        let preallocated = all_zero_entries(&bytes, OFFSET_ENTRY_SIZE);
        for (i, e) in bytes.chunks_exact(OFFSET_ENTRY_SIZE).enumerate() {
            let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if (i > 0 || preallocated) && rel == 0 && pos == 0 {
                self.line(format_args!(
                    "  (zero entries from entry {i} on: unused space)"
                ))?;
                break;
            }
            let offset = base + i64::from(rel);
            self.line(format_args!("  offset: {offset} position: {pos}"))?;
            self.summary.index_entries += 1;
            if let Some(&(prev_off, prev_pos)) = entries.last() {
                if offset <= prev_off || u64::from(pos) <= prev_pos {
                    self.error(format!(
                        "{}: entry {i} (offset {offset}, position {pos}) does not follow the \
                         previous entry (offset {prev_off}, position {prev_pos})",
                        path.display()
                    ))?;
                }
            }
            entries.push((offset, u64::from(pos)));
        }
        Ok(entries)
    }

    /// Prints the entries of a `.timeindex` file; returns them for the checks against the
    /// log.
    fn dump_time_index(&mut self, path: &Path, base: i64) -> Result<Vec<(i64, i64)>, LogError> {
        let Some(bytes) = self.read_index(path, TIME_ENTRY_SIZE)? else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<(i64, i64)> = Vec::new();
        let preallocated = all_zero_entries(&bytes, TIME_ENTRY_SIZE);
        for (i, e) in bytes.chunks_exact(TIME_ENTRY_SIZE).enumerate() {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&e[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            if (i > 0 || preallocated) && ts == 0 && rel == 0 {
                self.line(format_args!(
                    "  (zero entries from entry {i} on: unused space)"
                ))?;
                break;
            }
            let offset = base + i64::from(rel);
            self.line(format_args!("  timestamp: {ts} offset: {offset}"))?;
            self.summary.index_entries += 1;
            if let Some(&(prev_ts, prev_off)) = entries.last() {
                if ts <= prev_ts || offset < prev_off {
                    self.error(format!(
                        "{}: entry {i} (timestamp {ts}, offset {offset}) does not follow the \
                         previous entry (timestamp {prev_ts}, offset {prev_off}); the time index \
                         must grow",
                        path.display()
                    ))?;
                }
            }
            entries.push((ts, offset));
        }
        Ok(entries)
    }

    fn read_index(&mut self, path: &Path, entry_size: usize) -> Result<Option<Vec<u8>>, LogError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.line(format_args!("{} is absent", path.display()))?;
                return Ok(None);
            }
            Err(e) => return Err(LogError::io("read", path, e)),
        };
        self.line(format_args!(
            "Dumping {} ({} bytes)",
            path.display(),
            bytes.len()
        ))?;
        if bytes.len() % entry_size != 0 {
            self.error(format!(
                "{}: its length {} is not a multiple of the {entry_size}-byte entry size",
                path.display(),
                bytes.len()
            ))?;
        }
        Ok(Some(bytes))
    }
}

/// Checks index entries against the batches of the log in one merged pass (both are sorted).
struct EntryChecker {
    offsets: Vec<(i64, u64)>,
    next_offset_entry: usize,
    times: Vec<(i64, i64)>,
    next_time_entry: usize,
}

impl EntryChecker {
    fn new(offsets: Vec<(i64, u64)>, times: Vec<(i64, i64)>) -> Self {
        EntryChecker {
            offsets,
            next_offset_entry: 0,
            times,
            next_time_entry: 0,
        }
    }

    fn on_batch(&mut self, pos: u64, h: &BatchHeader) -> Vec<String> {
        let mut problems = Vec::new();
        while let Some(&(offset, entry_pos)) = self.offsets.get(self.next_offset_entry) {
            if entry_pos > pos {
                break;
            }
            if entry_pos < pos {
                problems.push(format!(
                    "index entry (offset {offset}, position {entry_pos}) does not point at the \
                     start of a batch"
                ));
            } else if offset != h.last_offset() {
                problems.push(format!(
                    "index entry (offset {offset}, position {entry_pos}) points at a batch whose \
                     last offset is {}",
                    h.last_offset()
                ));
            }
            self.next_offset_entry += 1;
        }
        while let Some(&(ts, offset)) = self.times.get(self.next_time_entry) {
            if offset > h.last_offset() {
                break;
            }
            if offset < h.base_offset {
                problems.push(format!(
                    "time index entry (timestamp {ts}, offset {offset}) names an offset that is \
                     in no batch"
                ));
            } else if ts != h.max_timestamp {
                problems.push(format!(
                    "time index entry (timestamp {ts}, offset {offset}) disagrees with the max \
                     timestamp {} of the batch holding that offset",
                    h.max_timestamp
                ));
            }
            self.next_time_entry += 1;
        }
        problems
    }

    fn finish(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for &(offset, pos) in &self.offsets[self.next_offset_entry.min(self.offsets.len())..] {
            problems.push(format!(
                "index entry (offset {offset}, position {pos}) points past the last valid batch"
            ));
        }
        for &(ts, offset) in &self.times[self.next_time_entry.min(self.times.len())..] {
            problems.push(format!(
                "time index entry (timestamp {ts}, offset {offset}) names an offset past the \
                 last valid batch"
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::log::partition_log::PartitionLog;
    use crate::log::test_util::{log_file, produce, producer_batch, small_config};

    fn dump(path: &Path) -> (DumpSummary, String) {
        let mut out = Vec::new();
        let summary = dump_path(path, &mut out).unwrap();
        (summary, String::from_utf8(out).unwrap())
    }

    fn sample(dir: &Path) -> u64 {
        let batch_size = producer_batch(4, 100, 0).len() as u64;
        let mut log = PartitionLog::open(dir, small_config(batch_size * 6)).unwrap();
        for i in 0..15 {
            produce(&mut log, 4, 100, 1_000 + i, 1);
        }
        log.close().unwrap();
        batch_size
    }

    #[test]
    fn dump_prints_batches_and_index_entries_of_a_healthy_log() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        let (summary, text) = dump(dir.path());
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert_eq!(summary.batches, 15);
        assert!(summary.index_entries > 0);
        assert!(text.contains("baseOffset: 0 lastOffset: 3 count: 4 position: 0"));
        assert!(text.contains("crcValid: true"));
        assert!(text.contains("partitionLeaderEpoch: 1"));
        assert!(text.contains("offset: "));
        assert!(text.contains("timestamp: "));
        assert!(text.contains("epoch: 1 startOffset: 0"));
    }

    #[test]
    fn dump_shows_transactional_batches_markers_and_the_aborted_index() {
        use crate::log::partition_log::LogConfig;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        let mut b = crate::log::RecordBatchBuilder::new()
            .producer(7, 2, 0)
            .attributes(crate::log::batch::ATTR_TRANSACTIONAL);
        b.push(1_000, Some(b"k"), Some(b"v"), &[]);
        let bytes = b.build();
        let hs = crate::log::validate_producer_batches(&bytes, 1 << 20).unwrap();
        log.append(&bytes, &hs, 0, 1_000).unwrap();
        let marker = crate::log::control::marker_batch(
            7,
            2,
            5,
            crate::log::control::ControlType::Abort,
            1_000,
        );
        let h = crate::log::parse_header(&marker).unwrap();
        log.append_from(
            &marker,
            &[h],
            0,
            1_000,
            crate::log::producer_state::AppendOrigin::Coordinator,
        )
        .unwrap();
        log.close().unwrap();
        let (summary, text) = dump(dir.path());
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert!(
            text.contains("isTransactional: true isControl: false"),
            "{text}"
        );
        assert!(text.contains("isControl: true"), "{text}");
        assert!(
            text.contains("endTxnMarker: ABORT coordinatorEpoch: 5"),
            "{text}"
        );
        assert!(
            text.contains("producerId: 7 firstOffset: 0 lastOffset: 1 lastStableOffset: 2"),
            "{text}"
        );
        assert!(
            text.contains("coordinatorEpoch: 5 currentTxnFirstOffset: -1"),
            "{text}"
        );
        let (_, one) = dump(&dir.path().join("00000000000000000000.txnindex"));
        assert!(one.contains("lastStableOffset: 2"), "{one}");
    }

    #[test]
    fn dump_detects_a_corrupt_crc() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = sample(dir.path());
        let path = log_file(dir.path(), 0);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let at = 2 * batch_size + 70;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 1], at).unwrap();

        let (summary, text) = dump(&path);
        assert_eq!(summary.batches, 6, "the dump carries on after a bad CRC");
        assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
        assert!(summary.errors[0].contains("CRC"));
        assert!(text.contains("crcValid: false"));
    }

    #[test]
    fn dump_detects_index_entries_that_miss_batch_starts() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        let index = dir.path().join(file_name(0, INDEX_SUFFIX));
        let mut bytes = fs::read(&index).unwrap();
        assert!(!bytes.is_empty());
        bytes[7] = bytes[7].wrapping_add(1); // position of the first entry, off by one
        fs::write(&index, bytes).unwrap();
        let (summary, _) = dump(&index);
        assert!(
            summary
                .errors
                .iter()
                .any(|e| e.contains("start of a batch")),
            "{:?}",
            summary.errors
        );
    }

    #[test]
    fn dump_detects_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        sample(dir.path());
        let path = log_file(dir.path(), 0);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - 5).unwrap();
        let (summary, _) = dump(dir.path());
        assert!(summary
            .errors
            .iter()
            .any(|e| e.contains("not a valid batch")));
    }

    #[test]
    fn dump_refuses_other_paths() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("notes.txt");
        fs::write(&other, "hi").unwrap();
        let e = dump_path(&other, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, LogError::NotALogPath { .. }));
    }
}
