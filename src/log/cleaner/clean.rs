//! One cleaning of one compacted log, after Kafka's `Cleaner.doClean`: build the key ->
//! latest offset map over the dirty range, then rewrite the segments below the map's end
//! in groups, each group into one new segment staged in `cleaning/` and handed to the
//! caller to swap in under the log's lock.
//!
//! What a rewrite keeps: every record that is the latest of its key in the mapped range or
//! newer than it, except the records of aborted transactions, which go (and never enter the
//! map); a tombstone until `delete.retention.ms` after the cleaner first kept it (the time is
//! stored in the batch, Kafka's delete horizon, KIP-534); a transaction marker until no
//! batch of its transaction is left and then its delete horizon passed (see `txn`), with
//! the `.txnindex` entries of the aborts it keeps; every batch that is the last one of a
//! producer the log still tracks (empty if none of its records survive), so idempotent
//! producers keep their sequence. Keyless
//! records are dropped (Kafka counts them invalid). A batch whose records all survive and
//! that needs no delete horizon is copied byte for byte; otherwise it is rebuilt with the
//! same base offset, last offset, producer fields and codec.
//!
//! Reads go through the segments' own open files, so nothing here needs the log's lock:
//! sealed segments below the high watermark do not change while they are read, and the
//! swap re-checks that they are still the same.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::batch::BatchHeader;
use super::super::compress::Codec;
use super::super::control::parse_marker_batch;
use super::super::error::LogError;
use super::super::rewrite::{self, Rebuild};
use super::super::scan::{BatchScanner, LARGE_CHUNK};
use super::super::segment::{file_name, scan_error, Segment};
use super::super::txn_index::{AbortedTxn, TXN_INDEX_SUFFIX};
use super::offset_map::OffsetMap;
use super::swap;
use super::throttle::Throttle;
use super::txn::TxnFilter;

/// Attribute bit of a batch whose base timestamp holds its delete horizon (KIP-534).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// A sealed segment as a cleaning reads it.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    pub base_offset: i64,
    pub size: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
}

/// Everything one cleaning needs, gathered under the log's lock.
#[derive(Debug, Clone)]
pub struct CleanJob {
    pub dir: PathBuf,
    /// The sealed segments from the first one up to the first uncleanable offset, in order.
    pub segments: Vec<SegmentFile>,
    /// Where the dirty (not yet cleaned) range starts.
    pub first_dirty: i64,
    /// The dirty range ends here (a segment base: the active segment, the high watermark's
    /// segment, or the first segment younger than `min.compaction.lag.ms`).
    pub first_uncleanable: i64,
    /// Producer id -> last offset of its last batch, for the producers the log tracks.
    pub producer_last_offsets: HashMap<i64, i64>,
    /// The aborted transactions that end at or after the first segment and start below the
    /// first uncleanable offset (from the `.txnindex` files).
    pub aborted: Vec<AbortedTxn>,
    pub delete_retention_ms: i64,
    pub now_ms: i64,
    /// Largest size of a rewritten group (the topic's `segment.bytes`).
    pub segment_bytes: u64,
    pub index_interval_bytes: usize,
    pub index_max_bytes: usize,
    /// Largest inflated batch (decompression cap).
    pub max_batch_bytes: usize,
}

/// One rewritten group, staged in `cleaning/` and committed (its swap marker is written):
/// the swap replaces `replaces` (base offset, size) by the segment at `base_offset`.
#[derive(Debug, Clone)]
pub struct CleanedGroup {
    pub base_offset: i64,
    pub replaces: Vec<(i64, u64)>,
}

/// What a cleaning did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_kept: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    pub keys_mapped: u64,
    pub groups: u64,
    /// Where the next cleaning's dirty range starts.
    pub end_offset: i64,
}

/// Runs `job`: maps the dirty range (in several passes' worth of budget, stopping early when
/// the map is full), rewrites the groups below the map's end and calls `swap` for each
/// (which swaps it in under the log's lock and says whether it could). Returns the stats;
/// `end_offset` is the new first dirty offset when every group was swapped.
pub fn run(
    job: &CleanJob,
    map_budget: usize,
    throttle: &mut Throttle,
    mut swap_in: impl FnMut(&CleanedGroup) -> Result<bool, LogError>,
) -> Result<Option<CleanStats>, LogError> {
    let mut stats = CleanStats::default();
    let mut map = OffsetMap::new(map_budget);
    let end = build_map(job, &mut map, throttle, &mut stats)?;
    stats.keys_mapped = map.len() as u64;
    stats.end_offset = end;
    let to_clean: Vec<&SegmentFile> = job
        .segments
        .iter()
        .filter(|s| s.base_offset < end)
        .collect();
    for group in groups(&to_clean, job.segment_bytes, end) {
        let cleaned = clean_group(job, &group, &map, throttle, &mut stats)?;
        if let Some(delay) = swap_delay_for_tests() {
            std::thread::sleep(delay);
        }
        if !swap_in(&cleaned)? {
            swap::discard(&job.dir)?;
            return Ok(None);
        }
        stats.groups += 1;
    }
    Ok(Some(stats))
}

