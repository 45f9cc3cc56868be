//! Opening a partition directory after a clean or unclean stop: which files form segments,
//! how much of each `.log` is valid, and whether each index can be trusted.
//!
//! What it does, per segment in base-offset order:
//! - The last segment after an unclean stop (no clean-shutdown marker) is scanned in full:
//!   every batch's header, CRC and offset order is checked, both indexes are rebuilt from
//!   the batches, and the file is truncated at the first torn or corrupt batch.
//! - Every other segment (and the last one after a clean stop) is trusted if its indexes are
//!   sane: the offset index is well formed and its last entry points at a batch with that
//!   last offset. Then only the tail after the last index entry is checked (headers, CRC,
//!   order) and truncated if bad, and the time index is checked against the segment's end.
//!   An index that fails a check is rebuilt by a full scan of its segment.
//!
//! Decisions (documented deviations from Kafka, which trusts everything below its recovery
//! point and deletes every segment after a corrupt one):
//! - There is no recovery-point file; instead the tail of each sealed segment is checked,
//!   which is cheap (about one index interval per segment) and catches torn sealed segments.
//! - A corrupt sealed segment is truncated, but later segments are kept: they hold data that
//!   is still valid, and readers skip the gap (a fetch returns the next batch after it).
//!
//! Also: index files without a `.log` and `*.tmp` leftovers are deleted, and a segment whose
//! `.log` is empty is removed unless it is the first one. Every truncation logs a
//! `tracing::warn!` naming the file, the position and the bytes dropped.
//!
//! Invariants on return: segments are ordered by base offset and do not overlap; every
//! segment's state matches its files; all segments but the last are sealed, the last is
//! active.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use super::batch::BatchHeader;
use super::checkpoint::TMP_SUFFIX;
use super::config::LogConfig;
use super::error::LogError;
use super::index::relative_offset;
use super::scan::{BatchScanner, Invalid, ScanError, LARGE_CHUNK, SMALL_CHUNK};
use super::segment::{file_name, parse_file_name, scan_error, Segment, LOG_SUFFIX};

/// What loading the segments of a directory produced.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The segments, keyed by base offset.
    pub segments: BTreeMap<i64, Segment>,
    /// `(epoch, first offset)` for each epoch increase seen in the batches that were scanned,
    /// in log order (Kafka assigns these to the epoch cache during segment recovery).
    pub epoch_starts: Vec<(i32, i64)>,
    /// The base offset of the first segment whose `.txnindex` was damaged: the producer
    /// state must be replayed from there at most, so the lost entries are written again.
    pub txn_rebuild_from: Option<i64>,
}

/// How much of a segment to re-validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Check the indexes and the tail after the last index entry.
    Trusted,
    /// Rebuild the indexes from a full scan.
    Full,
}

