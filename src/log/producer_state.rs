//! Idempotent and transactional producer state of one partition: per producer id, the
//! producer epoch, the sequence ranges and offsets of its last [`BATCHES_TO_RETAIN`] batches,
//! the coordinator epoch of its last transaction marker and the first offset of its open
//! transaction; and for the partition, the open transactions ordered by first offset and the
//! completed ones not yet below the high watermark, which give the first unstable offset.
//! After Apache Kafka's `ProducerStateManager` / `ProducerStateEntry` /
//! `ProducerAppendInfo`. Owned by `PartitionLog`, which calls it under the log lock.
//!
//! Rules applied to a client append ([`ProducerStateManager::check_append`]), in Kafka's
//! order, per batch that carries a producer id:
//! 1. Duplicate: same epoch as the producer's entry and exactly the sequence range of one of
//!    its retained batches → the whole append is answered with that batch's original offsets
//!    and nothing is written (Kafka's `findDuplicateBatch`).
//! 2. Epoch: lower than the entry's epoch → [`LogError::InvalidProducerEpoch`].
//! 3. Sequence: a new (higher) epoch must start at sequence 0, unless the entry has no epoch
//!    yet; the same epoch must continue at `last sequence + 1` (0 after `i32::MAX`), unless
//!    the entry has no epoch; otherwise [`LogError::OutOfOrderSequence`]. A producer without
//!    an entry may start at any sequence (KIP-360: its earlier batches may be gone).
//! 4. Transactions: a data batch of a producer with an open transaction must be
//!    transactional ([`LogError::InvalidTxnState`]); a transactional batch of a producer
//!    without one opens one at its first offset.
//!
//! A transaction marker (control batch, written by the coordinator's WriteTxnMarkers) is
//! checked like Kafka's `appendEndTxnMarker`: a marker epoch older than the producer's is
//! [`LogError::InvalidProducerEpoch`], a coordinator epoch older than the producer's last one
//! [`LogError::TransactionCoordinatorFenced`]. It ends the open transaction (a
//! [`CompletedTxn`]; an ABORT one goes to the segment's `.txnindex`), takes the marker's
//! epochs, and is harmless without an open transaction (written, nothing completed).
//! Replicated and replayed batches get no checks: the leader did them.
//!
//! First unstable offset (Kafka's `firstUnstableOffset`): the smallest first offset of an
//! open transaction, or of a completed one whose marker the high watermark has not passed yet
//! (`unreplicatedTxns`); the last stable offset is that, at most the high watermark.
//!
//! Invariants:
//! - The in-memory state equals what replaying every batch of the log up to the log end
//!   offset would give (plus entries whose batches retention deleted, which are kept as
//!   Kafka keeps them since KIP-360, until they expire after
//!   [`PRODUCER_ID_EXPIRATION_MS`] without a batch).
//! - A checked append changes nothing until [`ProducerStateManager::commit`], which the log
//!   calls only after the batches were written; a failed write leaves the state as it was.
//! - A snapshot file `<offset:020>.snapshot` holds the state after every batch below
//!   `offset`, and is written atomically (temp file, fsync, rename, directory fsync). Only
//!   snapshots at or below the log end offset are ever loaded; the log removes the others
//!   after truncation, and at most [`SNAPSHOTS_TO_KEEP`] are kept.
//!
//! Snapshot format (this broker's own; Kafka's snapshot keeps only the last batch per
//! producer, which would lose four of the five batches a retry may repeat), big endian:
//! `version u16 (2)`, `crc u32` (CRC-32C of everything after it), `offset i64`,
//! `count i32`, then per producer `producer_id i64`, `epoch i16`, `last_update_ms i64`,
//! `coordinator_epoch i32`, `current_txn_first_offset i64` (-1: none), `batches u8`, and per
//! batch `first_seq i32`, `last_seq i32`, `first_offset i64`, `last_offset i64`,
//! `max_timestamp i64`. Version 1 (no coordinator epoch and transaction offset) is still
//! read; its producers have no open transaction.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use super::batch::BatchHeader;
use super::checkpoint;
use super::control::{parse_marker_batch, ControlType, Marker};
use super::error::LogError;
use super::scan::{BatchScanner, ScanError, SMALL_CHUNK};
use super::segment::{file_name, Segment};

/// Batches remembered per producer for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`, matching the producer's `max.in.flight.requests.per.connection`
/// limit of 5 for idempotence).
pub const BATCHES_TO_RETAIN: usize = 5;
/// Suffix of producer state snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Snapshot files kept in a partition directory (the newest ones).
pub const SNAPSHOTS_TO_KEEP: usize = 2;
/// A producer that wrote nothing for this long is forgotten (Kafka's
/// `producer.id.expiration.ms` default, one day).
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
/// The epoch of an entry that has not seen one (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// The sequence of an entry without batches (Kafka's `RecordBatch.NO_SEQUENCE`).
pub const NO_SEQUENCE: i32 = -1;
/// The coordinator epoch of an entry that has seen no marker.
pub const NO_COORDINATOR_EPOCH: i32 = -1;

const SNAPSHOT_VERSION: u16 = 2;
const SNAPSHOT_HEADER: usize = 2 + 4 + 8 + 4;
const PRODUCER_FIXED_V1: usize = 8 + 2 + 8 + 1;
const PRODUCER_FIXED: usize = PRODUCER_FIXED_V1 + 4 + 8;
const BATCH_SIZE: usize = 4 + 4 + 8 + 8 + 8;

/// `seq + by` with Kafka's wrap-around: after `i32::MAX` comes 0
/// (`DefaultRecordBatch.incrementSequence`). `by` is a record count minus one, never negative.
pub fn increment_sequence(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// Kafka's `inSequence`: `next` directly follows `last`, wrapping from `i32::MAX` to 0.
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// What is remembered of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence number of the first record.
    pub first_seq: i32,
    /// Sequence number of the last record (wrapped past `i32::MAX`).
    pub last_seq: i32,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's max timestamp as stored (the append time for LogAppendTime).
    pub max_timestamp: i64,
}