/// Test hook: `BROKER_TEST_CLEANER_SWAP_DELAY_MS` holds every committed rewrite that long
/// before its swap, so that a crash test can kill the broker in between.
fn swap_delay_for_tests() -> Option<std::time::Duration> {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var("BROKER_TEST_CLEANER_SWAP_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(std::time::Duration::from_millis)
    })
}

/// Maps every keyed record of the dirty range to its latest offset; returns where the map
/// stops: the first uncleanable offset, or the end of the batch that filled it.
fn build_map(
    job: &CleanJob,
    map: &mut OffsetMap,
    throttle: &mut Throttle,
    stats: &mut CleanStats,
) -> Result<i64, LogError> {
    let mut txns = TxnFilter::new(aborted_from(job, job.first_dirty));
    for (i, seg) in job.segments.iter().enumerate() {
        let seg_end = job
            .segments
            .get(i + 1)
            .map_or(job.first_uncleanable, |s| s.base_offset);
        if seg_end <= job.first_dirty {
            continue;
        }
        let mut scanner = BatchScanner::new(&seg.file, 0, seg.size, LARGE_CHUNK);
        while let Some((_, h, bytes)) =
            scanner.next_batch().map_err(|e| scan_error(&seg.path, e))?
        {
            stats.bytes_read += bytes.len() as u64;
            throttle.account(bytes.len());
            if h.last_offset() < job.first_dirty {
                continue;
            }
            if h.is_control() {
                if let Some(marker) = parse_marker_batch(bytes, &h) {
                    txns.on_marker(h.producer_id, &marker, h.base_offset);
                }
                continue;
            }
            // Aborted records do not supersede anything (Kafka skips them in the map).
            if h.has_producer_id()
                && txns.on_batch(h.producer_id, h.is_transactional(), h.last_offset())
            {
                continue;
            }
            let (plain, ph) = rewrite::uncompressed(bytes, &h, job.max_batch_bytes)
                .map_err(|e| corrupt(&seg.path, &h, e))?;
            for r in rewrite::records(&plain, &ph) {
                let r = r.map_err(|e| corrupt(&seg.path, &h, e))?;
                if let (Some(key), true) = (r.key, r.offset >= job.first_dirty) {
                    map.put(key, r.offset);
                }
            }
            if map.is_full() {
                return Ok(h.next_offset().min(job.first_uncleanable));
            }
        }
    }
    Ok(job.first_uncleanable)
}

/// The job's aborted transactions that end at or after `from`.
fn aborted_from(job: &CleanJob, from: i64) -> Vec<AbortedTxn> {
    job.aborted
        .iter()
        .filter(|t| t.last_offset >= from)
        .copied()
        .collect()
}

fn corrupt(path: &Path, h: &BatchHeader, e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        detail: format!(
            "the cleaner cannot read the batch at offset {}: {e}",
            h.base_offset
        ),
    }
}

/// Consecutive segments whose sizes add up to at most `max_bytes` (at least one each) and
/// whose offsets fit one segment's 4-byte relative offsets.
fn groups<'a>(segments: &[&'a SegmentFile], max_bytes: u64, end: i64) -> Vec<Vec<&'a SegmentFile>> {
    let mut out: Vec<Vec<&SegmentFile>> = Vec::new();
    let mut size = 0u64;
    for (i, seg) in segments.iter().enumerate() {
        let seg_end = segments
            .get(i + 1)
            .map_or(end, |s| s.base_offset)
            .max(seg.base_offset);
        let fits = out.last().is_some_and(|g| {
            size + seg.size <= max_bytes && seg_end - g[0].base_offset <= i64::from(i32::MAX)
        });
        if fits {
            out.last_mut().expect("a group exists").push(seg);
            size += seg.size;
        } else {
            out.push(vec![seg]);
            size = seg.size;
        }
    }
    out
}

/// What becomes of one batch.
enum Kept<'a> {
    Whole(&'a [u8]),
    Rebuilt(Vec<u8>),
    Dropped,
}

/// What the rewrite of one group tracks besides the map: the transactions of the walk and
/// the `.txnindex` entries the new segment keeps.
struct GroupTxns {
    filter: TxnFilter,
    kept_aborted: Vec<AbortedTxn>,
}