/// Loads every segment of `dir`. `clean_shutdown` says whether the previous run closed the
/// log properly (then the last segment gets the cheap check too).
pub(crate) fn load_segments(
    dir: &Path,
    config: &LogConfig,
    clean_shutdown: bool,
) -> Result<Recovered, LogError> {
    let mut logs = BTreeSet::new();
    let mut index_files = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TMP_SUFFIX) {
            let path = entry.path();
            tracing::info!(file = %path.display(), "deleting leftover temporary file");
            fs::remove_file(&path).map_err(|e| LogError::io("delete", &path, e))?;
            continue;
        }
        match parse_file_name(name) {
            Some((base, LOG_SUFFIX)) => {
                logs.insert(base);
            }
            Some((base, _)) => index_files.push((base, entry.path())),
            None => {}
        }
    }
    for (base, path) in index_files {
        if !logs.contains(&base) {
            tracing::warn!(
                file = %path.display(),
                "deleting index file {} because its segment {} does not exist",
                path.display(),
                file_name(base, LOG_SUFFIX)
            );
            fs::remove_file(&path).map_err(|e| LogError::io("delete", &path, e))?;
        }
    }

    let last_base = logs.last().copied();
    let mut segments = BTreeMap::new();
    let mut epoch_starts = Vec::new();
    for base in logs {
        let mut seg = Segment::open_existing(dir, base, config.index_interval_bytes)?;
        let mode = if Some(base) == last_base && !clean_shutdown {
            Mode::Full
        } else {
            Mode::Trusted
        };
        recover_segment(&mut seg, mode, config, &mut epoch_starts)?;
        segments.insert(base, seg);
    }

    remove_empty_segments(&mut segments)?;
    fix_overlaps(&mut segments)?;

    let last = segments.keys().next_back().copied();
    let mut txn_rebuild_from = None;
    for (base, seg) in segments.iter_mut() {
        if Some(*base) == last {
            seg.activate(config.index_max_bytes)?;
        } else {
            seg.seal()?;
        }
        // Aborted transactions whose markers recovery cut off go with them.
        seg.trim_txn_index()?;
        if let Some(why) = seg.txn_index_damage() {
            tracing::warn!(
                file = %seg.txn_index().path().display(),
                "dropped the damaged end of {}: {why}; it is rebuilt from the log",
                seg.txn_index().path().display()
            );
            txn_rebuild_from.get_or_insert(*base);
        }
    }
    Ok(Recovered {
        segments,
        epoch_starts,
        txn_rebuild_from,
    })
}

/// Removes empty segments other than the first (a roll that crashed before its first
/// append, or a segment emptied by recovery).
fn remove_empty_segments(segments: &mut BTreeMap<i64, Segment>) -> Result<(), LogError> {
    let first = segments.keys().next().copied();
    let empty: Vec<i64> = segments
        .iter()
        .filter(|(base, seg)| Some(**base) != first && seg.is_empty())
        .map(|(base, _)| *base)
        .collect();
    for base in empty {
        if let Some(seg) = segments.remove(&base) {
            tracing::info!(
                file = %seg.log_path().display(),
                "removing empty segment {}",
                seg.log_path().display()
            );
            seg.delete()?;
        }
    }
    Ok(())
}

/// A segment that runs into the next one's base offset is cut there.
fn fix_overlaps(segments: &mut BTreeMap<i64, Segment>) -> Result<(), LogError> {
    let bases: Vec<i64> = segments.keys().copied().collect();
    for pair in bases.windows(2) {
        let (base, next_base) = (pair[0], pair[1]);
        if let Some(seg) = segments.get_mut(&base) {
            if seg.next_offset() > next_base {
                let removed = seg.truncate_to(next_base)?;
                tracing::warn!(
                    file = %seg.log_path().display(),
                    dropped_bytes = removed,
                    "dropped {removed} bytes from {} because they overlap the next segment, \
                     which starts at offset {next_base}",
                    seg.log_path().display()
                );
            }
        }
    }
    Ok(())
}

/// Records an epoch increase seen in a batch (Kafka's `LogSegment.recover` rule).
fn note_epoch(epoch_starts: &mut Vec<(i32, i64)>, h: &BatchHeader) {
    let epoch = h.partition_leader_epoch;
    if epoch >= 0 && epoch_starts.last().is_none_or(|(e, _)| epoch > *e) {
        epoch_starts.push((epoch, h.base_offset));
    }
}

/// Offset-order rules for a batch found in segment `base` after a batch ending at
/// `prev_next`.
fn check_order(base: i64, prev_next: Option<i64>, h: &BatchHeader) -> Result<(), String> {
    if h.base_offset < base {
        return Err(format!(
            "the batch's base offset {} is below the segment's base offset {base}",
            h.base_offset
        ));
    }
    if let Some(next) = prev_next {
        if h.base_offset < next {
            return Err(format!(
                "the batch's base offset {} does not follow the previous batch, which ends at {}",
                h.base_offset,
                next - 1
            ));
        }
    }
    if relative_offset(base, h.last_offset()).is_none() {
        return Err(format!(
            "the batch's last offset {} is too far from the segment's base offset {base}",
            h.last_offset()
        ));
    }
    Ok(())
}

