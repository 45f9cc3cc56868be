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
    for (base, seg) in segments.iter_mut() {
        if Some(*base) == last {
            seg.activate(config.index_max_bytes)?;
        } else {
            seg.seal()?;
        }
    }
    Ok(Recovered {
        segments,
        epoch_starts,
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
            Ok(()) => match validate_tail(seg, epoch_starts)? {
                Some(truncated) => return Ok(truncated),
                None => tracing::warn!(
                    file = %seg.time_index().path().display(),
                    "rebuilding the indexes of {} because its time index is inconsistent",
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
        Ok(None) => Err(format!("its last entry points at byte {pos}, the end of the log")),
        Err(ScanError::Invalid { why, .. }) => Err(format!(
            "its last entry points at byte {pos}, where there is no valid batch: {}",
            why.reason()
        )),
        Err(ScanError::Io(e)) => Err(format!("reading the log failed: {e}")),
    }
}

/// Validates the batches after the last index entry, truncating at the first bad one.
/// Returns `None` when the time index does not fit the log (the caller rebuilds).
fn validate_tail(
    seg: &mut Segment,
    epoch_starts: &mut Vec<(i32, i64)>,
) -> Result<Option<u64>, LogError> {
    let start = seg
        .offset_index()
        .last_entry()
        .map_or(0, |e| u64::from(e.position));
    let (cut, prev_next) = scan_valid(
        seg.file(),
        seg.log_path(),
        seg.base_offset(),
        start,
        seg.size(),
        epoch_starts,
        |_, _| {},
    )?;
    let tail_next = prev_next.unwrap_or(seg.base_offset());
    if seg.time_index().sanity_check(tail_next).is_err() {
        return Ok(None);
    }
    let truncated = match cut {
        Some((position, why)) => truncate_tail(seg, position, &why)?,
        None => {
            seg.reload_tail_state()?;
            0
        }
    };
    Ok(Some(truncated))
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
pub(crate) fn scan_epochs(
    segments: &BTreeMap<i64, Segment>,
) -> Result<Vec<(i32, i64)>, LogError> {
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
