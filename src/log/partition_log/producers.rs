//! The idempotent-producer state of a [`PartitionLog`] ([`ProducerStateManager`]) as the log
//! keeps it: the accessor, and loading it for the batches below the log end offset (at open
//! and after a truncation).
//!
//! What always holds: the state describes exactly the batches below the log end offset; it
//! is loaded from the newest snapshot at or below that offset (newer ones deleted) plus the
//! batch headers after it.

use super::super::producer_state::{CompletedTxn, ProducerStateManager};
use super::super::txn_index::AbortedTxn;
use super::{LogError, PartitionLog};

impl PartitionLog {
    /// The producer state (epochs, sequences, retained batches, open transactions).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Loads the producer state for the batches in `[log start offset, log end offset)`:
    /// snapshots above the log end offset (and above `rebuild_from`) are deleted, the newest
    /// remaining one is loaded and the batch headers after it are replayed; the aborted
    /// transactions the replay completed are written to the `.txnindex` files that miss them.
    pub(super) fn load_producer_state(
        &mut self,
        rebuild_from: Option<i64>,
    ) -> Result<(), LogError> {
        let (state, completed) = ProducerStateManager::load(
            &self.dir,
            &self.segments,
            self.log_start_offset,
            self.log_end_offset,
            rebuild_from,
        )?;
        self.producers = state;
        self.index_aborted(&completed)
    }

    /// Writes the `.txnindex` entries of the aborted transactions among `completed`, each in
    /// the segment that holds its marker (an entry already there is not written twice).
    pub(super) fn index_aborted(&mut self, completed: &[CompletedTxn]) -> Result<(), LogError> {
        for entry in completed.iter().filter_map(CompletedTxn::aborted_entry) {
            if let Some((_, seg)) = self.segments.range_mut(..=entry.last_offset).next_back() {
                if seg.append_aborted(entry)? {
                    tracing::debug!(
                        dir = %self.dir.display(),
                        producer_id = entry.producer_id,
                        first_offset = entry.first_offset,
                        marker = entry.last_offset,
                        "indexed an aborted transaction"
                    );
                }
            }
        }
        Ok(())
    }