fn recover_segment(
    seg: &mut Segment,
    mode: Mode,
    config: &LogConfig,
    epoch_starts: &mut Vec<(i32, i64)>,
) -> Result<u64, LogError> {
    if mode == Mode::Trusted {
        match check_offset_index(seg) {
            Ok(()) => match validate_tail(seg, config, epoch_starts)? {
                Ok(truncated) => return Ok(truncated),
                Err(reason) => tracing::warn!(
                    file = %seg.log_path().display(),
                    "rebuilding the indexes of {}: {reason}",
                    seg.log_path().display()
                ),
            },
            Err(reason) => tracing::warn!(
                file = %seg.offset_index().path().display(),
                "rebuilding the indexes of {} because its offset index is unusable: {reason}",
                seg.log_path().display()
            ),
        }
    }
    rebuild(seg, config, epoch_starts)
}

/// Checks the offset index's structure and that its last entry names a real batch.
fn check_offset_index(seg: &Segment) -> Result<(), String> {
    seg.offset_index().sanity_check(seg.size())?;
    let Some(last) = seg.offset_index().last_entry() else {
        return Ok(());
    };
    let pos = u64::from(last.position);
    let mut scanner = BatchScanner::new(seg.file(), pos, seg.size(), SMALL_CHUNK);
    match scanner.next_header() {
        Ok(Some((_, h))) if h.last_offset() == last.offset => Ok(()),
        Ok(Some((_, h))) => Err(format!(
            "its last entry says offset {} at byte {pos}, but the batch there ends at offset {}",
            last.offset,
            h.last_offset()
        )),
        Ok(None) => Err(format!(
            "its last entry points at byte {pos}, the end of the log"
        )),
        Err(ScanError::Invalid { why, .. }) => Err(format!(
            "its last entry points at byte {pos}, where there is no valid batch: {}",
            why.reason()
        )),
        Err(ScanError::Io(e)) => Err(format!("reading the log failed: {e}")),
    }
}

/// Validates the batches after the last index entry, truncating at the first bad one, and
/// returns the bytes dropped. `Ok(Err(reason))` means the indexes do not fit the log and
/// must be rebuilt: the time index is malformed or missing, or the offset index stops short
/// (more than `index_interval_bytes` of batches follow its last entry, which the indexing
/// rule never leaves, so entries were lost, e.g. a deleted `.index`).
fn validate_tail(
    seg: &mut Segment,
    config: &LogConfig,
    epoch_starts: &mut Vec<(i32, i64)>,
) -> Result<Result<u64, String>, LogError> {
    let start = seg
        .offset_index()
        .last_entry()
        .map_or(0, |e| u64::from(e.position));
    let mut last_batch_pos = start;
    let (cut, prev_next) = scan_valid(
        seg.file(),
        seg.log_path(),
        seg.base_offset(),
        start,
        seg.size(),
        epoch_starts,
        |pos, _| last_batch_pos = pos,
    )?;
    if last_batch_pos - start > config.index_interval_bytes as u64 {
        return Ok(Err(format!(
            "its offset index stops at byte {start} but batches continue to byte {}",
            seg.size()
        )));
    }
    if seg.time_index().is_empty() && !seg.offset_index().is_empty() {
        return Ok(Err("its time index is empty".to_string()));
    }
    let tail_next = prev_next.unwrap_or(seg.base_offset());
    if let Err(reason) = seg.time_index().sanity_check(tail_next) {
        return Ok(Err(format!("its time index is unusable: {reason}")));
    }
    let truncated = match cut {
        Some((position, why)) => truncate_tail(seg, position, &why)?,
        None => {
            seg.reload_tail_state()?;
            0
        }
    };
    Ok(Ok(truncated))
}

