//! The idempotent-producer state of a [`PartitionLog`] ([`ProducerStateManager`]) as the log
//! keeps it: the accessor, and loading it for the batches below the log end offset (at open
//! and after a truncation).
//!
//! What always holds: the state describes exactly the batches below the log end offset; it
//! is loaded from the newest snapshot at or below that offset (newer ones deleted) plus the
//! batch headers after it.

use super::super::producer_state::ProducerStateManager;
use super::{LogError, PartitionLog};

impl PartitionLog {
    /// The idempotent-producer state (epochs, sequences, retained batches).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Loads the producer state for the batches in `[log start offset, log end offset)`:
    /// snapshots above the log end offset are deleted, the newest remaining one is loaded
    /// and the batch headers after it are replayed.
    pub(super) fn load_producer_state(&self) -> Result<ProducerStateManager, LogError> {
        ProducerStateManager::load(
            &self.dir,
            &self.segments,
            self.log_start_offset,
            self.log_end_offset,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::validate_producer_batches;
    use crate::log::partition_log::test_support::{
        duplicate, fresh, idem_batch, open, send, snapshot_offsets,
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
}
