//! A [`PartitionLog`] as the log cleaner sees it (Kafka's `LogCleanerManager` view of one
//! log): how dirty it is, the job of one cleaning, the swap of a cleaned group under the
//! log's lock, and the cleaner checkpoint (`cleaner-offset-checkpoint`: a version line `0`,
//! then the first dirty offset).
//!
//! What always holds: only sealed segments wholly below the last stable offset (so below the
//! high watermark, and holding no open transaction), and older than
//! `min.compaction.lag.ms`, are cleanable (the active segment never is); a swap happens
//! only if every replaced segment is still there with the size the cleaner read and no
//! truncation happened since the job was made; the first dirty offset stays within the log
//! start and end offsets.

use super::super::checkpoint;
use super::super::cleaner::{swap, CleanJob, CleanedGroup, SegmentFile};
use super::super::segment::Segment;
use super::{LogError, PartitionLog};

/// The cleaner checkpoint file of a partition directory.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// How dirty a compacted log is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dirtiness {
    /// Dirty bytes over cleanable bytes.
    pub ratio: f64,
    pub dirty_bytes: u64,
    pub cleanable_bytes: u64,
    /// The oldest dirty record is older than `max.compaction.lag.ms`.
    pub overdue: bool,
    /// The ratio passes `min.cleanable.dirty.ratio`, or the log is overdue.
    pub due: bool,
}

impl PartitionLog {
    /// Where the dirty range starts: the checkpoint, kept within the log.
    pub fn first_dirty_offset(&self) -> i64 {
        if self.first_dirty_offset > self.log_end_offset {
            self.log_start_offset
        } else {
            self.first_dirty_offset.max(self.log_start_offset)
        }
    }

    /// Counts truncations, so a cleaning planned before one does not swap after it.
    pub fn layout_version(&self) -> u64 {
        self.layout_version
    }

    /// The sealed segments the cleaner may read, in order, each with the offset where the
    /// next one starts, and the first uncleanable offset.
    fn cleanable_segments(&self, high_watermark: i64, now_ms: i64) -> (Vec<(&Segment, i64)>, i64) {
        let min_lag = self.config.compaction.map_or(0, |c| c.min_lag_ms);
        // Kafka's firstUncleanableDirtyOffset: never past the first unstable offset, so only
        // complete transactions are cleaned.
        let stable = self.last_stable_offset(high_watermark);
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut out = Vec::new();
        for (i, seg) in self.segments.values().enumerate() {
            let Some(&next_base) = bases.get(i + 1) else {
                return (out, seg.base_offset()); // the active segment
            };
            let young = min_lag > 0
                && seg.largest_timestamp_for_retention() > now_ms.saturating_sub(min_lag);
            if next_base > stable || young {
                return (out, seg.base_offset());
            }
            out.push((seg, next_base));
        }
        (out, self.log_end_offset)
    }

    /// How dirty the log is, or `None` when it is not compacted or has nothing dirty to
    /// clean.
    pub fn dirtiness(&self, high_watermark: i64, now_ms: i64) -> Option<Dirtiness> {
        let compaction = self.config.compaction?;
        let first_dirty = self.first_dirty_offset();
        let (segments, _) = self.cleanable_segments(high_watermark, now_ms);
        let (mut clean, mut dirty) = (0u64, 0u64);
        let mut overdue = false;
        for (seg, next_base) in &segments {
            if *next_base <= first_dirty {
                clean += seg.size();
            } else {
                dirty += seg.size();
                overdue |= seg
                    .first_timestamp()
                    .is_some_and(|t| now_ms.saturating_sub(t) > compaction.max_lag_ms);
            }
        }
        if dirty == 0 {
            return None;
        }
        let ratio = dirty as f64 / (clean + dirty) as f64;
        Some(Dirtiness {
            ratio,
            dirty_bytes: dirty,
            cleanable_bytes: clean + dirty,
            overdue,
            due: overdue || ratio >= compaction.min_cleanable_ratio,
        })
    }