/// Rebuilds both indexes and the state of `seg` from a full scan, truncating at the first
/// bad batch.
fn rebuild(
    seg: &mut Segment,
    config: &LogConfig,
    epoch_starts: &mut Vec<(i32, i64)>,
) -> Result<u64, LogError> {
    seg.reset_for_rebuild(config.index_max_bytes)?;
    let file = Arc::clone(seg.file());
    let path = seg.log_path().to_path_buf();
    let (base, size) = (seg.base_offset(), seg.size());
    let (cut, _) = scan_valid(&file, &path, base, 0, size, epoch_starts, |pos, h| {
        seg.track_batch(pos, h)
    })?;
    match cut {
        Some((position, why)) => truncate_tail(seg, position, &why),
        None => Ok(0),
    }
}

/// Where a scan stopped early: the position of the first bad batch and why.
type Cut = Option<(u64, String)>;

/// Scans whole batches (with CRC and order checks) of the segment `base` stored in `file`,
/// from `start` to `end`. Calls `each` for every valid batch and returns where the first bad
/// batch starts (with why) and the next offset after the last valid batch.
fn scan_valid(
    file: &File,
    path: &Path,
    base: i64,
    start: u64,
    end: u64,
    epoch_starts: &mut Vec<(i32, i64)>,
    mut each: impl FnMut(u64, &BatchHeader),
) -> Result<(Cut, Option<i64>), LogError> {
    let mut scanner = BatchScanner::new(file, start, end, LARGE_CHUNK);
    let mut prev_next: Option<i64> = None;
    loop {
        match scanner.next_batch() {
            Ok(Some((pos, h, _))) => {
                if let Err(why) = check_order(base, prev_next, &h) {
                    return Ok((Some((pos, why)), prev_next));
                }
                note_epoch(epoch_starts, &h);
                each(pos, &h);
                prev_next = Some(h.next_offset());
            }
            Ok(None) => return Ok((None, prev_next)),
            Err(ScanError::Invalid { position, why }) => {
                let reason = match why {
                    Invalid::Torn(r) => format!("torn write: {r}"),
                    Invalid::Corrupt(r) => format!("corrupt batch: {r}"),
                };
                return Ok((Some((position, reason)), prev_next));
            }
            Err(e @ ScanError::Io(_)) => return Err(scan_error(path, e)),
        }
    }
}

fn truncate_tail(seg: &mut Segment, position: u64, why: &str) -> Result<u64, LogError> {
    let dropped = seg.truncate_to_position(position)?;
    tracing::warn!(
        file = %seg.log_path().display(),
        position,
        dropped_bytes = dropped,
        "recovery dropped {dropped} bytes from {} starting at byte {position} ({why}); the \
         log now ends at offset {}",
        seg.log_path().display(),
        seg.next_offset()
    );
    Ok(dropped)
}