    /// The last stable offset (Kafka's `lastStableOffset`) for a partition whose high
    /// watermark is `high_watermark`: the first offset of the oldest transaction that is
    /// open, or completed with its marker not yet below the high watermark, kept at or above
    /// the log start offset; the high watermark when there is none, and never above it.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        match self.producers.first_unstable_offset(high_watermark) {
            Some(first) => first.max(self.log_start_offset).min(high_watermark),
            None => high_watermark,
        }
    }

    /// Forgets the completed transactions the high watermark has passed.
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        self.producers.on_high_watermark(high_watermark);
    }

    /// Kafka's `collectAbortedTransactions`: the aborted transactions that end at or after
    /// `from` and start below `to`, from the `.txnindex` of the segment holding `from` on,
    /// until an entry's last stable offset shows no later one can start below `to`. Ordered
    /// by first offset.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        let mut out = Vec::new();
        for seg in self.segments.range(start..).map(|(_, s)| s) {
            if seg.txn_index().collect(from, to, &mut out) {
                break;
            }
        }
        out.sort_by_key(|t| (t.first_offset, t.producer_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::validate_producer_batches;
    use crate::log::partition_log::test_support::{
        duplicate, end_txn, fresh, idem_batch, open, send, snapshot_offsets, txn_batch,
    };
    use crate::log::partition_log::LogConfig;
    use crate::log::test_util::{headers_of, produce, small_config};
    use std::fs;

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

    /// Producer 1 writes 0..=2 and producer 2 writes 3 in transactions; 1 aborts (marker 4),
    /// 2 commits (marker 5).
    fn two_transactions(log: &mut PartitionLog) {
        fresh(log, &txn_batch(1, 0, 0, 3));
        fresh(log, &txn_batch(2, 0, 0, 1));
        assert_eq!(log.last_stable_offset(4), 0, "both open");
        assert_eq!(end_txn(log, 1, 0, 7, true).unwrap().base_offset, 4);
        assert_eq!(log.last_stable_offset(5), 3, "2 is still open");
        assert_eq!(end_txn(log, 2, 0, 7, false).unwrap().base_offset, 5);
    }

    fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    fn txn_index_file(dir: &std::path::Path, base: i64) -> std::path::PathBuf {
        dir.join(crate::log::segment::file_name(
            base,
            crate::log::txn_index::TXN_INDEX_SUFFIX,
        ))
    }

    #[test]
    fn an_abort_is_indexed_and_the_last_stable_offset_waits_for_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        two_transactions(&mut log);
        // Completed transactions stay unstable until the high watermark passes the marker.
        assert_eq!(log.last_stable_offset(5), 3);
        assert_eq!(log.last_stable_offset(6), 6);
        assert_eq!(
            log.last_stable_offset(2),
            0,
            "never above the high watermark"
        );
        log.on_high_watermark(6);
        assert_eq!(log.last_stable_offset(6), 6);
        let expected = aborted(1, 0, 4, 3);
        assert_eq!(log.aborted_transactions(0, 6), vec![expected]);
        assert_eq!(log.aborted_transactions(4, 6), vec![expected]);
        assert!(log.aborted_transactions(5, 6).is_empty(), "ends before 5");
        assert!(
            log.aborted_transactions(0, 0).is_empty(),
            "starts at 0, not below"
        );
        assert_eq!(
            fs::read(txn_index_file(dir.path(), 0)).unwrap().len(),
            crate::log::txn_index::ENTRY_SIZE
        );
        // A marker for a producer without an open transaction is written and harmless.
        assert_eq!(end_txn(&mut log, 1, 0, 7, true).unwrap().base_offset, 6);
        assert_eq!(log.aborted_transactions(0, 7).len(), 1);
        assert_eq!(log.last_stable_offset(7), 7);
    }

    #[test]
    fn fenced_markers_and_stray_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        fresh(&mut log, &txn_batch(1, 3, 0, 1));
        // A plain idempotent batch inside the transaction.
        let e = send(&mut log, &idem_batch(1, 3, 1, 1)).unwrap_err();
        assert!(matches!(e, LogError::InvalidTxnState { .. }), "{e}");
        end_txn(&mut log, 1, 3, 5, false).unwrap();
        let e = end_txn(&mut log, 1, 2, 5, true).unwrap_err();
        assert!(matches!(e, LogError::InvalidProducerEpoch { .. }), "{e}");
        let e = end_txn(&mut log, 1, 3, 4, true).unwrap_err();
        assert!(
            matches!(e, LogError::TransactionCoordinatorFenced { .. }),
            "{e}"
        );
        assert_eq!(log.log_end_offset(), 2, "refused markers write nothing");
    }

    #[test]
    fn recovery_rebuilds_a_lost_or_damaged_txn_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        two_transactions(&mut log);
        fresh(&mut log, &txn_batch(3, 0, 0, 2)); // still open at the crash
        drop(log); // a crash
        fs::remove_file(txn_index_file(dir.path(), 0)).unwrap();
        let log = open(dir.path(), LogConfig::default());
        assert_eq!(log.aborted_transactions(0, 8), vec![aborted(1, 0, 4, 3)]);
        assert_eq!(
            log.last_stable_offset(8),
            6,
            "producer 3's transaction is open"
        );
        log.close().unwrap();
        // After a clean shutdown the snapshot covers everything; a damaged index is still
        // rebuilt from the log.
        fs::write(txn_index_file(dir.path(), 0), [9u8; 34]).unwrap();
        let log = open(dir.path(), LogConfig::default());
        assert_eq!(log.aborted_transactions(0, 8), vec![aborted(1, 0, 4, 3)]);
        assert_eq!(
            log.last_stable_offset(8),
            6,
            "the snapshot kept the open transaction"
        );
        assert_eq!(log.producer_state().entry(1).unwrap().coordinator_epoch, 7);
    }

    #[test]
    fn truncation_drops_index_entries_and_reopens_their_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        two_transactions(&mut log);
        log.truncate_to(4).unwrap();
        assert!(log.aborted_transactions(0, 4).is_empty());
        assert!(!txn_index_file(dir.path(), 0).exists());
        assert_eq!(
            log.last_stable_offset(4),
            0,
            "both transactions are open again"
        );
        assert_eq!(
            log.producer_state()
                .ongoing_transactions()
                .collect::<Vec<_>>(),
            vec![(0, 1), (3, 2)]
        );
    }

    #[test]
    fn a_follower_keeps_the_same_transactions_and_index() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(ldir.path(), LogConfig::default());
        let mut follower = open(fdir.path(), LogConfig::default());
        two_transactions(&mut leader);
        fresh(&mut leader, &txn_batch(3, 0, 0, 2));
        let got = leader.read(0, 1 << 20).unwrap();
        let (headers, len) = crate::log::batch::split_whole_batches(&got.bytes).unwrap();
        follower
            .append_replicated(&got.bytes[..len], &headers, 9_000)
            .unwrap();
        assert_eq!(
            follower.aborted_transactions(0, 8),
            leader.aborted_transactions(0, 8)
        );
        assert_eq!(follower.last_stable_offset(8), 6);
        // The follower became leader: its producer state ends producer 3's transaction.
        end_txn(&mut follower, 3, 0, 8, true).unwrap();
        assert_eq!(
            follower.aborted_transactions(6, 9),
            vec![aborted(3, 6, 8, 9)]
        );
    }

    #[test]
    fn retention_deletes_the_txn_index_with_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        let size = txn_batch(1, 0, 0, 3).len() as u64;
        let mut config = crate::log::test_util::small_config(size * 2);
        config.retention_bytes = Some(0);
        let mut log = open(dir.path(), config);
        two_transactions(&mut log);
        fresh(&mut log, &idem_batch(9, 0, 0, 3));
        fresh(&mut log, &idem_batch(9, 0, 3, 3));
        let first = log.segment_base_offsets()[0];
        assert!(txn_index_file(dir.path(), first).exists());
        log.apply_retention(5_000).unwrap();
        assert!(log.log_start_offset() > 5);
        assert!(!txn_index_file(dir.path(), first).exists());
        assert!(log.aborted_transactions(0, 100).is_empty());
    }
}