    /// The job of one cleaning, or `None` when the log is not compacted or nothing is dirty.
    pub fn clean_job(&self, high_watermark: i64, now_ms: i64) -> Option<CleanJob> {
        let compaction = self.config.compaction?;
        let (segments, first_uncleanable) = self.cleanable_segments(high_watermark, now_ms);
        let first_dirty = self.first_dirty_offset();
        if segments.is_empty() || first_dirty >= first_uncleanable {
            return None;
        }
        Some(CleanJob {
            dir: self.dir.clone(),
            segments: segments
                .iter()
                .map(|(seg, _)| SegmentFile {
                    base_offset: seg.base_offset(),
                    size: seg.size(),
                    path: seg.log_path().to_path_buf(),
                    file: std::sync::Arc::clone(seg.file()),
                })
                .collect(),
            first_dirty,
            first_uncleanable,
            producer_last_offsets: self.producers.last_batch_offsets(),
            aborted: self.aborted_transactions(
                segments
                    .first()
                    .map_or(first_uncleanable, |(s, _)| s.base_offset()),
                first_uncleanable,
            ),
            delete_retention_ms: compaction.delete_retention_ms,
            now_ms,
            segment_bytes: self.config.segment_bytes,
            index_interval_bytes: self.config.index_interval_bytes,
            index_max_bytes: self.config.index_max_bytes,
            max_batch_bytes: self.config.max_message_bytes.max(1 << 20) * 4,
        })
    }

    /// Swaps a committed cleaned group in, if the segments it replaces are still as the
    /// cleaner read them and no truncation happened since `layout_version`; otherwise
    /// leaves the log alone and returns false (the caller discards the rewrite).
    pub fn swap_cleaned(
        &mut self,
        group: &CleanedGroup,
        layout_version: u64,
    ) -> Result<bool, LogError> {
        self.check_online()?;
        let unchanged = self.layout_version == layout_version
            && group.replaces.iter().all(|(base, size)| {
                self.segments
                    .get(base)
                    .is_some_and(|s| !s.is_active() && s.size() == *size)
            });
        if !unchanged {
            return Ok(false);
        }
        for (base, _) in &group.replaces {
            self.segments.remove(base);
        }
        let r = swap::finish(&self.dir).and_then(|_| {
            let mut seg = Segment::open_existing(
                &self.dir,
                group.base_offset,
                self.config.index_interval_bytes,
            )?;
            seg.reload_tail_state()?;
            seg.seal()?;
            Ok(seg)
        });
        let seg = self.guard(r)?;
        self.segments.insert(group.base_offset, seg);
        Ok(true)
    }

    /// Records that everything below `offset` is clean.
    pub fn set_first_dirty_offset(&mut self, offset: i64) -> Result<(), LogError> {
        self.first_dirty_offset = offset;
        let r = checkpoint::write_offset(&self.dir, CLEANER_CHECKPOINT_FILE, offset);
        self.guard(r)
    }
}