/// Reads the leader epoch of every batch in `segments` (headers only), for rebuilding a
/// missing or corrupt `leader-epoch-checkpoint`.
pub(crate) fn scan_epochs(segments: &BTreeMap<i64, Segment>) -> Result<Vec<(i32, i64)>, LogError> {
    let mut epoch_starts = Vec::new();
    for seg in segments.values() {
        let mut scanner = BatchScanner::new(seg.file(), 0, seg.size(), LARGE_CHUNK);
        while let Some((_, h)) = scanner
            .next_header()
            .map_err(|e| scan_error(seg.log_path(), e))?
        {
            note_epoch(&mut epoch_starts, &h);
        }
    }
    Ok(epoch_starts)
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;

    use crate::log::epoch_cache::CHECKPOINT_FILE;
    use crate::log::partition_log::PartitionLog;
    use crate::log::segment::{INDEX_SUFFIX, TIME_INDEX_SUFFIX};
    use crate::log::test_util::{
        capture_logs, headers_of, log_file, produce, producer_batch, small_config,
    };
    use crate::log::{dump_path, LogConfig};

    use super::*;

    fn chop(path: &Path, bytes: u64) {
        let f = OpenOptions::new().write(true).open(path).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - bytes).unwrap();
    }

    fn flip_byte(path: &Path, at: u64) {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x5a;
        f.write_all_at(&b, at).unwrap();
    }

    fn assert_dump_clean(dir: &Path) {
        let mut out = Vec::new();
        let summary = dump_path(dir, &mut out).unwrap();
        assert!(
            summary.errors.is_empty(),
            "{:?}\n{}",
            summary.errors,
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn recovery_truncates_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(1 << 20);
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        for i in 0..10 {
            produce(&mut log, 4, 100, i, 0);
        }
        drop(log); // a crash: no clean-shutdown marker
        chop(&log_file(dir.path(), 0), 20);

        let (log, logs) = capture_logs(|| PartitionLog::open(dir.path(), config.clone()).unwrap());
        let mut log = log;
        assert!(
            logs.contains("WARN") && logs.contains("dropped") && logs.contains(".log"),
            "{logs}"
        );
        assert_eq!(log.log_end_offset(), 36, "the torn 10th batch is gone");
        let hs = headers_of(&log.read(35, 1 << 20).unwrap().bytes);
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].base_offset, 32, "the last valid batch is kept");
        let info = produce(&mut log, 4, 100, 99, 0);
        assert_eq!(info.base_offset, 36, "appends continue at the new end");
        drop(log);
        let log = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!(log.log_end_offset(), 40);
        assert_dump_clean(dir.path());
    }

    #[test]
    fn recovery_drops_batch_with_bad_crc() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(1 << 20);
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        let batch_size = producer_batch(4, 100, 0).len() as u64;
        for i in 0..10 {
            produce(&mut log, 4, 100, i, 0);
        }
        drop(log);
        // Damage a record byte inside batch 6 (offsets 24..28).
        flip_byte(&log_file(dir.path(), 0), 6 * batch_size + 80);

        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!(log.log_end_offset(), 24);
        assert_eq!(
            std::fs::metadata(log_file(dir.path(), 0)).unwrap().len(),
            6 * batch_size
        );
        assert_eq!(produce(&mut log, 1, 1, 1, 0).base_offset, 24);
    }

    #[test]
    fn recovery_rebuilds_corrupt_index() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(4, 100, 0).len() as u64;
        let config = small_config(batch_size * 20);
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        for i in 0..50 {
            produce(&mut log, 4, 100, i, 0);
        }
        assert_eq!(log.segment_base_offsets(), vec![0, 80, 160]);
        log.close().unwrap();
        // Garbage in a sealed segment's index and in the active one's.
        std::fs::write(dir.path().join(file_name(0, INDEX_SUFFIX)), [0x13u8; 8 * 7]).unwrap();
        std::fs::write(dir.path().join(file_name(160, INDEX_SUFFIX)), [0xffu8; 21]).unwrap();
        // And a time index that goes backwards.
        let mut bad_time = Vec::new();
        for (ts, rel) in [(500i64, 10u32), (400, 20)] {
            bad_time.extend_from_slice(&ts.to_be_bytes());
            bad_time.extend_from_slice(&rel.to_be_bytes());
        }
        std::fs::write(dir.path().join(file_name(80, TIME_INDEX_SUFFIX)), bad_time).unwrap();

        let log = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!(log.log_end_offset(), 200);
        for offset in 0..200 {
            let hs = headers_of(&log.read(offset, 1).unwrap().bytes);
            assert_eq!(hs[0].base_offset, offset / 4 * 4);
        }
        // Batch i holds timestamps i..i+4, so 30 first appears as the last record of batch 27.
        assert_eq!(log.offset_for_timestamp(30), Some((111, 30)));
        assert!(!log.segment_base_offsets().is_empty());
        log.close().unwrap();
        assert_dump_clean(dir.path());
    }

    #[test]
    fn recovery_rebuilds_missing_index_files() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(4, 100, 0).len() as u64;
        let config = small_config(batch_size * 20);
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        for i in 0..50 {
            produce(&mut log, 4, 100, i, 0);
        }
        log.close().unwrap();
        std::fs::remove_file(dir.path().join(file_name(0, INDEX_SUFFIX))).unwrap();
        std::fs::remove_file(dir.path().join(file_name(80, TIME_INDEX_SUFFIX))).unwrap();
        let (log, logs) = capture_logs(|| PartitionLog::open(dir.path(), config).unwrap());
        assert!(logs.contains("rebuilding the indexes"), "{logs}");
        assert_eq!(log.log_end_offset(), 200);
        // Batch i holds timestamps i..i+4: 45 first appears as the last record of batch 42.
        assert_eq!(log.offset_for_timestamp(45), Some((171, 45)));
        log.close().unwrap();
        assert_dump_clean(dir.path());
        let idx = std::fs::metadata(dir.path().join(file_name(0, INDEX_SUFFIX))).unwrap();
        assert!(idx.len() > 0, "the offset index was rebuilt");
    }

    #[test]
    fn torn_sealed_segment_is_truncated_and_later_segments_kept() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(4, 100, 0).len() as u64;
        let config = small_config(batch_size * 3);
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        for i in 0..9 {
            produce(&mut log, 4, 100, i, 0);
        }
        assert_eq!(log.segment_base_offsets(), vec![0, 12, 24]);
        log.close().unwrap();
        chop(&log_file(dir.path(), 0), 10);

        let log = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!(log.segment_base_offsets(), vec![0, 12, 24]);
        assert_eq!(log.log_end_offset(), 36);
        // Offsets 8..12 were lost; a fetch there gets the next batch.
        let hs = headers_of(&log.read(9, 1).unwrap().bytes);
        assert_eq!(hs[0].base_offset, 12);
    }

    #[test]
    fn stray_index_files_and_empty_segments_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(1 << 20);
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        produce(&mut log, 4, 10, 1, 0);
        log.close().unwrap();
        std::fs::write(dir.path().join(file_name(500, INDEX_SUFFIX)), [0u8; 16]).unwrap();
        std::fs::write(dir.path().join(file_name(4, LOG_SUFFIX)), []).unwrap();
        std::fs::write(dir.path().join("leader-epoch-checkpoint.tmp"), "junk").unwrap();

        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        assert!(!dir.path().join(file_name(500, INDEX_SUFFIX)).exists());
        assert!(!dir.path().join(file_name(4, LOG_SUFFIX)).exists());
        assert!(!dir.path().join("leader-epoch-checkpoint.tmp").exists());
        assert_eq!(log.segment_base_offsets(), vec![0]);
        assert_eq!(produce(&mut log, 1, 1, 1, 0).base_offset, 4);
    }

    #[test]
    fn epoch_checkpoint_ahead_of_the_log_is_trimmed_and_corrupt_one_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::default();
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        produce(&mut log, 5, 10, 1, 2);
        drop(log);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "0\n2\n2 0\n9 1000\n").unwrap();
        let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        assert_eq!(log.latest_epoch(), Some(2));
        drop(log);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "garbage").unwrap();
        let log = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!(log.latest_epoch(), Some(2));
        assert_eq!(log.end_offset_for_epoch(2), (2, 5));
        let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n1\n2 0\n");
    }

    #[test]
    fn out_of_order_batch_is_treated_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(1 << 20);
        let mut log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        for i in 0..3 {
            produce(&mut log, 4, 10, i, 0);
        }
        drop(log);
        // Rewrite the third batch's base offset (outside the CRC) to go backwards.
        let size = producer_batch(4, 10, 0).len() as u64;
        let f = OpenOptions::new()
            .write(true)
            .open(log_file(dir.path(), 0))
            .unwrap();
        f.write_all_at(&2i64.to_be_bytes(), 2 * size).unwrap();
        let log = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!(log.log_end_offset(), 8);
    }
}