/// A marker: kept while its transaction still has batches; once it may go, it gets a delete
/// horizon the first time (rebuilt with it) and is dropped when the horizon passed.
fn filter_marker<'a>(
    job: &CleanJob,
    path: &Path,
    h: &BatchHeader,
    bytes: &'a [u8],
    txns: &mut GroupTxns,
    stats: &mut CleanStats,
) -> Result<Kept<'a>, LogError> {
    let Some(marker) = parse_marker_batch(bytes, h) else {
        return Ok(Kept::Whole(bytes));
    };
    let (may_go, entry) = txns.filter.on_marker(h.producer_id, &marker, h.base_offset);
    txns.kept_aborted.extend(entry);
    if !may_go {
        return Ok(Kept::Whole(bytes));
    }
    let horizon = (h.attributes & ATTR_DELETE_HORIZON != 0).then_some(h.base_timestamp);
    match horizon {
        Some(t) if job.now_ms >= t => {
            stats.records_removed += 1;
            Ok(Kept::Dropped)
        }
        Some(_) => Ok(Kept::Whole(bytes)),
        None => {
            let (plain, ph) = rewrite::uncompressed(bytes, h, job.max_batch_bytes)
                .map_err(|e| corrupt(path, h, e))?;
            let base_timestamp = job.now_ms.saturating_add(job.delete_retention_ms);
            let mut records = Vec::new();
            let mut count = 0;
            for r in rewrite::records(&plain, &ph) {
                let r = r.map_err(|e| corrupt(path, h, e))?;
                rewrite::rebase_record(r.raw, h.base_timestamp, base_timestamp, &mut records);
                count += 1;
            }
            let rebuilt = rewrite::build(
                h,
                &records,
                count,
                Rebuild {
                    codec: Codec::None,
                    base_timestamp,
                    max_timestamp: h.max_timestamp,
                    extra_attributes: ATTR_DELETE_HORIZON,
                },
            )
            .map_err(|e| LogError::io("rebuild a transaction marker of", path, e))?;
            Ok(Kept::Rebuilt(rebuilt))
        }
    }
}

/// Filters one batch against the map and the transactions.
fn filter_batch<'a>(
    job: &CleanJob,
    path: &Path,
    h: &BatchHeader,
    bytes: &'a [u8],
    map: &OffsetMap,
    txns: &mut GroupTxns,
    stats: &mut CleanStats,
) -> Result<Kept<'a>, LogError> {
    if h.is_control() {
        return filter_marker(job, path, h, bytes, txns, stats);
    }
    let aborted = h.has_producer_id()
        && txns
            .filter
            .on_batch(h.producer_id, h.is_transactional(), h.last_offset());
    let last_of_producer = h.has_producer_id()
        && job.producer_last_offsets.get(&h.producer_id) == Some(&h.last_offset());
    let horizon = (h.attributes & ATTR_DELETE_HORIZON != 0).then_some(h.base_timestamp);
    let (plain, ph) =
        rewrite::uncompressed(bytes, h, job.max_batch_bytes).map_err(|e| corrupt(path, h, e))?;
    let mut kept: Vec<rewrite::Record> = Vec::new();
    let mut removed = 0u64;
    for r in rewrite::records(&plain, &ph) {
        let r = r.map_err(|e| corrupt(path, h, e))?;
        let Some(key) = r.key.filter(|_| !aborted) else {
            removed += 1;
            continue;
        };
        let superseded = map.get(key).is_some_and(|latest| r.offset < latest);
        let expired_tombstone = !r.has_value && horizon.is_some_and(|t| job.now_ms >= t);
        if superseded || expired_tombstone {
            if !superseded {
                stats.tombstones_removed += 1;
            }
            removed += 1;
        } else {
            kept.push(r);
        }
    }
    stats.records_removed += removed;
    stats.records_kept += kept.len() as u64;
    let needs_horizon = horizon.is_none() && kept.iter().any(|r| !r.has_value);
    if removed == 0 && !needs_horizon {
        return Ok(Kept::Whole(bytes));
    }
    if kept.is_empty() && !last_of_producer {
        return Ok(Kept::Dropped);
    }
    let base_timestamp = if needs_horizon {
        job.now_ms.saturating_add(job.delete_retention_ms)
    } else {
        h.base_timestamp
    };
    let mut records = Vec::with_capacity(kept.iter().map(|r| r.raw.len() + 2).sum());
    for r in &kept {
        if base_timestamp == h.base_timestamp {
            records.extend_from_slice(r.raw);
        } else {
            rewrite::rebase_record(r.raw, h.base_timestamp, base_timestamp, &mut records);
        }
    }
    let max_timestamp = if h.timestamp_type_is_log_append() {
        h.max_timestamp
    } else {
        kept.iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(h.max_timestamp)
    };
    let codec = Codec::from_id(h.compression()).unwrap_or(Codec::None);
    let extra_attributes = if needs_horizon || horizon.is_some() {
        ATTR_DELETE_HORIZON
    } else {
        0
    };
    let rebuilt = rewrite::build(
        h,
        &records,
        kept.len() as i32,
        Rebuild {
            codec,
            base_timestamp,
            max_timestamp,
            extra_attributes,
        },
    )
    .map_err(|e| LogError::io("compress a cleaned batch of", path, e))?;
    Ok(Kept::Rebuilt(rebuilt))
}

