//! Helpers shared by the unit tests of the `partition_log` files (compiled for tests only).
//!
//! Invariant: every batch made here is what a real producer would send, so the tests go
//! through the same append path as the Produce handler.

use std::path::Path;

use crate::log::batch::validate_producer_batches;
use crate::log::partition_log::{AppendInfo, LogConfig, PartitionLog};
use crate::log::LogError;

/// Opens `dir`, which must succeed.
pub fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap()
}

/// An idempotent producer batch: `n` records of 100 bytes from `pid` at `epoch`,
/// starting at sequence `seq`.
pub fn idem_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = crate::log::RecordBatchBuilder::new().producer(pid, epoch, seq);
    for i in 0..n {
        b.push(1_000 + i as i64, Some(b"k"), Some(&[7u8; 100]), &[]);
    }
    b.build()
}

/// Validates and appends `bytes` at leader epoch 0, broker time 5 000.
pub fn send(log: &mut PartitionLog, bytes: &[u8]) -> Result<AppendInfo, LogError> {
    let hs = validate_producer_batches(bytes, 1 << 20).unwrap();
    log.append(bytes, &hs, 0, 5_000)
}

/// [`send`], which must write new data.
pub fn fresh(log: &mut PartitionLog, bytes: &[u8]) -> AppendInfo {
    let info = send(log, bytes).unwrap();
    assert!(!info.duplicate, "{info:?}");
    info
}

/// [`send`], which must be answered as a duplicate and write nothing.
pub fn duplicate(log: &mut PartitionLog, bytes: &[u8]) -> AppendInfo {
    let leo = log.log_end_offset();
    let info = send(log, bytes).unwrap();
    assert!(info.duplicate, "{info:?}");
    assert_eq!(log.log_end_offset(), leo, "a duplicate writes nothing");
    info
}

/// Offsets of the producer-state snapshots in `dir`, oldest first.
pub fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    crate::log::producer_state::list_snapshots(dir).unwrap()
}

/// A transactional batch: `n` records from `pid` at `epoch` starting at sequence `seq`.
pub fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = crate::log::RecordBatchBuilder::new()
        .producer(pid, epoch, seq)
        .attributes(crate::log::batch::ATTR_TRANSACTIONAL);
    for i in 0..n {
        b.push(1_000 + i as i64, Some(b"k"), Some(&[7u8; 100]), &[]);
    }
    b.build()
}

/// Appends the marker ending `pid`'s transaction as the coordinator writes it.
pub fn end_txn(
    log: &mut PartitionLog,
    pid: i64,
    epoch: i16,
    coordinator_epoch: i32,
    abort: bool,
) -> Result<AppendInfo, LogError> {
    use crate::log::control::{marker_batch, ControlType};
    let control = if abort {
        ControlType::Abort
    } else {
        ControlType::Commit
    };
    let bytes = marker_batch(pid, epoch, coordinator_epoch, control, 5_000);
    // Markers are control batches, which a producer may not send: take the header as is.
    let hs = vec![crate::log::batch::parse_header(&bytes).unwrap()];
    log.append_from(
        &bytes,
        &hs,
        0,
        5_000,
        crate::log::producer_state::AppendOrigin::Coordinator,
    )
}
