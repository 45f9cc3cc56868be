//! One transactional id's state machine (Apache Kafka's `TransactionMetadata` and the checks
//! of its `TransactionCoordinator`), with no I/O: time is passed in, producer ids are
//! passed in, and every change is a two-step transition.
//!
//! States and transitions:
//! ```text
//!            InitProducerId (epoch bump / new producer id)
//!   ┌──────────────────────────────────────────────────────────┐
//!   ▼                                                          │
//! Empty ──AddPartitions/AddOffsets──▶ Ongoing ──EndTxn──▶ PrepareCommit ──markers──▶ CompleteCommit
//!   ▲                                  │  ▲                                              │
//!   │                                  │  └── AddPartitions (the first one after a Complete*)
//!   │            InitProducerId / timeout: PrepareEpochFence ──▶ PrepareAbort ──markers──▶ CompleteAbort
//!   │                                  └────────EndTxn(abort)──▶ PrepareAbort
//!   └── Empty / CompleteCommit / CompleteAbort ──idle for transactional_id_expiration──▶ Dead
//! ```
//! Transactions V2 (EndTxn v5, KIP-890) also allow Empty / Complete* ──EndTxn(abort)──▶
//! PrepareAbort, and bump the producer epoch when a transaction ends.
//!
//! The two steps: a `prepare_*` call checks the request against the current state and
//! returns the target metadata (a [`Transit`]) with the target state recorded as pending;
//! the caller persists the target in `__transaction_state` and then calls
//! [`TxnEntry::complete`] (or [`TxnEntry::abandon`] when the write failed). While a
//! transition is pending every other request gets CONCURRENT_TRANSACTIONS, so the log
//! receives one id's changes in the order they happen.
//!
//! Invariants: the producer epoch never goes down for one producer id; a client never gets
//! an epoch of `i16::MAX` or more (the coordinator keeps one epoch to fence with); the
//! partitions of a transaction are only emptied by completing it.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

/// No producer id (Kafka's `RecordBatch.NO_PRODUCER_ID`).
pub const NO_PRODUCER_ID: i64 = -1;
/// No producer epoch (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Whether a client may no longer be given a bumped epoch of this producer id: the last
/// epoch is kept for fencing (Kafka's `TransactionMetadata.isEpochExhausted`).
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// Kafka's transaction states, with their names as DescribeTransactions reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The states a transition into `self` may start from (Kafka's `validPreviousStates`).
    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether an idle id in this state may be expired (removed).
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// Whether a transaction is open (its partitions may hold undecided records).
    pub fn in_transaction(self) -> bool {
        matches!(
            self,
            TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
        )
    }
}

/// The persisted metadata of one transactional id: what `__transaction_state` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub producer_id: i64,
    /// The producer id before the last rotation (KIP-360 retries after an exhausted epoch).
    pub prev_producer_id: i64,
    /// Transactions V2: the producer id the client gets when this transaction completes
    /// (set when the epoch ran out), else -1.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, so that a retried InitProducerId gets the same answer.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the first partition was added (-1 when no transaction was started).
    pub start_ms: i64,
    pub update_ms: i64,
    /// Whether the last transition was made by a Transactions V2 client (EndTxn v5+).
    #[serde(default)]
    pub tv2: bool,
}

/// A transition's target: the metadata to persist, then to apply with [`TxnEntry::complete`].
pub type Transit = TxnMetadata;

/// What an InitProducerId asks the caller to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Persist this (state Empty, the bumped epoch or a new producer id) and answer with its
    /// producer id and epoch.
    Write(Transit),
    /// An ongoing transaction must be aborted first: persist this PrepareAbort (with the
    /// fencing epoch), write its markers, and answer CONCURRENT_TRANSACTIONS so that the
    /// client retries.
    FenceAndAbort(Transit),
    /// The producer id's epochs are used up: call again with a new producer id.
    NeedProducerId,
}

/// What an EndTxn asks the caller to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// Nothing to do: the transaction already ended this way (a retry); answer NONE with
    /// this producer id and epoch.
    AlreadyDone {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// Persist this PrepareCommit / PrepareAbort, answer, then write the markers.
    Write(Transit),
    /// Transactions V2 bumps the epoch and it is used up: call again with a new producer id.
    NeedProducerId,
}