/// One producer's state in this partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The latest producer epoch seen, or [`NO_PRODUCER_EPOCH`].
    pub epoch: i16,
    /// The last batches of `epoch`, oldest first, at most [`BATCHES_TO_RETAIN`].
    pub batches: VecDeque<BatchMetadata>,
    /// Broker time of the last batch (or of the load, for batches replayed at open).
    pub last_update_ms: i64,
    /// The coordinator epoch of the producer's last transaction marker, or
    /// [`NO_COORDINATOR_EPOCH`].
    pub coordinator_epoch: i32,
    /// The first offset of the producer's open transaction in this partition.
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    fn empty() -> ProducerEntry {
        ProducerEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            last_update_ms: 0,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            current_txn_first_offset: None,
        }
    }

    /// The max timestamp of the last batch, or -1.
    pub fn last_timestamp(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.max_timestamp)
    }

    /// The last sequence appended under the current epoch, or [`NO_SEQUENCE`].
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// Kafka's `findDuplicateBatch`: a retained batch of the same epoch with exactly this
    /// sequence range.
    fn find_duplicate(&self, batch: &ProducerBatch) -> Option<BatchMetadata> {
        if batch.epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == batch.meta.first_seq && b.last_seq == batch.meta.last_seq)
            .copied()
    }

    /// A new epoch forgets the batches of the old one.
    fn set_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    fn push(&mut self, meta: BatchMetadata) {
        if self.batches.len() == BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(meta);
    }
}

/// What a producer batch is, for the transaction bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// Records; `transactional` when the batch has the transactional attribute.
    Data { transactional: bool },
    /// A transaction marker.
    Marker(Marker),
}

/// The producer fields of one batch and the offsets the log gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The producer id (>= 0).
    pub producer_id: i64,
    /// The producer epoch.
    pub epoch: i16,
    /// Sequences, offsets and max timestamp (a marker has sequence -1 and one offset).
    pub meta: BatchMetadata,
    /// Data or marker.
    pub kind: BatchKind,
}

impl ProducerBatch {
    /// The producer fields of a batch whose first record gets `first_offset` and whose
    /// stored max timestamp is `max_timestamp`; `batch` is the whole batch (a marker's
    /// record is read from it). `None` for batches without a producer id, and for a control
    /// batch without a readable marker (an empty one the cleaner left, or an unknown control
    /// type, which Kafka ignores too).
    pub fn of(
        h: &BatchHeader,
        batch: &[u8],
        first_offset: i64,
        max_timestamp: i64,
    ) -> Option<ProducerBatch> {
        if !h.has_producer_id() {
            return None;
        }
        let kind = if h.is_control() {
            BatchKind::Marker(parse_marker_batch(batch, h)?)
        } else {
            BatchKind::Data {
                transactional: h.is_transactional(),
            }
        };
        let delta = h.last_offset_delta.max(0);
        Some(ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            meta: BatchMetadata {
                first_seq: h.base_sequence,
                last_seq: increment_sequence(h.base_sequence, delta),
                first_offset,
                last_offset: first_offset + i64::from(delta),
                max_timestamp,
            },
            kind,
        })
    }

    /// The producer fields of a batch already in the log (`batch` is its bytes).
    pub fn stored(h: &BatchHeader, batch: &[u8]) -> Option<ProducerBatch> {
        ProducerBatch::of(h, batch, h.base_offset, h.max_timestamp)
    }
}

/// A transaction a marker ended (Kafka's `CompletedTxn`), with the partition's last stable
/// offset right after it (what the `.txnindex` entry of an aborted one records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch.
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    pub aborted: bool,
    /// Kafka's `lastStableOffset(completedTxn)`: the first offset of the earliest other open
    /// transaction, else one past the marker.
    pub last_stable_offset: i64,
}

impl CompletedTxn {
    /// The `.txnindex` entry of an aborted transaction.
    pub fn aborted_entry(&self) -> Option<super::txn_index::AbortedTxn> {
        self.aborted.then_some(super::txn_index::AbortedTxn {
            producer_id: self.producer_id,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            last_stable_offset: self.last_stable_offset,
        })
    }
}

/// Who appends a batch (Kafka's `AppendOrigin`): a client's batches get every check; a
/// coordinator's (transactional offset commits in `__consumer_offsets`, written with the
/// producer's id and epoch and sequence -1) only the epoch check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
}

/// The outcome of [`ProducerStateManager::check_append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A batch repeats a retained one: answer with these offsets, write nothing.
    Duplicate(BatchMetadata),
    /// Every batch passed; apply with [`ProducerStateManager::commit`] once written.
    Append(PendingUpdate),
}

/// State changes of an append that passed the checks but is not written yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingUpdate {
    producers: Vec<(i64, Pending)>,
    /// Transactions the append opens: (producer id, first offset), in log order.
    started: Vec<(i64, i64)>,
    /// Transactions its markers end: (producer id, first offset, marker offset, aborted).
    completed: Vec<(i64, i64, i64, bool)>,
}

impl PendingUpdate {
    /// True when the append carried no producer ids.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// Kafka's `ProducerAppendInfo.updatedEntry`: the entry's fields after this append and the
/// batches it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    epoch: i16,
    batches: Vec<BatchMetadata>,
    coordinator_epoch: i32,
    txn_first_offset: Option<i64>,
}

/// The producer state of one partition.
#[derive(Debug)]
pub struct ProducerStateManager {
    dir: PathBuf,
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Completed transactions whose marker may not be below the high watermark yet:
    /// first offset -> (producer id, marker offset).
    unreplicated: BTreeMap<i64, (i64, i64)>,
}

impl ProducerStateManager {
    /// Empty state for the partition directory `dir` (no file is touched).
    pub fn empty(dir: &Path) -> ProducerStateManager {
        ProducerStateManager {
            dir: dir.to_path_buf(),
            producers: HashMap::new(),
            ongoing: BTreeMap::new(),
            unreplicated: BTreeMap::new(),
        }
    }

    /// Every producer with state, by id (DescribeProducers, the dump tool).
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// The open transactions as (first offset, producer id), oldest first.
    pub fn ongoing_transactions(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().map(|(first, pid)| (*first, *pid))
    }

    /// Kafka's `firstUnstableOffset` for a partition whose high watermark is
    /// `high_watermark`: the first offset of the oldest open transaction, or of a completed
    /// one whose marker is at or above the high watermark.
    pub fn first_unstable_offset(&self, high_watermark: i64) -> Option<i64> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self
            .unreplicated
            .iter()
            .find(|(_, (_, last))| *last >= high_watermark)
            .map(|(first, _)| *first);
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forgets the completed transactions whose markers are below `high_watermark` (Kafka's
    /// `onHighWatermarkUpdated`).
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        self.unreplicated
            .retain(|_, (_, last)| *last >= high_watermark);
    }