/// Appends the buffered batches to the staged segment.
fn write_pending(
    out: &mut Segment,
    pending: &mut Vec<u8>,
    headers: &mut Vec<BatchHeader>,
    stats: &mut CleanStats,
    throttle: &mut Throttle,
) -> Result<(), LogError> {
    if !pending.is_empty() {
        out.append_batches(pending, headers)?;
        stats.bytes_written += pending.len() as u64;
        throttle.account(pending.len());
        pending.clear();
        headers.clear();
    }
    Ok(())
}

/// Rewrites one group into a staged segment and commits it (writes its swap marker).
fn clean_group(
    job: &CleanJob,
    group: &[&SegmentFile],
    map: &OffsetMap,
    throttle: &mut Throttle,
    stats: &mut CleanStats,
) -> Result<CleanedGroup, LogError> {
    let staging = swap::prepare(&job.dir)?;
    let base = group[0].base_offset;
    let mut out = Segment::create(
        &staging,
        base,
        job.index_interval_bytes,
        job.index_max_bytes,
    )?;
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_headers: Vec<BatchHeader> = Vec::new();
    let mut txns = GroupTxns {
        filter: TxnFilter::new(aborted_from(job, base)),
        kept_aborted: Vec::new(),
    };
    for seg in group {
        let mut scanner = BatchScanner::new(&seg.file, 0, seg.size, LARGE_CHUNK);
        while let Some((_, h, bytes)) =
            scanner.next_batch().map_err(|e| scan_error(&seg.path, e))?
        {
            stats.bytes_read += bytes.len() as u64;
            throttle.account(bytes.len());
            let kept = filter_batch(job, &seg.path, &h, bytes, map, &mut txns, stats)?;
            let (bytes, header): (&[u8], BatchHeader) = match &kept {
                Kept::Whole(b) => (b, h),
                Kept::Rebuilt(b) => (
                    b,
                    super::super::batch::parse_header(b).map_err(|e| corrupt(&seg.path, &h, e))?,
                ),
                Kept::Dropped => continue,
            };
            pending.extend_from_slice(bytes);
            pending_headers.push(header);
            if pending.len() >= LARGE_CHUNK {
                write_pending(
                    &mut out,
                    &mut pending,
                    &mut pending_headers,
                    stats,
                    throttle,
                )?;
            }
        }
    }
    write_pending(
        &mut out,
        &mut pending,
        &mut pending_headers,
        stats,
        throttle,
    )?;
    out.seal()?;
    // The staged `.txnindex` always exists (maybe empty), so the swap replaces the old one.
    out.replace_aborted(txns.kept_aborted)?;
    out.flush()?;
    let txn_index = staging.join(file_name(base, TXN_INDEX_SUFFIX));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&txn_index)
        .map_err(|e| LogError::io("create", &txn_index, e))?;
    let replaces: Vec<(i64, u64)> = group.iter().map(|s| (s.base_offset, s.size)).collect();
    drop(out);
    swap::commit(&job.dir, base, &replaces)?;
    Ok(CleanedGroup {
        base_offset: base,
        replaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, size: u64) -> SegmentFile {
        SegmentFile {
            base_offset: base,
            size,
            path: PathBuf::from("x"),
            file: Arc::new(tempfile::tempfile().unwrap()),
        }
    }

    #[test]
    fn groups_stay_within_the_segment_size() {
        let segs = [
            seg(0, 40),
            seg(10, 40),
            seg(20, 40),
            seg(30, 100),
            seg(40, 10),
        ];
        let refs: Vec<&SegmentFile> = segs.iter().collect();
        let g = groups(&refs, 100, 50);
        let bases: Vec<Vec<i64>> = g
            .iter()
            .map(|g| g.iter().map(|s| s.base_offset).collect())
            .collect();
        assert_eq!(bases, vec![vec![0, 10], vec![20], vec![30], vec![40]]);
    }
}