/// Reads the cleaner checkpoint; missing or malformed means nothing is clean yet.
pub(super) fn read_cleaner_checkpoint(dir: &std::path::Path) -> i64 {
    checkpoint::read_optional(dir, CLEANER_CHECKPOINT_FILE)
        .ok()
        .flatten()
        .and_then(|text| checkpoint::parse_offset(&text))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::test_support::{fresh, idem_batch, open};
    use super::*;
    use crate::log::batch::validate_producer_batches;
    use crate::log::cleaner::{clean, CleanStats, Throttle};
    use crate::log::config::CompactionConfig;
    use crate::log::partition_log::LogConfig;
    use crate::log::rewrite;
    use crate::log::test_util::small_config;
    use crate::log::RecordBatchBuilder;

    fn compacted(segment_bytes: u64) -> LogConfig {
        LogConfig {
            delete: false,
            compaction: Some(CompactionConfig {
                delete_retention_ms: 1_000,
                ..CompactionConfig::default()
            }),
            ..small_config(segment_bytes)
        }
    }

    /// Appends one batch of `(key, value)` records at time `ts`.
    fn put(log: &mut PartitionLog, records: &[(&str, Option<&str>)], ts: i64) {
        let mut b = RecordBatchBuilder::new();
        for (k, v) in records {
            b.push(ts, Some(k.as_bytes()), v.map(str::as_bytes), &[]);
        }
        let bytes = b.build();
        let hs = validate_producer_batches(&bytes, 1 << 20).unwrap();
        log.append(&bytes, &hs, 0, ts).unwrap();
    }

    /// Rolls, so that everything written so far is sealed and cleanable.
    fn seal(log: &mut PartitionLog) {
        let end = log.log_end_offset();
        log.roll(end).unwrap();
    }

    fn run(log: &mut PartitionLog, now: i64, budget: usize) -> Option<CleanStats> {
        let hw = log.log_end_offset();
        let job = log.clean_job(hw, now)?;
        let layout = log.layout_version();
        let stats = clean::run(&job, budget, &mut Throttle::new(None), |g| {
            log.swap_cleaned(g, layout)
        })
        .unwrap();
        if let Some(s) = &stats {
            log.set_first_dirty_offset(s.end_offset).unwrap();
        }
        stats
    }

    /// Every record in the log: offset -> (key, value).
    fn contents(log: &PartitionLog) -> BTreeMap<i64, (String, Option<String>)> {
        let mut out = BTreeMap::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20).unwrap().bytes;
            if bytes.is_empty() {
                break;
            }
            let mut at = 0;
            while at < bytes.len() {
                let h = crate::log::parse_header(&bytes[at..]).unwrap();
                let batch = &bytes[at..at + h.total_size()];
                let (plain, ph) = rewrite::uncompressed(batch, &h, 1 << 20).unwrap();
                for r in rewrite::records(&plain, &ph) {
                    let r = r.unwrap();
                    let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                    let value = r.has_value.then(|| {
                        let raw = r.raw;
                        // The value is the record's tail before the header count (0).
                        String::from_utf8_lossy(&raw[raw.len() - 2..raw.len() - 1]).into_owned()
                    });
                    out.insert(r.offset, (key, value));
                }
                offset = h.next_offset();
                at += h.total_size();
            }
        }
        out
    }

    fn latest(log: &PartitionLog) -> BTreeMap<String, (i64, Option<String>)> {
        contents(log)
            .into_iter()
            .map(|(o, (k, v))| (k, (o, v)))
            .collect()
    }

    #[test]
    fn the_latest_value_of_each_key_survives_at_its_original_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compacted(600));
        for round in 0..10 {
            for k in 0..5 {
                let v = format!("{}", (round * 5 + k) % 10);
                put(&mut log, &[(&format!("k{k}"), Some(&v))], 1_000 + round);
            }
        }
        seal(&mut log);
        let before = latest(&log);
        let size_before = log.size_bytes();
        let stats = run(&mut log, 10_000, 1 << 20).unwrap();
        assert_eq!(stats.records_kept, 5);
        assert_eq!(stats.records_removed, 45);
        assert_eq!(latest(&log), before);
        assert_eq!(contents(&log).len(), 5);
        assert!(log.size_bytes() < size_before / 5, "{}", log.size_bytes());
        // Reading from any offset in a gap returns the next surviving batch.
        let first_kept = *contents(&log).keys().next().unwrap();
        let h = crate::log::parse_header(&log.read(0, 1).unwrap().bytes).unwrap();
        assert_eq!(h.base_offset, first_kept);
        // Nothing more to do, and the result survives a reopen.
        assert!(run(&mut log, 10_000, 1 << 20).is_none());
        log.close().unwrap();
        let mut out = Vec::new();
        let summary = crate::log::dump_path(dir.path(), &mut out).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let log = open(dir.path(), compacted(600));
        assert_eq!(latest(&log), before);
        assert_eq!(log.log_end_offset(), 50);
        assert_eq!(log.first_dirty_offset(), 50);
    }

    #[test]
    fn tombstones_stay_for_delete_retention_then_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compacted(1 << 20));
        put(&mut log, &[("a", Some("1")), ("b", Some("2"))], 100);
        put(&mut log, &[("a", None)], 200);
        seal(&mut log);
        run(&mut log, 10_000, 1 << 20).unwrap();
        let l = latest(&log);
        assert_eq!(l["a"], (2, None), "the tombstone is kept at first");
        let mut out = Vec::new();
        let summary = crate::log::dump_path(dir.path(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert!(
            text.contains("tombstones: 1 deleteHorizonMs: 11000"),
            "{text}"
        );
        assert!(text.contains("cleaner-offset-checkpoint: 3"), "{text}");
        assert_eq!(l["b"], (1, Some("2".into())));
        // More writes make the log dirty again; before the horizon the tombstone stays.
        put(&mut log, &[("b", Some("3"))], 300);
        seal(&mut log);
        run(&mut log, 10_500, 1 << 20).unwrap();
        assert_eq!(latest(&log)["a"], (2, None));
        // After delete.retention.ms (1 s after the first cleaning) it is removed.
        put(&mut log, &[("c", Some("4"))], 400);
        seal(&mut log);
        let s = run(&mut log, 11_001, 1 << 20).unwrap();
        assert_eq!(s.tombstones_removed, 1);
        let l = latest(&log);
        assert!(!l.contains_key("a"), "{l:?}");
        assert_eq!(l["b"], (3, Some("3".into())));
    }

    #[test]
    fn a_tiny_map_cleans_in_several_passes_to_the_same_result() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compacted(400));
        for round in 0..6 {
            for k in 0..8 {
                put(
                    &mut log,
                    &[(&format!("k{k}"), Some(&format!("{round}")))],
                    1_000,
                );
            }
        }
        seal(&mut log);
        let want = latest(&log);
        let budget = 3 * (2 + crate::log::cleaner::offset_map::ENTRY_OVERHEAD);
        let mut passes = 0;
        while run(&mut log, 5_000, budget).is_some() {
            passes += 1;
            assert!(passes < 100);
        }
        assert!(passes > 3, "{passes}");
        assert_eq!(latest(&log), want);
        assert_eq!(contents(&log).len(), 8);
    }

    #[test]
    fn indexes_are_right_after_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compacted(4_000));
        for i in 0..200 {
            put(&mut log, &[(&format!("k{}", i % 20), Some("v"))], 1_000 + i);
        }
        seal(&mut log);
        run(&mut log, 10_000, 1 << 20).unwrap();
        for (offset, _) in contents(&log) {
            let h = crate::log::parse_header(&log.read(offset, 1).unwrap().bytes).unwrap();
            assert_eq!(h.base_offset, offset);
        }
        // Timestamps 1180..1199 survive (the last of each key).
        assert_eq!(log.offset_for_timestamp(1_185).map(|(o, _)| o), Some(185));
        assert_eq!(log.offset_for_timestamp(0).map(|(o, _)| o), Some(180));
        log.close().unwrap();
        let mut out = Vec::new();
        let summary = crate::log::dump_path(dir.path(), &mut out).unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    }

    #[test]
    fn the_last_batch_of_a_live_producer_is_kept_even_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compacted(1 << 20));
        fresh(&mut log, &idem_batch(9, 0, 0, 2)); // key "k", offsets 0-1
        put(&mut log, &[("k", Some("x"))], 2_000); // supersedes both
        seal(&mut log);
        run(&mut log, 10_000, 1 << 20).unwrap();
        let bytes = log.read(0, 1 << 20).unwrap().bytes;
        let h = crate::log::parse_header(&bytes).unwrap();
        assert_eq!((h.base_offset, h.last_offset(), h.records_count), (0, 1, 0));
        assert_eq!((h.producer_id, h.base_sequence), (9, 0));
        // The producer continues without a sequence error.
        fresh(&mut log, &idem_batch(9, 0, 2, 1));
    }

    #[test]
    fn retention_applies_with_compact_delete_and_not_with_compact_alone() {
        for (delete, deleted) in [(false, 0), (true, 3)] {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                delete,
                retention_ms: Some(1_000),
                ..compacted(1 << 20)
            };
            let mut log = open(dir.path(), config);
            for round in 0..3 {
                put(&mut log, &[("a", Some("1"))], 100 + round);
                seal(&mut log);
            }
            assert_eq!(
                log.apply_retention(10_000).unwrap(),
                deleted,
                "delete = {delete}"
            );
            assert!(log.dirtiness(log.log_end_offset(), 10_000).is_some() != delete);
        }
    }

    #[test]
    fn segments_above_the_high_watermark_or_active_are_never_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compacted(1 << 20));
        put(&mut log, &[("a", Some("1"))], 100);
        put(&mut log, &[("a", Some("2"))], 100);
        assert!(
            log.clean_job(log.log_end_offset(), 1_000).is_none(),
            "active segment"
        );
        seal(&mut log);
        assert!(
            log.clean_job(1, 1_000).is_none(),
            "above the high watermark"
        );
        assert!(log.dirtiness(2, 1_000).unwrap().due);
    }

    #[test]
    fn a_swap_cut_short_by_a_crash_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compacted(300));
        for round in 0..5 {
            for k in 0..4 {
                put(
                    &mut log,
                    &[(&format!("k{k}"), Some(&format!("{round}")))],
                    1_000,
                );
            }
        }
        seal(&mut log);
        let want = latest(&log);
        let hw = log.log_end_offset();
        let job = log.clean_job(hw, 5_000).unwrap();
        // The rewrite is committed, then the "crash": the log is dropped without swapping.
        let stats = clean::run(&job, 1 << 20, &mut Throttle::new(None), |_| Ok(true)).unwrap();
        assert!(stats.is_some());
        drop(log);
        assert!(dir
            .path()
            .join(swap::STAGING_DIR)
            .join(swap::MARKER)
            .exists());
        let log = open(dir.path(), compacted(300));
        assert!(!dir.path().join(swap::STAGING_DIR).exists());
        assert_eq!(latest(&log), want);
    }

    /// Appends one batch of `pid` (epoch 0, sequence `seq`), transactional or not.
    fn put_from(log: &mut PartitionLog, pid: i64, seq: i32, txn: bool, keys: &[&str], ts: i64) {
        let attrs = if txn {
            crate::log::batch::ATTR_TRANSACTIONAL
        } else {
            0
        };
        let mut b = RecordBatchBuilder::new()
            .producer(pid, 0, seq)
            .attributes(attrs);
        for k in keys {
            b.push(ts, Some(k.as_bytes()), Some(b"v"), &[]);
        }
        let bytes = b.build();
        let hs = validate_producer_batches(&bytes, 1 << 20).unwrap();
        log.append(&bytes, &hs, 0, ts).unwrap();
    }

    fn end(log: &mut PartitionLog, pid: i64, abort: bool, ts: i64) {
        use crate::log::control::{marker_batch, ControlType};
        let control = if abort {
            ControlType::Abort
        } else {
            ControlType::Commit
        };
        let bytes = marker_batch(pid, 0, 1, control, ts);
        let h = crate::log::parse_header(&bytes).unwrap();
        log.append_from(
            &bytes,
            &[h],
            0,
            ts,
            crate::log::producer_state::AppendOrigin::Coordinator,
        )
        .unwrap();
    }

    /// (base offset, is a marker) of every batch.
    fn batches(log: &PartitionLog) -> Vec<(i64, bool)> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20).unwrap().bytes;
            let hs = crate::log::test_util::headers_of(&bytes);
            let Some(last) = hs.last() else { break };
            offset = last.next_offset();
            out.extend(hs.iter().map(|h| (h.base_offset, h.is_control())));
        }
        out
    }

    #[test]
    fn aborted_records_go_markers_follow_their_data_and_open_transactions_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compacted(1 << 20));
        put_from(&mut log, 1, 0, true, &["a", "b"], 1_000); // 0..=1, aborted below
        put_from(&mut log, 2, 0, true, &["a"], 1_000); // 2, committed below
        end(&mut log, 1, true, 1_000); // 3
        end(&mut log, 2, false, 1_000); // 4
        put_from(&mut log, 1, 2, false, &["z"], 1_000); // 5
        seal(&mut log);
        put_from(&mut log, 3, 0, true, &["o"], 1_000); // 6, left open
        seal(&mut log);
        assert_eq!(log.last_stable_offset(7), 6);
        assert_eq!(log.segment_base_offsets(), vec![0, 6, 7]);

        // The aborted batch goes; both markers stay, their transactions had batches here.
        let stats = run(&mut log, 10_000, 1 << 20).unwrap();
        assert_eq!(
            stats.end_offset, 6,
            "the open transaction's segment is not cleaned"
        );
        assert_eq!(
            batches(&log),
            vec![(2, false), (3, true), (4, true), (5, false), (6, false)]
        );
        assert_eq!(
            log.aborted_transactions(0, 7).len(),
            1,
            "the abort is still indexed"
        );
        // The next cleaning finds no batch of the aborted transaction: its marker gets a
        // delete horizon (1 s) and loses its index entry; the commit stays (its batch does).
        log.set_first_dirty_offset(0).unwrap();
        run(&mut log, 10_000, 1 << 20).unwrap();
        assert_eq!(batches(&log).len(), 5);
        assert!(log.aborted_transactions(0, 7).is_empty());
        log.set_first_dirty_offset(0).unwrap();
        run(&mut log, 10_500, 1 << 20).unwrap();
        assert_eq!(batches(&log).len(), 5, "before the horizon");
        log.set_first_dirty_offset(0).unwrap();
        run(&mut log, 11_000, 1 << 20).unwrap();
        assert_eq!(
            batches(&log),
            vec![(2, false), (4, true), (5, false), (6, false)]
        );
        // The rewrite survives a reopen with the same transactions.
        log.close().unwrap();
        let log = open(dir.path(), compacted(1 << 20));
        assert_eq!(log.last_stable_offset(7), 6);
        assert!(log.aborted_transactions(0, 7).is_empty());
        assert_eq!(
            log.producer_state()
                .ongoing_transactions()
                .collect::<Vec<_>>(),
            vec![(6, 3)]
        );
    }
}