    /// Opens a transaction of `producer_id` at `first_offset`.
    fn start_txn(&mut self, producer_id: i64, first_offset: i64) {
        self.ongoing.insert(first_offset, producer_id);
    }

    /// Ends the open transaction that started at `first_offset` with the marker at
    /// `last_offset` (Kafka's `lastStableOffset` then `completeTxn`).
    fn complete_txn(
        &mut self,
        producer_id: i64,
        first_offset: i64,
        last_offset: i64,
        aborted: bool,
    ) -> CompletedTxn {
        self.ongoing.remove(&first_offset);
        let last_stable_offset = self
            .ongoing
            .iter()
            .find(|(_, pid)| **pid != producer_id)
            .map_or(last_offset + 1, |(first, _)| *first);
        self.unreplicated
            .insert(first_offset, (producer_id, last_offset));
        CompletedTxn {
            producer_id,
            first_offset,
            last_offset,
            aborted,
            last_stable_offset,
        }
    }

    /// Producer id -> the last offset of its last batch, for every producer with state (the
    /// batches the cleaner must keep).
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(id, e)| e.batches.back().map(|b| (*id, b.last_offset)))
            .collect()
    }

    /// Number of producers with state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer has state.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The state of `producer_id`, if any.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks the batches of one client append (see the module rules); `batches` are in log
    /// order with their assigned offsets. Changes nothing.
    pub fn check_append(&self, batches: &[ProducerBatch]) -> Result<Checked, LogError> {
        self.check_append_from(batches, AppendOrigin::Client)
    }

    /// [`ProducerStateManager::check_append`] for an append from `origin`: a coordinator's
    /// batches skip duplicate detection and the sequence check.
    pub fn check_append_from(
        &self,
        batches: &[ProducerBatch],
        origin: AppendOrigin,
    ) -> Result<Checked, LogError> {
        let mut pending: Vec<(i64, Pending)> = Vec::new();
        let mut started = Vec::new();
        let mut completed = Vec::new();
        for batch in batches {
            let current = self.producers.get(&batch.producer_id);
            if origin == AppendOrigin::Client && matches!(batch.kind, BatchKind::Data { .. }) {
                if let Some(duplicate) = current.and_then(|c| c.find_duplicate(batch)) {
                    return Ok(Checked::Duplicate(duplicate));
                }
            }
            let current_epoch = current.map_or(NO_PRODUCER_EPOCH, |c| c.epoch);
            let slot = match pending.iter().position(|(id, _)| *id == batch.producer_id) {
                Some(i) => i,
                None => {
                    pending.push((
                        batch.producer_id,
                        Pending {
                            epoch: current_epoch,
                            batches: Vec::new(),
                            coordinator_epoch: current
                                .map_or(NO_COORDINATOR_EPOCH, |c| c.coordinator_epoch),
                            txn_first_offset: current.and_then(|c| c.current_txn_first_offset),
                        },
                    ));
                    pending.len() - 1
                }
            };
            let updated = &mut pending[slot].1;
            self.check_epoch(batch, updated.epoch)?;
            let transactional = match batch.kind {
                BatchKind::Marker(marker) => {
                    if marker.coordinator_epoch < updated.coordinator_epoch {
                        return Err(LogError::TransactionCoordinatorFenced {
                            dir: self.dir.clone(),
                            producer_id: batch.producer_id,
                            coordinator_epoch: marker.coordinator_epoch,
                            current: updated.coordinator_epoch,
                        });
                    }
                    if let Some(first) = updated.txn_first_offset.take() {
                        completed.push((
                            batch.producer_id,
                            first,
                            batch.meta.first_offset,
                            marker.control == ControlType::Abort,
                        ));
                    }
                    if updated.epoch != batch.epoch {
                        updated.batches.clear();
                        updated.epoch = batch.epoch;
                    }
                    updated.coordinator_epoch = marker.coordinator_epoch;
                    continue;
                }
                BatchKind::Data { transactional } => transactional,
            };
            if updated.txn_first_offset.is_some() && !transactional {
                return Err(LogError::InvalidTxnState {
                    dir: self.dir.clone(),
                    producer_id: batch.producer_id,
                    offset: batch.meta.first_offset,
                });
            }
            let current_last_seq = if let Some(last) = updated.batches.last() {
                last.last_seq
            } else if batch.epoch == current_epoch {
                current.map_or(NO_SEQUENCE, ProducerEntry::last_seq)
            } else {
                NO_SEQUENCE
            };
            if origin == AppendOrigin::Client {
                self.check_sequence(batch, updated.epoch, current_epoch, current_last_seq)?;
            }
            if updated.epoch != batch.epoch {
                updated.batches.clear();
                updated.epoch = batch.epoch;
            }
            updated.batches.push(batch.meta);
            if transactional && updated.txn_first_offset.is_none() {
                updated.txn_first_offset = Some(batch.meta.first_offset);
                started.push((batch.producer_id, batch.meta.first_offset));
            }
        }
        Ok(Checked::Append(PendingUpdate {
            producers: pending,
            started,
            completed,
        }))
    }

    /// Kafka's `checkProducerEpoch` for a client append.
    fn check_epoch(&self, batch: &ProducerBatch, updated_epoch: i16) -> Result<(), LogError> {
        if batch.epoch < updated_epoch {
            return Err(LogError::InvalidProducerEpoch {
                dir: self.dir.clone(),
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current_epoch: updated_epoch,
            });
        }
        Ok(())
    }

    /// Kafka's `checkSequence` for a client append.
    fn check_sequence(
        &self,
        batch: &ProducerBatch,
        updated_epoch: i16,
        current_epoch: i16,
        current_last_seq: i32,
    ) -> Result<(), LogError> {
        let first_seq = batch.meta.first_seq;
        let refuse = |expected: i32| LogError::OutOfOrderSequence {
            dir: self.dir.clone(),
            producer_id: batch.producer_id,
            epoch: batch.epoch,
            sequence: first_seq,
            expected,
        };
        if batch.epoch != updated_epoch {
            // A new epoch restarts the sequence, unless the entry never had an epoch.
            if first_seq != 0 && updated_epoch != NO_PRODUCER_EPOCH {
                return Err(refuse(0));
            }
        } else if !(current_epoch == NO_PRODUCER_EPOCH || in_sequence(current_last_seq, first_seq))
        {
            return Err(refuse(increment_sequence(current_last_seq, 1)));
        }
        Ok(())
    }

    /// Applies a checked append after its batches were written (Kafka's
    /// `ProducerStateManager.update`, then `completeTxn` for each marker); returns the
    /// transactions its markers completed, in log order.
    pub fn commit(&mut self, update: PendingUpdate, now_ms: i64) -> Vec<CompletedTxn> {
        for (producer_id, pending) in update.producers {
            let entry = self
                .producers
                .entry(producer_id)
                .or_insert_with(ProducerEntry::empty);
            entry.set_epoch(pending.epoch);
            for meta in pending.batches {
                entry.push(meta);
            }
            entry.coordinator_epoch = pending.coordinator_epoch;
            entry.current_txn_first_offset = pending.txn_first_offset;
            entry.last_update_ms = now_ms;
        }
        for (producer_id, first_offset) in update.started {
            self.start_txn(producer_id, first_offset);
        }
        update
            .completed
            .into_iter()
            .map(|(pid, first, last, aborted)| self.complete_txn(pid, first, last, aborted))
            .collect()
    }

    /// Applies a batch read back from the log or replicated from the leader, without checks
    /// (Kafka's loading and follower paths, where the log is the truth); returns the
    /// transaction a marker completed.
    pub fn replay(&mut self, batch: &ProducerBatch, now_ms: i64) -> Option<CompletedTxn> {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(ProducerEntry::empty);
        entry.set_epoch(batch.epoch);
        entry.last_update_ms = entry.last_update_ms.max(now_ms);
        match batch.kind {
            BatchKind::Data { transactional } => {
                entry.push(batch.meta);
                if transactional && entry.current_txn_first_offset.is_none() {
                    entry.current_txn_first_offset = Some(batch.meta.first_offset);
                    self.start_txn(batch.producer_id, batch.meta.first_offset);
                }
                None
            }
            BatchKind::Marker(marker) => {
                entry.coordinator_epoch = marker.coordinator_epoch;
                let first = entry.current_txn_first_offset.take()?;
                Some(self.complete_txn(
                    batch.producer_id,
                    first,
                    batch.meta.first_offset,
                    marker.control == ControlType::Abort,
                ))
            }
        }
    }

    /// Forgets producers without a batch for [`PRODUCER_ID_EXPIRATION_MS`], except those
    /// with an open transaction (Kafka's `isProducerExpired`); returns how many.
    pub fn remove_expired(&mut self, now_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_update_ms) < PRODUCER_ID_EXPIRATION_MS
        });
        before - self.producers.len()
    }

    /// Forgets the completed transactions whose markers are below `log_start_offset`
    /// (retention or DeleteRecords removed them).
    pub fn on_log_start_offset(&mut self, log_start_offset: i64) {
        self.unreplicated
            .retain(|_, (_, last)| *last >= log_start_offset);
    }

    /// Forgets every producer and transaction (the log was emptied).
    pub fn clear(&mut self) {
        self.producers.clear();
        self.ongoing.clear();
        self.unreplicated.clear();
    }

    // ---- snapshots ----

    /// Writes the state as the snapshot for `offset` (the log end offset the state
    /// reflects), then deletes all but the newest [`SNAPSHOTS_TO_KEEP`] snapshots.
    pub fn take_snapshot(&self, offset: i64) -> Result<(), LogError> {
        let bytes = self.encode(offset);
        checkpoint::write_atomic(&self.dir, &snapshot_file_name(offset), &bytes)?;
        let offsets = list_snapshots(&self.dir)?;
        let excess = offsets.len().saturating_sub(SNAPSHOTS_TO_KEEP);
        for old in &offsets[..excess] {
            remove_snapshot(&self.dir, *old)?;
        }
        Ok(())
    }

    /// Deletes the snapshots above `offset` (after a truncation to `offset`); returns how
    /// many. The deletions are made durable before returning.
    pub fn delete_snapshots_above(&self, offset: i64) -> Result<usize, LogError> {
        let mut n = 0;
        for snap in list_snapshots(&self.dir)? {
            if snap > offset {
                remove_snapshot(&self.dir, snap)?;
                n += 1;
            }
        }
        if n > 0 {
            checkpoint::sync_dir(&self.dir)?;
        }
        Ok(n)
    }

    /// Rebuilds the state of a recovered log: deletes snapshots above `log_end_offset` (and
    /// above `rebuild_from`, the first segment whose `.txnindex` must be rebuilt), loads the
    /// newest readable snapshot at or below it (an unreadable one is reported, deleted, and
    /// the next older one tried), then replays the producer fields of the batch headers
    /// (and the markers) from `max(snapshot offset, log_start_offset)` to the end; with no
    /// snapshot, from the log start. Keeps the newest [`SNAPSHOTS_TO_KEEP`] snapshots.
    /// Returns the state and the transactions the replayed markers completed, in log order
    /// (the log writes the aborted ones its `.txnindex` files miss).
    pub fn load(
        dir: &Path,
        segments: &BTreeMap<i64, Segment>,
        log_start_offset: i64,
        log_end_offset: i64,
        rebuild_from: Option<i64>,
    ) -> Result<(ProducerStateManager, Vec<CompletedTxn>), LogError> {
        let now = crate::clock::now_ms();
        let mut state = ProducerStateManager::empty(dir);
        let keep_below = rebuild_from.map_or(log_end_offset, |r| r.min(log_end_offset));
        let removed = state.delete_snapshots_above(keep_below)?;
        if removed > 0 {
            tracing::info!(
                dir = %dir.display(),
                "deleted {removed} producer state snapshots above offset {keep_below}"
            );
        }
        let mut offsets = list_snapshots(dir)?;
        let mut loaded_at = None;
        while let Some(offset) = offsets.pop() {
            let path = dir.join(snapshot_file_name(offset));
            let bytes = fs::read(&path).map_err(|e| LogError::io("read", &path, e))?;
            match decode(&bytes, offset) {
                Ok(producers) => {
                    state.producers = producers;
                    loaded_at = Some(offset);
                    break;
                }
                Err(why) => {
                    tracing::warn!(
                        file = %path.display(),
                        "deleting the unreadable producer state snapshot {}: {why}; the state \
                         is rebuilt from an older snapshot or the log",
                        path.display()
                    );
                    remove_snapshot(dir, offset)?;
                }
            }
        }
        // Kafka's loadFromSnapshot: every entry with an open transaction is an ongoing one.
        let open: Vec<(i64, i64)> = state
            .producers
            .iter()
            .filter_map(|(pid, e)| e.current_txn_first_offset.map(|f| (*pid, f)))
            .collect();
        for (pid, first) in open {
            state.start_txn(pid, first);
        }
        let from = loaded_at.unwrap_or(log_start_offset).max(log_start_offset);
        let mut completed = Vec::new();
        let replayed = state.replay_segments(segments, from, log_end_offset, now, &mut completed);
        let kept = list_snapshots(dir)?;
        for old in &kept[..kept.len().saturating_sub(SNAPSHOTS_TO_KEEP)] {
            remove_snapshot(dir, *old)?;
        }
        tracing::debug!(
            dir = %dir.display(),
            snapshot = ?loaded_at,
            replayed,
            producers = state.producers.len(),
            ongoing = state.ongoing.len(),
            "loaded producer state"
        );
        Ok((state, completed))
    }

    /// Replays the producer fields of every batch that ends at or after `from` and starts
    /// below `to`, adding the completed transactions to `completed`. A batch header that
    /// cannot be read ends the replay of its segment with a warning (recovery has already
    /// checked what it trusts). Returns the batches applied.
    fn replay_segments(
        &mut self,
        segments: &BTreeMap<i64, Segment>,
        from: i64,
        to: i64,
        now_ms: i64,
        completed: &mut Vec<CompletedTxn>,
    ) -> usize {
        let mut applied = 0;
        for seg in segments.values() {
            if seg.next_offset() <= from || seg.base_offset() >= to {
                continue;
            }
            let start = match seg.find_batch(from) {
                Ok(Some((pos, _))) => pos,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(file = %seg.log_path().display(), "producer state replay skipped a segment: {e}");
                    continue;
                }
            };
            let mut scanner = BatchScanner::new(seg.file(), start, seg.size(), SMALL_CHUNK);
            loop {
                match scanner.next_header() {
                    Ok(Some((pos, h))) => {
                        if h.base_offset >= to {
                            break;
                        }
                        if h.last_offset() < from || !h.has_producer_id() {
                            continue;
                        }
                        // Only a marker's record is needed; data batches are read by header.
                        let bytes = if h.is_control() {
                            match seg.read_bytes(pos, h.total_size()) {
                                Ok(b) => b,
                                Err(e) => {
                                    tracing::warn!(file = %seg.log_path().display(), "producer state replay cannot read a marker: {e}");
                                    break;
                                }
                            }
                        } else {
                            Vec::new()
                        };
                        if let Some(batch) = ProducerBatch::stored(&h, &bytes) {
                            completed.extend(self.replay(&batch, now_ms));
                            applied += 1;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let why = match e {
                            ScanError::Io(e) => e.to_string(),
                            ScanError::Invalid { position, why } => {
                                format!("byte {position}: {}", why.reason())
                            }
                        };
                        tracing::warn!(
                            file = %seg.log_path().display(),
                            "producer state replay stopped early in {}: {why}",
                            seg.log_path().display()
                        );
                        break;
                    }
                }
            }
        }
        applied
    }

    /// Forgets every producer and deletes every snapshot (the log restarts empty).
    pub fn truncate_fully(&mut self) -> Result<(), LogError> {
        self.clear();
        self.delete_snapshots_above(i64::MIN)?;
        Ok(())
    }

    fn encode(&self, offset: i64) -> Vec<u8> {
        let mut ids: Vec<i64> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        let mut body = Vec::with_capacity(12 + ids.len() * (PRODUCER_FIXED + 2 * BATCH_SIZE));
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(ids.len() as i32).to_be_bytes());
        for id in ids {
            let Some(e) = self.producers.get(&id) else {
                continue;
            };
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_update_ms.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// `<offset:020>.snapshot`.
pub fn snapshot_file_name(offset: i64) -> String {
    file_name(offset, SNAPSHOT_SUFFIX)
}

/// The offset of a snapshot file name, or `None` for any other name.
pub fn parse_snapshot_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list", dir, e))?;
        if let Some(offset) = entry.file_name().to_str().and_then(parse_snapshot_name) {
            out.push(offset);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Reads and checks the snapshot for `offset` in `dir` (for the dump tool): its producers
/// sorted by id, or why it is unreadable.
pub fn read_snapshot(dir: &Path, offset: i64) -> Result<Vec<(i64, ProducerEntry)>, String> {
    let path = dir.join(snapshot_file_name(offset));
    let bytes = fs::read(&path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut producers: Vec<_> = decode(&bytes, offset)?.into_iter().collect();
    producers.sort_unstable_by_key(|(id, _)| *id);
    Ok(producers)
}

fn remove_snapshot(dir: &Path, offset: i64) -> Result<(), LogError> {
    checkpoint::remove_optional(dir, &snapshot_file_name(offset)).map(|_| ())
}

/// A bounds-checked big-endian reader over a snapshot.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.buf.get(self.at..self.at + N).ok_or_else(|| {
            format!(
                "it ends at byte {} in the middle of a field",
                self.buf.len()
            )
        })?;
        self.at += N;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.take().map(i16::from_be_bytes)
    }
    fn u16(&mut self) -> Result<u16, String> {
        self.take().map(u16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Parses a snapshot named for `expected_offset`; every length is checked against the bytes.
fn decode(bytes: &[u8], expected_offset: i64) -> Result<HashMap<i64, ProducerEntry>, String> {
    if bytes.len() < SNAPSHOT_HEADER {
        return Err(format!(
            "it is {} bytes, shorter than the {SNAPSHOT_HEADER}-byte header",
            bytes.len()
        ));
    }
    let mut r = Reader { buf: bytes, at: 0 };
    let version = r.u16()?;
    if version != 1 && version != SNAPSHOT_VERSION {
        return Err(format!(
            "it has version {version}, this broker reads versions 1 and {SNAPSHOT_VERSION}"
        ));
    }
    let fixed = if version == 1 {
        PRODUCER_FIXED_V1
    } else {
        PRODUCER_FIXED
    };
    let crc = r.u32()?;
    let computed = crc32c::crc32c(&bytes[r.at..]);
    if crc != computed {
        return Err(format!(
            "its CRC-32C {crc:#010x} does not match the computed {computed:#010x}"
        ));
    }
    let offset = r.i64()?;
    if offset != expected_offset {
        return Err(format!(
            "it says offset {offset} but its name says {expected_offset}"
        ));
    }
    let count = r.i32()?;
    let count = usize::try_from(count).map_err(|_| format!("it has {count} producers"))?;
    if count > (bytes.len() - r.at) / fixed {
        return Err(format!(
            "it claims {count} producers, more than its bytes hold"
        ));
    }
    let mut producers = HashMap::with_capacity(count);
    for _ in 0..count {
        let producer_id = r.i64()?;
        let epoch = r.i16()?;
        let last_update_ms = r.i64()?;
        let (coordinator_epoch, txn_first) = if version == 1 {
            (NO_COORDINATOR_EPOCH, -1)
        } else {
            (r.i32()?, r.i64()?)
        };
        let n = usize::from(r.u8()?);
        if n > BATCHES_TO_RETAIN {
            return Err(format!(
                "producer {producer_id} has {n} batches, more than {BATCHES_TO_RETAIN}"
            ));
        }
        let mut batches = VecDeque::with_capacity(n);
        for _ in 0..n {
            batches.push_back(BatchMetadata {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
                max_timestamp: r.i64()?,
            });
        }
        if producer_id < 0 || producers.contains_key(&producer_id) {
            return Err(format!(
                "producer id {producer_id} is negative or listed twice"
            ));
        }
        producers.insert(
            producer_id,
            ProducerEntry {
                epoch,
                batches,
                last_update_ms,
                coordinator_epoch,
                current_txn_first_offset: (txn_first >= 0).then_some(txn_first),
            },
        );
    }
    if r.at != bytes.len() {
        return Err(format!(
            "{} bytes follow the last producer",
            bytes.len() - r.at
        ));
    }
    Ok(producers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: i64 = 1000;

    /// A batch of `count` records from PID at `epoch` starting at sequence `seq`, placed at
    /// `offset`.
    fn batch(epoch: i16, seq: i32, count: i32, offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id: PID,
            epoch,
            meta: BatchMetadata {
                first_seq: seq,
                last_seq: increment_sequence(seq, count - 1),
                first_offset: offset,
                last_offset: offset + i64::from(count) - 1,
                max_timestamp: 100 + offset,
            },
            kind: BatchKind::Data {
                transactional: false,
            },
        }
    }

    /// A transactional batch of PID.
    fn txn_batch(epoch: i16, seq: i32, count: i32, offset: i64) -> ProducerBatch {
        ProducerBatch {
            kind: BatchKind::Data {
                transactional: true,
            },
            ..batch(epoch, seq, count, offset)
        }
    }

    /// A marker of `pid` at `offset`.
    fn marker(
        pid: i64,
        epoch: i16,
        coordinator_epoch: i32,
        abort: bool,
        offset: i64,
    ) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            meta: BatchMetadata {
                first_seq: -1,
                last_seq: -1,
                first_offset: offset,
                last_offset: offset,
                max_timestamp: 100 + offset,
            },
            kind: BatchKind::Marker(Marker {
                control: if abort {
                    ControlType::Abort
                } else {
                    ControlType::Commit
                },
                coordinator_epoch,
            }),
        }
    }

    fn coordinator_append(
        s: &mut ProducerStateManager,
        b: ProducerBatch,
    ) -> Result<Vec<CompletedTxn>, LogError> {
        match s.check_append_from(&[b], AppendOrigin::Coordinator)? {
            Checked::Append(update) => Ok(s.commit(update, 1)),
            Checked::Duplicate(d) => panic!("a duplicate {d:?}"),
        }
    }

    #[test]
    fn a_transactional_batch_opens_a_transaction_and_a_marker_ends_it() {
        let mut s = state();
        accepted(&mut s, txn_batch(0, 0, 3, 10));
        accepted(&mut s, txn_batch(0, 3, 2, 13));
        assert_eq!(s.entry(PID).unwrap().current_txn_first_offset, Some(10));
        assert_eq!(
            s.ongoing_transactions().collect::<Vec<_>>(),
            vec![(10, PID)]
        );
        // Another producer's transaction starts later.
        let other = ProducerBatch {
            producer_id: 7,
            ..txn_batch(0, 0, 1, 15)
        };
        accepted(&mut s, other);
        assert_eq!(s.first_unstable_offset(100), Some(10));
        let done = coordinator_append(&mut s, marker(PID, 0, 3, true, 16)).unwrap();
        assert_eq!(
            done,
            vec![CompletedTxn {
                producer_id: PID,
                first_offset: 10,
                last_offset: 16,
                aborted: true,
                last_stable_offset: 15,
            }]
        );
        let e = s.entry(PID).unwrap();
        assert_eq!((e.current_txn_first_offset, e.coordinator_epoch), (None, 3));
        // Completed but its marker is not below the high watermark yet: still unstable.
        assert_eq!(s.first_unstable_offset(16), Some(10));
        assert_eq!(s.first_unstable_offset(17), Some(15));
        s.on_high_watermark(17);
        let done = coordinator_append(&mut s, marker(7, 0, 3, false, 17)).unwrap();
        assert_eq!(done[0].last_stable_offset, 18);
        assert!(!done[0].aborted);
        assert_eq!(s.first_unstable_offset(18), None);
        // A marker without an open transaction is written and completes nothing.
        assert!(coordinator_append(&mut s, marker(PID, 0, 3, false, 18))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn markers_check_the_producer_and_coordinator_epochs() {
        let mut s = state();
        accepted(&mut s, txn_batch(4, 0, 1, 0));
        coordinator_append(&mut s, marker(PID, 4, 5, false, 1)).unwrap();
        let e = coordinator_append(&mut s, marker(PID, 3, 5, false, 2)).unwrap_err();
        assert_eq!(
            e.kafka_error(),
            kafka_protocol::error::ResponseError::InvalidProducerEpoch
        );
        let e = coordinator_append(&mut s, marker(PID, 4, 4, true, 2)).unwrap_err();
        assert_eq!(
            e.kafka_error(),
            kafka_protocol::error::ResponseError::TransactionCoordinatorFenced,
            "{e}"
        );
        // A fencing abort with a bumped epoch is taken, and forgets the old epoch's batches.
        coordinator_append(&mut s, marker(PID, 5, 6, true, 2)).unwrap();
        let e = s.entry(PID).unwrap();
        assert_eq!((e.epoch, e.coordinator_epoch, e.batches.len()), (5, 6, 0));
    }

    #[test]
    fn a_non_transactional_batch_inside_a_transaction_is_invalid_txn_state() {
        let mut s = state();
        accepted(&mut s, txn_batch(0, 0, 1, 0));
        let e = append(&mut s, batch(0, 1, 1, 1)).unwrap_err();
        assert_eq!(
            e.kafka_error(),
            kafka_protocol::error::ResponseError::InvalidTxnState
        );
        assert_eq!(s.entry(PID).unwrap().last_seq(), 0, "nothing applied");
    }

    #[test]
    fn replay_keeps_the_same_transaction_bookkeeping_without_checks() {
        let mut s = state();
        assert!(s.replay(&txn_batch(0, 0, 2, 0), 1).is_none());
        assert_eq!(s.first_unstable_offset(10), Some(0));
        // An older coordinator epoch is not refused on replay: the leader decided.
        let done = s.replay(&marker(PID, 0, 2, true, 2), 1).unwrap();
        assert_eq!(
            (done.first_offset, done.last_offset, done.aborted),
            (0, 2, true)
        );
        assert_eq!(s.first_unstable_offset(3), None);
        assert_eq!(s.first_unstable_offset(2), Some(0));
    }

    #[test]
    fn a_producer_with_an_open_transaction_does_not_expire() {
        let mut s = state();
        accepted(&mut s, txn_batch(0, 0, 1, 0));
        assert_eq!(s.remove_expired(10 * PRODUCER_ID_EXPIRATION_MS), 0);
    }

    #[test]
    fn snapshots_v2_carry_open_transactions_and_v1_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::empty(dir.path());
        accepted(&mut s, txn_batch(1, 0, 2, 0));
        let other = ProducerBatch {
            producer_id: 9,
            ..batch(0, 0, 1, 2)
        };
        accepted(&mut s, other);
        coordinator_append(&mut s, marker(9, 0, 4, false, 3)).unwrap();
        s.take_snapshot(4).unwrap();
        let bytes = fs::read(dir.path().join(snapshot_file_name(4))).unwrap();
        assert_eq!(&bytes[..2], &2u16.to_be_bytes());
        let back = decode(&bytes, 4).unwrap();
        assert_eq!(back, s.producers);
        assert_eq!(back[&PID].current_txn_first_offset, Some(0));
        assert_eq!(back[&9].coordinator_epoch, 4);
        // The loaded state knows the open transaction.
        let segments = BTreeMap::new();
        let (loaded, completed) =
            ProducerStateManager::load(dir.path(), &segments, 0, 4, None).unwrap();
        assert!(completed.is_empty());
        assert_eq!(loaded.first_unstable_offset(4), Some(0));
        // Version 1: the same without the two transaction fields.
        let mut body = Vec::new();
        body.extend_from_slice(&4i64.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&PID.to_be_bytes());
        body.extend_from_slice(&3i16.to_be_bytes());
        body.extend_from_slice(&77i64.to_be_bytes());
        body.push(0);
        let mut v1 = 1u16.to_be_bytes().to_vec();
        v1.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        v1.extend_from_slice(&body);
        let back = decode(&v1, 4).unwrap();
        let e = &back[&PID];
        assert_eq!(
            (e.epoch, e.last_update_ms, e.coordinator_epoch),
            (3, 77, -1)
        );
        assert_eq!(e.current_txn_first_offset, None);
    }

    fn state() -> ProducerStateManager {
        ProducerStateManager::empty(Path::new("/nonexistent/t-0"))
    }

    /// Checks and commits; returns the check's outcome.
    fn append(s: &mut ProducerStateManager, b: ProducerBatch) -> Result<Checked, LogError> {
        let checked = s.check_append(&[b])?;
        if let Checked::Append(update) = &checked {
            s.commit(update.clone(), 1);
        }
        Ok(checked)
    }

    fn accepted(s: &mut ProducerStateManager, b: ProducerBatch) {
        match append(s, b) {
            Ok(Checked::Append(_)) => {}
            other => panic!("expected the batch {b:?} to be accepted, got {other:?}"),
        }
    }

    fn out_of_order(s: &mut ProducerStateManager, b: ProducerBatch) -> i32 {
        match append(s, b) {
            Err(e @ LogError::OutOfOrderSequence { expected, .. }) => {
                assert_eq!(e.kafka_error_code(), 45);
                expected
            }
            other => panic!("expected OUT_OF_ORDER_SEQUENCE_NUMBER for {b:?}, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_producer_may_start_at_any_sequence() {
        let mut s = state();
        accepted(&mut s, batch(3, 42, 5, 0));
        let e = s.entry(PID).unwrap();
        assert_eq!((e.epoch, e.last_seq()), (3, 46));
    }

    #[test]
    fn same_epoch_needs_the_next_sequence() {
        let mut s = state();
        accepted(&mut s, batch(0, 0, 5, 0));
        accepted(&mut s, batch(0, 5, 2, 5));
        assert_eq!(out_of_order(&mut s, batch(0, 8, 1, 7)), 7, "a gap");
        assert_eq!(
            out_of_order(&mut s, batch(0, 6, 1, 7)),
            7,
            "overlap, not a duplicate"
        );
        assert_eq!(
            out_of_order(&mut s, batch(0, 0, 1, 7)),
            7,
            "restart in the same epoch"
        );
        accepted(&mut s, batch(0, 7, 1, 7));
        assert_eq!(s.entry(PID).unwrap().last_seq(), 7);
    }

    #[test]
    fn an_older_epoch_is_invalid_producer_epoch() {
        let mut s = state();
        accepted(&mut s, batch(4, 0, 1, 0));
        match append(&mut s, batch(3, 1, 1, 1)) {
            Err(e @ LogError::InvalidProducerEpoch { .. }) => {
                assert_eq!(e.kafka_error_code(), 47);
                assert!(e.to_string().contains("epoch 3"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // Even a retained sequence range of the older epoch is no duplicate.
        assert!(matches!(
            append(&mut s, batch(3, 0, 1, 1)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn a_newer_epoch_must_start_at_sequence_zero() {
        let mut s = state();
        accepted(&mut s, batch(0, 0, 3, 0));
        assert_eq!(out_of_order(&mut s, batch(1, 3, 1, 3)), 0);
        // The Java producer bumps its epoch itself and restarts at 0.
        accepted(&mut s, batch(1, 0, 1, 3));
        let e = s.entry(PID).unwrap();
        assert_eq!(
            (e.epoch, e.batches.len()),
            (1, 1),
            "the old epoch's batches are gone"
        );
        // Skipping epochs is fine too, as long as the sequence restarts.
        accepted(&mut s, batch(7, 0, 1, 4));
    }

    #[test]
    fn an_entry_without_an_epoch_accepts_any_sequence() {
        let mut s = state();
        s.producers.insert(PID, ProducerEntry::empty());
        accepted(&mut s, batch(2, 9, 1, 0));
        s.producers.insert(PID, ProducerEntry::empty());
        accepted(&mut s, batch(NO_PRODUCER_EPOCH, 9, 1, 1));
    }

    #[test]
    fn sequences_wrap_from_i32_max_to_zero() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 0), 5);
        let mut s = state();
        accepted(&mut s, batch(0, i32::MAX - 2, 3, 0));
        assert_eq!(s.entry(PID).unwrap().last_seq(), i32::MAX);
        accepted(&mut s, batch(0, 0, 2, 3));
        // A batch that itself spans the wrap.
        let mut s = state();
        accepted(&mut s, batch(0, i32::MAX - 1, 4, 0));
        assert_eq!(s.entry(PID).unwrap().last_seq(), 1);
        accepted(&mut s, batch(0, 2, 1, 4));
        // i32::MAX is not followed by i32::MAX + 1 in any other way.
        let mut s = state();
        accepted(&mut s, batch(0, i32::MAX, 1, 0));
        assert_eq!(out_of_order(&mut s, batch(0, 1, 1, 1)), 0);
        assert!(!in_sequence(i32::MAX, i32::MIN));
    }

    #[test]
    fn a_duplicate_of_each_of_the_last_five_batches_gets_its_original_offsets() {
        let mut s = state();
        let sent: Vec<ProducerBatch> = (0..7)
            .map(|i| batch(0, i * 2, 2, 10 * i64::from(i)))
            .collect();
        for b in &sent {
            accepted(&mut s, *b);
        }
        for b in &sent[2..] {
            // The retry arrives at a later log end offset; the answer is the original one.
            let retry = ProducerBatch {
                meta: BatchMetadata {
                    first_offset: 999,
                    last_offset: 1000,
                    ..b.meta
                },
                ..*b
            };
            match s.check_append(&[retry]).unwrap() {
                Checked::Duplicate(d) => assert_eq!(d, b.meta),
                other => panic!("{other:?}"),
            }
        }
        // Older than the last five: not recognised, and out of order.
        assert_eq!(out_of_order(&mut s, sent[1]), 14);
        assert_eq!(out_of_order(&mut s, sent[0]), 14);
    }

    #[test]
    fn a_duplicate_needs_the_exact_range_and_epoch() {
        let mut s = state();
        accepted(&mut s, batch(0, 0, 4, 0));
        assert_eq!(out_of_order(&mut s, batch(0, 0, 3, 0)), 4);
        // The same range under a newer epoch is a new batch (a bumped producer restarting).
        assert!(matches!(
            s.check_append(&[batch(1, 0, 4, 4)]).unwrap(),
            Checked::Append(_)
        ));
    }

    #[test]
    fn a_rejected_or_duplicate_append_changes_nothing() {
        let mut s = state();
        accepted(&mut s, batch(0, 0, 1, 0));
        let before = s.entry(PID).cloned();
        let _ = append(&mut s, batch(0, 5, 1, 1));
        let _ = append(&mut s, batch(0, 0, 1, 1));
        assert_eq!(s.entry(PID).cloned(), before);
        // A checked but uncommitted append (the write failed) changes nothing either.
        assert!(matches!(
            s.check_append(&[batch(0, 1, 1, 1)]).unwrap(),
            Checked::Append(_)
        ));
        assert_eq!(s.entry(PID).cloned(), before);
    }

    #[test]
    fn several_batches_in_one_append_are_checked_in_order() {
        let mut s = state();
        accepted(&mut s, batch(0, 0, 1, 0));
        let two = [batch(0, 1, 1, 1), batch(0, 2, 1, 2)];
        let Checked::Append(update) = s.check_append(&two).unwrap() else {
            panic!("both follow")
        };
        s.commit(update, 5);
        assert_eq!(s.entry(PID).unwrap().last_seq(), 2);
        assert!(s
            .check_append(&[batch(0, 3, 1, 3), batch(0, 3, 1, 4)])
            .is_err());
    }

    #[test]
    fn only_five_batches_are_retained() {
        let mut s = state();
        for i in 0..12 {
            accepted(&mut s, batch(0, i, 1, i64::from(i)));
        }
        let e = s.entry(PID).unwrap();
        assert_eq!(e.batches.len(), BATCHES_TO_RETAIN);
        assert_eq!(e.batches.front().unwrap().first_seq, 7);
    }

    #[test]
    fn producers_expire_after_a_day_without_batches() {
        let mut s = state();
        let b = batch(0, 0, 1, 0);
        let Checked::Append(u) = s.check_append(&[b]).unwrap() else {
            panic!()
        };
        s.commit(u, 1_000);
        assert_eq!(s.remove_expired(1_000 + PRODUCER_ID_EXPIRATION_MS - 1), 0);
        assert_eq!(s.remove_expired(1_000 + PRODUCER_ID_EXPIRATION_MS), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::empty(dir.path());
        for i in 0..7 {
            accepted(&mut s, batch(2, i * 3, 3, i64::from(i) * 3));
        }
        let other = ProducerBatch {
            producer_id: 7,
            ..batch(0, 0, 1, 21)
        };
        accepted(&mut s, other);
        s.take_snapshot(22).unwrap();
        let bytes = fs::read(dir.path().join("00000000000000000022.snapshot")).unwrap();
        let back = decode(&bytes, 22).unwrap();
        assert_eq!(back, s.producers);
        assert!(decode(&bytes, 23).is_err(), "a renamed snapshot is refused");
        for cut in [0, 5, SNAPSHOT_HEADER, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], 22).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(decode(&flipped, 22).unwrap_err().contains("CRC"));
    }

    #[test]
    fn only_the_newest_snapshots_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = ProducerStateManager::empty(dir.path());
        for offset in [0, 10, 20, 30] {
            s.take_snapshot(offset).unwrap();
        }
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![20, 30]);
        assert_eq!(s.delete_snapshots_above(25).unwrap(), 1);
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![20]);
        assert_eq!(
            parse_snapshot_name("00000000000000000020.snapshot"),
            Some(20)
        );
        assert_eq!(parse_snapshot_name("20.snapshot"), None);
        assert_eq!(
            parse_snapshot_name("00000000000000000020.snapshot.tmp"),
            None
        );
    }
}