/// One transactional id as the coordinator holds it: the metadata last persisted, and the
/// transition in flight.
#[derive(Debug, Clone)]
pub struct TxnEntry {
    pub transactional_id: String,
    pub meta: TxnMetadata,
    /// The target state of the transition being persisted.
    pending: Option<TxnState>,
    /// An epoch fence was bumped in memory but its write failed: the next fence reuses that
    /// epoch instead of bumping again (the epoch was never given to a client).
    failed_epoch_fence: bool,
}

fn invalid_state(id: &str, state: TxnState, commit: bool) -> ResponseError {
    tracing::warn!(
        transactional_id = id,
        state = state.name(),
        result = if commit { "commit" } else { "abort" },
        "EndTxn does not fit the transaction's state"
    );
    ResponseError::InvalidTxnState
}

fn illegal_state(id: &str, state: TxnState) -> ResponseError {
    tracing::error!(
        transactional_id = id,
        state = state.name(),
        "a transactional id is in a state no request may find it in"
    );
    ResponseError::UnknownServerError
}

impl TxnEntry {
    /// A new id with producer id `producer_id` and no epoch yet (InitProducerId bumps it to 0).
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnEntry::loaded(
            transactional_id,
            TxnMetadata {
                producer_id,
                prev_producer_id: NO_PRODUCER_ID,
                next_producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                last_producer_epoch: NO_PRODUCER_EPOCH,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                update_ms: now_ms,
                tv2: false,
            },
        )
    }

    /// An id read back from `__transaction_state`.
    pub fn loaded(transactional_id: &str, meta: TxnMetadata) -> Self {
        TxnEntry {
            transactional_id: transactional_id.to_string(),
            meta,
            pending: None,
            failed_epoch_fence: false,
        }
    }

    /// The target state of the transition in flight, if any.
    pub fn pending(&self) -> Option<TxnState> {
        self.pending
    }

    /// Records `target` as the pending transition; `target.state` must be reachable.
    fn transit(&mut self, target: TxnMetadata) -> Result<Transit, ResponseError> {
        if self.pending.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if !target.state.valid_previous().contains(&self.meta.state) {
            tracing::error!(
                transactional_id = %self.transactional_id,
                from = self.meta.state.name(),
                to = target.state.name(),
                "refused an invalid transaction state transition"
            );
            return Err(ResponseError::UnknownServerError);
        }
        self.pending = Some(target.state);
        Ok(target)
    }

    /// The persisted transition `transit` becomes the current metadata.
    pub fn complete(&mut self, transit: Transit) {
        if self.pending != Some(transit.state) {
            tracing::error!(
                transactional_id = %self.transactional_id,
                pending = ?self.pending.map(TxnState::name),
                to = transit.state.name(),
                "completing a transition that is not the pending one"
            );
        }
        if matches!(
            transit.state,
            TxnState::CompleteCommit | TxnState::CompleteAbort
        ) {
            self.failed_epoch_fence = false;
        }
        self.meta = transit;
        self.pending = None;
    }

    /// The pending transition could not be persisted: it is dropped. An epoch fence keeps
    /// its bumped epoch in memory (Kafka's `hasFailedEpochFence`).
    pub fn abandon(&mut self) {
        self.pending = None;
    }

    /// InitProducerId for this id (Kafka's `prepareInitProducerIdTransit`). `expected` is
    /// the producer id and epoch the client sent (KIP-360, v3+), `new_producer_id` a fresh id
    /// for when the epochs of the current one are used up.
    pub fn prepare_init(
        &mut self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        new_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Result<InitStep, ResponseError> {
        let m = &self.meta;
        if self.pending.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        // With a producer id and epoch given, the client must be this id's producer: a
        // brand-new id (no epoch yet: a producer recovering from UNKNOWN_PRODUCER_ID), the
        // current producer id, or the previous one when its epoch ran out (a retry of the
        // call that rotated it).
        if let Some((pid, epoch)) = expected {
            let valid = m.producer_epoch == NO_PRODUCER_EPOCH
                || pid == m.producer_id
                || (pid == m.prev_producer_id && epoch_exhausted(epoch));
            if !valid {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let exhausted = epoch_exhausted(m.producer_epoch);
                if exhausted && expected.is_none_or(|(_, e)| e == m.producer_epoch) {
                    let Some(new_pid) = new_producer_id else {
                        return Ok(InitStep::NeedProducerId);
                    };
                    let target = TxnMetadata {
                        producer_id: new_pid,
                        prev_producer_id: m.producer_id,
                        next_producer_id: NO_PRODUCER_ID,
                        producer_epoch: 0,
                        last_producer_epoch: if expected.is_some() {
                            m.producer_epoch
                        } else {
                            NO_PRODUCER_EPOCH
                        },
                        timeout_ms,
                        state: TxnState::Empty,
                        partitions: BTreeSet::new(),
                        start_ms: -1,
                        update_ms: now_ms,
                        tv2: m.tv2,
                    };
                    return self.transit(target).map(InitStep::Write);
                }
                let (epoch, last) = match expected {
                    None if !exhausted => (m.producer_epoch + 1, NO_PRODUCER_EPOCH),
                    Some((_, e))
                        if !exhausted
                            && (m.producer_epoch == NO_PRODUCER_EPOCH || e == m.producer_epoch) =>
                    {
                        (m.producer_epoch + 1, m.producer_epoch)
                    }
                    // A retry of a call that succeeded: the same answer, no second bump (a
                    // new producer's InitProducerId would have reset the last epoch).
                    Some((_, e)) if e == m.last_producer_epoch && e != NO_PRODUCER_EPOCH => {
                        (m.producer_epoch, m.last_producer_epoch)
                    }
                    _ => return Err(ResponseError::ProducerFenced),
                };
                let target = TxnMetadata {
                    prev_producer_id: m.producer_id,
                    producer_epoch: epoch,
                    last_producer_epoch: last,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    update_ms: now_ms,
                    ..m.clone()
                };
                self.transit(target).map(InitStep::Write)
            }
            TxnState::Ongoing => {
                // Abort the ongoing transaction with a fencing epoch first; that epoch is
                // never returned. The client retries after CONCURRENT_TRANSACTIONS and its
                // retry bumps the epoch again (or rotates the producer id).
                // The coordinator's own aborts end the V1 way (no second bump): this broker
                // does not finalize `transaction.version` 2, and a V2 bump on top of the fence
                // could overflow the epoch.
                let epoch = self.prepare_fence_producer_epoch()?;
                let pid = self.meta.producer_id;
                match self.prepare_end(pid, epoch, false, false, false, None, now_ms) {
                    Ok(EndStep::Write(t)) => Ok(InitStep::FenceAndAbort(t)),
                    other => {
                        self.pending = None;
                        match other {
                            Err(e) => Err(e),
                            Ok(_) => Err(illegal_state(&self.transactional_id, TxnState::Ongoing)),
                        }
                    }
                }
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                Err(illegal_state(&self.transactional_id, m.state))
            }
        }
    }

    /// Starts fencing the current producer of an ongoing transaction (Kafka's
    /// `prepareFenceProducerEpoch`): PrepareEpochFence becomes pending and the fencing epoch
    /// is returned; the caller ends the transaction with it ([`TxnEntry::prepare_end`] with
    /// `from_client` false), which turns the fence into a PrepareAbort.
    pub fn prepare_fence_producer_epoch(&mut self) -> Result<i16, ResponseError> {
        if self.pending.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if self.meta.state != TxnState::Ongoing {
            return Err(illegal_state(&self.transactional_id, self.meta.state));
        }
        if self.meta.producer_epoch == i16::MAX {
            tracing::error!(
                transactional_id = %self.transactional_id,
                "cannot fence a producer whose epoch is already the largest"
            );
            return Err(ResponseError::UnknownServerError);
        }
        let epoch = if self.failed_epoch_fence {
            self.meta.producer_epoch
        } else {
            self.meta.producer_epoch + 1
        };
        self.pending = Some(TxnState::PrepareEpochFence);
        Ok(epoch)
    }

    fn fencing(&self) -> bool {
        self.pending == Some(TxnState::PrepareEpochFence)
    }

    /// Adds partitions to the transaction (AddPartitionsToTxn, AddOffsetsToTxn); `None` when
    /// they all are in the ongoing transaction already (answered NONE without a write).
    pub fn prepare_add_partitions(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<Option<Transit>, ResponseError> {
        let m = &self.meta;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if self.pending.is_some()
            || matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
        {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
            return Ok(None);
        }
        let start_ms = match m.state {
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => now_ms,
            _ => m.start_ms,
        };
        let mut target = TxnMetadata {
            state: TxnState::Ongoing,
            start_ms,
            update_ms: now_ms,
            ..m.clone()
        };
        target.partitions.extend(partitions.iter().cloned());
        self.transit(target).map(Some)
    }

    /// KIP-890 verification (AddPartitionsToTxn v4+ `verify_only`): whether each partition is
    /// in the ongoing transaction of this producer. Nothing changes. A pending transition is
    /// not checked: the append to the partition makes the final check.
    pub fn verify_partitions(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let m = &self.meta;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(partitions
            .iter()
            .map(|p| {
                if m.partitions.contains(p) {
                    Ok(())
                } else {
                    Err(ResponseError::TransactionAbortable)
                }
            })
            .collect())
    }

    /// EndTxn (or the coordinator's own abort, `from_client` false, with the fencing epoch
    /// from [`TxnEntry::prepare_fence_producer_epoch`]). `tv2` is Transactions V2 (EndTxn
    /// v5+): the epoch is bumped when the transaction ends.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare_end(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        from_client: bool,
        tv2: bool,
        new_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Result<EndStep, ResponseError> {
        if tv2 {
            return self.prepare_end_v2(
                producer_id,
                producer_epoch,
                commit,
                from_client,
                new_producer_id,
                now_ms,
            );
        }
        let id = self.transactional_id.clone();
        let m = &self.meta;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        // A client's epoch must be the current one; the coordinator's fence uses a higher one.
        if (from_client && producer_epoch != m.producer_epoch) || producer_epoch < m.producer_epoch
        {
            return Err(ResponseError::ProducerFenced);
        }
        if self.pending.is_some() && !self.fencing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let done = EndStep::AlreadyDone {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
        };
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                if !commit && self.fencing() {
                    self.pending = None;
                    self.meta.producer_epoch = producer_epoch;
                    self.meta.last_producer_epoch = NO_PRODUCER_EPOCH;
                    self.failed_epoch_fence = true; // cleared once the abort completes
                }
                let target = self.end_target(commit, false, NO_PRODUCER_ID, false, now_ms);
                self.transit(target).map(EndStep::Write)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(done),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            (TxnState::Dead | TxnState::PrepareEpochFence, _) => Err(illegal_state(&id, m.state)),
            (state, _) => Err(invalid_state(&id, state, commit)),
        }
    }

    /// The PrepareCommit / PrepareAbort target (Kafka's `prepareAbortOrCommit`).
    fn end_target(
        &self,
        commit: bool,
        tv2: bool,
        next_producer_id: i64,
        no_partition_added: bool,
        now_ms: i64,
    ) -> TxnMetadata {
        let m = &self.meta;
        let (epoch, last) = if tv2 {
            (m.producer_epoch + 1, m.producer_epoch)
        } else {
            (m.producer_epoch, m.last_producer_epoch)
        };
        TxnMetadata {
            next_producer_id,
            producer_epoch: epoch,
            last_producer_epoch: last,
            state: if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            },
            start_ms: if no_partition_added {
                now_ms
            } else {
                m.start_ms
            },
            update_ms: now_ms,
            tv2,
            ..m.clone()
        }
    }

    /// EndTxn under Transactions V2 (Kafka's `endTransaction` with epoch bump): a retry is
    /// recognised by the epoch one below the current (the bump of the first attempt).
    fn prepare_end_v2(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        from_client: bool,
        new_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Result<EndStep, ResponseError> {
        let id = self.transactional_id.clone();
        let fence = self.fencing();
        let m = &self.meta;
        let retry_on_overflow = !fence
            && m.prev_producer_id == producer_id
            && producer_epoch == i16::MAX - 1
            && m.producer_epoch == 0;
        let retry_on_bump =
            !fence && producer_epoch < i16::MAX && m.producer_epoch == producer_epoch + 1;
        let valid_epoch = if fence {
            (!from_client || producer_epoch == m.producer_epoch)
                && producer_epoch >= m.producer_epoch
        } else {
            match m.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
                TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    retry_on_bump || retry_on_overflow || producer_epoch == m.producer_epoch
                }
                _ => producer_epoch == m.producer_epoch,
            }
        };
        let retry = retry_on_bump || retry_on_overflow;
        if m.producer_id != producer_id && !retry_on_overflow {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if self.pending.is_some() && !fence {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let done = EndStep::AlreadyDone {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
        };
        let state = m.state;
        let no_partition_added = match (state, commit) {
            (TxnState::Ongoing, _) => false,
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if retry => {
                return Ok(done)
            }
            (TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Empty, false) => true,
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            (TxnState::Dead | TxnState::PrepareEpochFence, _) => {
                return Err(illegal_state(&id, state))
            }
            (state, _) => return Err(invalid_state(&id, state, commit)),
        };
        let next_producer_id = if !fence && epoch_exhausted(m.producer_epoch) {
            match new_producer_id {
                Some(p) => p,
                None => return Ok(EndStep::NeedProducerId),
            }
        } else {
            NO_PRODUCER_ID
        };
        if fence {
            self.pending = None;
            self.meta.producer_epoch = producer_epoch;
            self.meta.last_producer_epoch = NO_PRODUCER_EPOCH;
            self.failed_epoch_fence = true;
        }
        let target = self.end_target(commit, true, next_producer_id, no_partition_added, now_ms);
        self.transit(target).map(EndStep::Write)
    }

    /// The markers of the PrepareCommit / PrepareAbort in place are written: the Complete*
    /// target (Kafka's `prepareComplete`). Transactions V2 moves to the next producer id
    /// here when the epoch ran out.
    pub fn prepare_complete(&mut self, now_ms: i64) -> Result<Transit, ResponseError> {
        let m = &self.meta;
        let state = match m.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => return Err(illegal_state(&self.transactional_id, other)),
        };
        let (producer_id, epoch, prev) = if m.tv2 && m.next_producer_id != NO_PRODUCER_ID {
            (m.next_producer_id, 0, m.producer_id)
        } else {
            (m.producer_id, m.producer_epoch, m.prev_producer_id)
        };
        let target = TxnMetadata {
            producer_id,
            prev_producer_id: prev,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: epoch,
            state,
            partitions: BTreeSet::new(),
            update_ms: now_ms,
            ..m.clone()
        };
        self.transit(target)
    }

    /// The producer id and epoch the client continues with once the pending or current
    /// PrepareCommit / PrepareAbort is written (EndTxn v5 answers them).
    pub fn answer_after_prepare(&self, transit: &Transit) -> (i64, i16) {
        if transit.tv2 && transit.next_producer_id != NO_PRODUCER_ID {
            (transit.next_producer_id, 0)
        } else {
            (transit.producer_id, transit.producer_epoch)
        }
    }

    /// Expires this idle id: Dead becomes pending; the caller writes the tombstone and
    /// removes the entry.
    pub fn prepare_dead(&mut self) -> Result<Transit, ResponseError> {
        let target = TxnMetadata {
            state: TxnState::Dead,
            partitions: BTreeSet::new(),
            ..self.meta.clone()
        };
        self.transit(target)
    }

    /// Whether the ongoing transaction ran longer than its timeout and nothing is pending.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.pending.is_none()
            && self.meta.state == TxnState::Ongoing
            && self.meta.start_ms + i64::from(self.meta.timeout_ms) < now_ms
    }

    /// Whether this id was idle in an expirable state for longer than `expiration_ms`.
    pub fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.pending.is_none()
            && self.meta.state.expiration_allowed()
            && self.meta.update_ms <= now_ms - expiration_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_000_000;

    fn parts(list: &[(&str, i32)]) -> Vec<(String, i32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    /// Applies an InitProducerId that must succeed; returns (pid, epoch).
    fn init(e: &mut TxnEntry, expected: Option<(i64, i16)>, now: i64) -> (i64, i16) {
        let timeout = e.meta.timeout_ms;
        match e.prepare_init(timeout, expected, None, now).unwrap() {
            InitStep::Write(t) => {
                let answer = (t.producer_id, t.producer_epoch);
                e.complete(t);
                answer
            }
            other => panic!("expected a write, got {other:?}"),
        }
    }

    fn add(e: &mut TxnEntry, list: &[(&str, i32)], now: i64) {
        let (pid, epoch) = (e.meta.producer_id, e.meta.producer_epoch);
        if let Some(t) = e
            .prepare_add_partitions(pid, epoch, &parts(list), now)
            .unwrap()
        {
            e.complete(t);
        }
    }

    fn end(e: &mut TxnEntry, commit: bool, now: i64) -> Transit {
        let (pid, epoch) = (e.meta.producer_id, e.meta.producer_epoch);
        match e
            .prepare_end(pid, epoch, commit, true, false, None, now)
            .unwrap()
        {
            EndStep::Write(t) => {
                e.complete(t.clone());
                t
            }
            other => panic!("expected a write, got {other:?}"),
        }
    }

    fn finish(e: &mut TxnEntry, now: i64) {
        let t = e.prepare_complete(now).unwrap();
        e.complete(t);
    }

    #[test]
    fn a_new_id_gets_epoch_zero_and_each_init_bumps_it() {
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        assert_eq!(init(&mut e, None, T0), (7, 0));
        assert_eq!(e.meta.state, TxnState::Empty);
        assert_eq!(init(&mut e, None, T0 + 1), (7, 1));
        assert_eq!(e.meta.last_producer_epoch, NO_PRODUCER_EPOCH);
        assert_eq!(e.meta.timeout_ms, 60_000);
    }

    #[test]
    fn commit_goes_through_prepare_and_complete_and_a_retry_answers_none() {
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        init(&mut e, None, T0);
        add(&mut e, &[("a", 0), ("b", 1)], T0 + 10);
        assert_eq!(e.meta.state, TxnState::Ongoing);
        assert_eq!(e.meta.start_ms, T0 + 10);
        // Adding what is there already needs no write.
        assert_eq!(
            e.prepare_add_partitions(7, 0, &parts(&[("a", 0)]), T0 + 11),
            Ok(None)
        );
        add(&mut e, &[("c", 2)], T0 + 20);
        assert_eq!(e.meta.start_ms, T0 + 10, "the start stays the first add");
        assert_eq!(e.meta.partitions.len(), 3);
        let prepared = end(&mut e, true, T0 + 30);
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert_eq!(
            prepared.partitions.len(),
            3,
            "markers go to every partition"
        );
        // While the markers are written, the same commit is CONCURRENT_TRANSACTIONS and
        // an abort INVALID_TXN_STATE.
        assert_eq!(
            e.prepare_end(7, 0, true, true, false, None, T0 + 31),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            e.prepare_end(7, 0, false, true, false, None, T0 + 31),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            e.prepare_add_partitions(7, 0, &parts(&[("a", 0)]), T0 + 31),
            Err(ResponseError::ConcurrentTransactions)
        );
        finish(&mut e, T0 + 40);
        assert_eq!(e.meta.state, TxnState::CompleteCommit);
        assert!(e.meta.partitions.is_empty());
        assert_eq!(
            e.prepare_end(7, 0, true, true, false, None, T0 + 50),
            Ok(EndStep::AlreadyDone {
                producer_id: 7,
                producer_epoch: 0
            })
        );
        assert_eq!(
            e.prepare_end(7, 0, false, true, false, None, T0 + 50),
            Err(ResponseError::InvalidTxnState)
        );
        // The next transaction starts from CompleteCommit.
        add(&mut e, &[("a", 0)], T0 + 60);
        assert_eq!(e.meta.state, TxnState::Ongoing);
        assert_eq!(e.meta.start_ms, T0 + 60);
    }

    #[test]
    fn end_in_empty_is_invalid_state_and_wrong_ids_are_refused() {
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        init(&mut e, None, T0);
        assert_eq!(
            e.prepare_end(7, 0, true, true, false, None, T0),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            e.prepare_end(8, 0, true, true, false, None, T0),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            e.prepare_add_partitions(8, 0, &parts(&[("a", 0)]), T0),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        init(&mut e, None, T0);
        // The old epoch is fenced everywhere.
        assert_eq!(
            e.prepare_add_partitions(7, 0, &parts(&[("a", 0)]), T0),
            Err(ResponseError::ProducerFenced)
        );
        add(&mut e, &[("a", 0)], T0);
        assert_eq!(
            e.prepare_end(7, 0, true, true, false, None, T0),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn init_during_an_ongoing_transaction_fences_and_aborts_it_first() {
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        init(&mut e, None, T0);
        add(&mut e, &[("a", 0)], T0);
        let step = e.prepare_init(30_000, None, None, T0 + 5).unwrap();
        let InitStep::FenceAndAbort(t) = step else {
            panic!("expected a fence, got {step:?}");
        };
        assert_eq!(t.state, TxnState::PrepareAbort);
        assert_eq!(t.producer_epoch, 1, "the markers carry the fencing epoch");
        assert_eq!(t.partitions.len(), 1);
        // The old producer is fenced as soon as the fence is prepared.
        assert_eq!(
            e.prepare_end(7, 0, true, true, false, None, T0 + 6),
            Err(ResponseError::ProducerFenced)
        );
        e.complete(t);
        // The new producer's retries wait until the abort completes.
        assert_eq!(
            e.prepare_init(30_000, None, None, T0 + 7),
            Err(ResponseError::ConcurrentTransactions)
        );
        finish(&mut e, T0 + 8);
        assert_eq!(e.meta.state, TxnState::CompleteAbort);
        let InitStep::Write(t) = e.prepare_init(30_000, None, None, T0 + 9).unwrap() else {
            panic!("expected a write");
        };
        assert_eq!(
            (t.producer_id, t.producer_epoch, t.timeout_ms),
            (7, 2, 30_000)
        );
    }

    #[test]
    fn a_failed_fence_write_keeps_the_bumped_epoch_and_does_not_bump_again() {
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        init(&mut e, None, T0);
        add(&mut e, &[("a", 0)], T0);
        let InitStep::FenceAndAbort(_) = e.prepare_init(60_000, None, None, T0).unwrap() else {
            panic!("expected a fence");
        };
        e.abandon();
        assert_eq!(e.meta.state, TxnState::Ongoing);
        assert_eq!(e.meta.producer_epoch, 1, "the old producer stays fenced");
        let InitStep::FenceAndAbort(t) = e.prepare_init(60_000, None, None, T0).unwrap() else {
            panic!("expected a fence");
        };
        assert_eq!(t.producer_epoch, 1);
    }

    #[test]
    fn kip_360_retries_get_the_same_epoch_and_a_stale_epoch_is_fenced() {
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        init(&mut e, None, T0);
        assert_eq!(init(&mut e, Some((7, 0)), T0), (7, 1));
        assert_eq!(e.meta.last_producer_epoch, 0);
        // The response was lost: the producer retries with the epoch it had.
        assert_eq!(init(&mut e, Some((7, 0)), T0), (7, 1));
        assert_eq!(init(&mut e, Some((7, 1)), T0), (7, 2));
        assert_eq!(
            e.prepare_init(60_000, Some((7, 0)), None, T0),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            e.prepare_init(60_000, Some((99, 2)), None, T0),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn an_exhausted_epoch_rotates_the_producer_id() {
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        init(&mut e, None, T0);
        e.meta.producer_epoch = i16::MAX - 1;
        assert_eq!(
            e.prepare_init(60_000, None, None, T0),
            Ok(InitStep::NeedProducerId)
        );
        let InitStep::Write(t) = e.prepare_init(60_000, None, Some(8), T0).unwrap() else {
            panic!("expected a write");
        };
        assert_eq!((t.producer_id, t.producer_epoch), (8, 0));
        assert_eq!(t.prev_producer_id, 7);
        e.complete(t);
        // A KIP-360 retry of the rotating call with the old id and exhausted epoch is valid.
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        init(&mut e, None, T0);
        e.meta.producer_epoch = i16::MAX - 1;
        let InitStep::Write(t) = e
            .prepare_init(60_000, Some((7, i16::MAX - 1)), Some(8), T0)
            .unwrap()
        else {
            panic!("expected a write");
        };
        assert_eq!(t.last_producer_epoch, i16::MAX - 1);
        e.complete(t);
        assert_eq!(init(&mut e, Some((7, i16::MAX - 1)), T0), (8, 0));
    }

    #[test]
    fn verification_reports_partitions_outside_the_transaction() {
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        init(&mut e, None, T0);
        add(&mut e, &[("a", 0)], T0);
        assert_eq!(
            e.verify_partitions(7, 0, &parts(&[("a", 0), ("a", 1)])),
            Ok(vec![Ok(()), Err(ResponseError::TransactionAbortable)])
        );
        assert_eq!(
            e.verify_partitions(7, 1, &parts(&[("a", 0)])),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            e.verify_partitions(6, 0, &parts(&[("a", 0)])),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        end(&mut e, false, T0);
        assert_eq!(
            e.verify_partitions(7, 0, &parts(&[("a", 0)])),
            Err(ResponseError::ConcurrentTransactions)
        );
    }

    #[test]
    fn timeouts_and_expiry_follow_the_clock() {
        let mut e = TxnEntry::new("t", 7, 1_000, T0);
        init(&mut e, None, T0);
        assert!(!e.timed_out(T0 + 5_000), "no transaction, no timeout");
        assert!(e.expired(T0 + 10_000, 10_000));
        assert!(!e.expired(T0 + 9_999, 10_000));
        add(&mut e, &[("a", 0)], T0 + 100);
        assert!(!e.timed_out(T0 + 1_100));
        assert!(e.timed_out(T0 + 1_101));
        assert!(
            !e.expired(T0 + 100_000, 10_000),
            "an open transaction never expires"
        );
        // The coordinator's own abort: fence, then abort with the fencing epoch.
        let epoch = e.prepare_fence_producer_epoch().unwrap();
        let EndStep::Write(t) = e
            .prepare_end(7, epoch, false, false, false, None, T0 + 1_200)
            .unwrap()
        else {
            panic!("expected a write");
        };
        assert!(!e.timed_out(T0 + 5_000), "pending: not again");
        e.complete(t);
        finish(&mut e, T0 + 1_300);
        assert_eq!(e.meta.producer_epoch, 1);
        let dead = e.prepare_dead().unwrap();
        assert_eq!(dead.state, TxnState::Dead);
    }

    #[test]
    fn transactions_v2_bump_the_epoch_at_every_end_and_recognise_retries() {
        let mut e = TxnEntry::new("t", 7, 60_000, T0);
        init(&mut e, None, T0);
        add(&mut e, &[("a", 0)], T0);
        let EndStep::Write(t) = e.prepare_end(7, 0, true, true, true, None, T0).unwrap() else {
            panic!("expected a write");
        };
        assert_eq!((t.producer_epoch, t.last_producer_epoch), (1, 0));
        assert_eq!(e.answer_after_prepare(&t), (7, 1));
        e.complete(t);
        // A retry with the old epoch while the markers are written: CONCURRENT_TRANSACTIONS.
        assert_eq!(
            e.prepare_end(7, 0, true, true, true, None, T0),
            Err(ResponseError::ConcurrentTransactions)
        );
        finish(&mut e, T0);
        assert_eq!(e.meta.producer_epoch, 1);
        assert_eq!(
            e.prepare_end(7, 0, true, true, true, None, T0),
            Ok(EndStep::AlreadyDone {
                producer_id: 7,
                producer_epoch: 1
            })
        );
        // V2 may abort with nothing added; commit there is invalid.
        assert_eq!(
            e.prepare_end(7, 1, true, true, true, None, T0),
            Err(ResponseError::InvalidTxnState)
        );
        let EndStep::Write(t) = e
            .prepare_end(7, 1, false, true, true, None, T0 + 5)
            .unwrap()
        else {
            panic!("expected a write");
        };
        assert_eq!(t.start_ms, T0 + 5);
        e.complete(t);
        finish(&mut e, T0 + 6);
        assert_eq!(e.meta.producer_epoch, 2);
        // An exhausted epoch moves to the next producer id at completion.
        e.meta.producer_epoch = i16::MAX - 1;
        add(&mut e, &[("a", 0)], T0);
        assert_eq!(
            e.prepare_end(7, i16::MAX - 1, true, true, true, None, T0),
            Ok(EndStep::NeedProducerId)
        );
        let EndStep::Write(t) = e
            .prepare_end(7, i16::MAX - 1, true, true, true, Some(9), T0)
            .unwrap()
        else {
            panic!("expected a write");
        };
        assert_eq!(e.answer_after_prepare(&t), (9, 0));
        e.complete(t);
        finish(&mut e, T0);
        assert_eq!((e.meta.producer_id, e.meta.producer_epoch), (9, 0));
        assert_eq!(e.meta.prev_producer_id, 7);
    }

    #[test]
    fn states_have_kafkas_names() {
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_name("Bogus"), None);
    }
}
