//! The transaction coordinator (Kafka's `TransactionCoordinator` and
//! `TransactionStateManager`): every transactional id of the `__transaction_state`
//! partitions led here, the requests on them, their timers, and their durable state.
//!
//! - Placement: id → partition `abs(javaHash(id)) % N` of `__transaction_state`; the
//!   coordinator is that partition's leader and the coordinator epoch is its leader epoch.
//!   A partition led here is loaded from its log on gaining leadership (until then
//!   COORDINATOR_LOAD_IN_PROGRESS) and forgotten on losing it (NOT_COORDINATOR); after a
//!   load, every transaction found in PrepareCommit / PrepareAbort gets its markers again.
//! - Every change is persisted before it takes effect: the state machine
//!   ([`super::state`]) prepares a target, the target is appended as leader and waited for
//!   until committed (acks=all), then applied. A write made in an older coordinator epoch
//!   is never applied.
//! - Ending a transaction: PrepareCommit / PrepareAbort persisted → the client answered →
//!   the markers written through [`MarkerSender::send`] → CompleteCommit / CompleteAbort
//!   persisted (retried while this broker stays coordinator in the same epoch).
//!
//! Locking: one std mutex over all loaded partitions, held only for synchronous state
//! changes, never across a write or a wait. A pending transition in an entry keeps other
//! requests for that id out (CONCURRENT_TRANSACTIONS) while its write is in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::runtime::Handle;

use super::log;
use super::markers::{MarkerSender, TxnMarker};
use super::state::{EndStep, InitStep, Transit, TxnEntry, TxnMetadata, TxnState};
use super::TRANSACTION_STATE_TOPIC;
use crate::broker::producer_ids::ProducerIdManager;
use crate::clock::now_ms;
use crate::cluster::Metadata;
use crate::config::topic::TopicSettings;
use crate::config::Config;
use crate::group::offsets::partition_for;
use crate::log::control::ControlType;
use crate::metadata::BrokerInfo;
use crate::replication::PartitionRegistry;

/// How long a write of transaction state may take to be replicated (Kafka waits
/// `request.timeout.ms`, 30 s).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before writing a Complete* again after a retriable failure.
const COMPLETE_RETRY: Duration = Duration::from_millis(200);

/// One loaded `__transaction_state` partition.
struct Shard {
    /// The coordinator epoch: the partition's leader epoch when it was loaded.
    epoch: i32,
    loading: bool,
    txns: HashMap<String, TxnEntry>,
}

/// A transactional id as DescribeTransactions and ListTransactions report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub meta: TxnMetadata,
}

/// The filters of ListTransactions.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Empty: every state.
    pub states: Vec<TxnState>,
    /// Empty: every producer id.
    pub producer_ids: Vec<i64>,
    /// Only transactions running longer than this (ms); negative: no filter.
    pub min_duration_ms: i64,
    /// Only ids this regular expression matches (the whole id).
    pub pattern: Option<regex::Regex>,
}

/// Every transactional id coordinated here.
pub struct TransactionCoordinator {
    config: Arc<Config>,
    metadata: Metadata,
    partitions: Arc<PartitionRegistry>,
    producer_ids: Arc<ProducerIdManager>,
    markers: Arc<MarkerSender>,
    runtime: Handle,
    shards: Mutex<HashMap<i32, Shard>>,
}

impl TransactionCoordinator {
    /// A coordinator with nothing loaded; call from within the runtime (its tasks run there).
    pub fn new(
        config: Arc<Config>,
        metadata: Metadata,
        partitions: Arc<PartitionRegistry>,
        producer_ids: Arc<ProducerIdManager>,
        markers: Arc<MarkerSender>,
    ) -> TransactionCoordinator {
        TransactionCoordinator {
            config,
            metadata,
            partitions,
            producer_ids,
            markers,
            runtime: Handle::current(),
            shards: Mutex::default(),
        }
    }

    fn shards(&self) -> MutexGuard<'_, HashMap<i32, Shard>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Partitions of `__transaction_state`: the topic's, or the configured count before it
    /// exists.
    fn state_partitions(&self) -> i32 {
        self.metadata
            .image()
            .topics
            .get(TRANSACTION_STATE_TOPIC)
            .map_or(self.config.transactions.state_partitions, |t| {
                t.partitions.len() as i32
            })
    }

    /// The `__transaction_state` partition that stores (and coordinates) `transactional_id`.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.state_partitions())
    }

    /// The broker coordinating `transactional_id`: the leader of its partition of
    /// `__transaction_state` (COORDINATOR_NOT_AVAILABLE until the topic exists and the
    /// partition has a live leader).
    pub fn coordinator_for(&self, transactional_id: &str) -> Result<BrokerInfo, ResponseError> {
        let image = self.metadata.image();
        let topic = image
            .topics
            .get(TRANSACTION_STATE_TOPIC)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let p = partition_for(transactional_id, topic.partitions.len() as i32);
        let leader = topic
            .partitions
            .get(p as usize)
            .map(|p| p.leader)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        image
            .brokers
            .get(&leader)
            .filter(|b| !b.fenced)
            .cloned()
            .ok_or(ResponseError::CoordinatorNotAvailable)
    }

    /// The topic's min.insync.replicas, which every write of transaction state must meet.
    fn min_insync_replicas(&self) -> i32 {
        let image = self.metadata.image();
        image.topics.get(TRANSACTION_STATE_TOPIC).map_or(1, |t| {
            TopicSettings::resolve(&self.config, &t.configs).min_insync_replicas
        })
    }

    /// Runs `f` on the loaded partition of `transactional_id`: NOT_COORDINATOR when it is not
    /// led here, COORDINATOR_LOAD_IN_PROGRESS while it loads. Also returns the partition and
    /// the coordinator epoch.
    fn with_shard<R>(
        &self,
        transactional_id: &str,
        f: impl FnOnce(&mut Shard) -> R,
    ) -> Result<(i32, i32, R), ResponseError> {
        let partition = self.partition_for(transactional_id);
        let mut shards = self.shards();
        let shard = shards
            .get_mut(&partition)
            .ok_or(ResponseError::NotCoordinator)?;
        if shard.loading {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let epoch = shard.epoch;
        Ok((partition, epoch, f(shard)))
    }

    /// The coordinator epoch of `partition` while it is loaded here.
    fn epoch_of(&self, partition: i32) -> Option<i32> {
        self.shards()
            .get(&partition)
            .filter(|s| !s.loading)
            .map(|s| s.epoch)
    }

    /// Appends `transit` for `transactional_id` (a tombstone for Dead) and waits for its
    /// commit, in coordinator epoch `epoch`.
    async fn persist(
        &self,
        partition: i32,
        epoch: i32,
        transactional_id: &str,
        transit: &Transit,
    ) -> Result<(), ResponseError> {
        if self.epoch_of(partition) != Some(epoch) {
            return Err(ResponseError::NotCoordinator);
        }
        let hosted = self
            .partitions
            .get(TRANSACTION_STATE_TOPIC, partition)
            .ok_or(ResponseError::NotCoordinator)?;
        let value = (transit.state != TxnState::Dead).then_some(transit);
        let written = log::write(
            &hosted,
            transactional_id,
            value,
            self.min_insync_replicas(),
            now_ms(),
        )?;
        if written.leader_epoch() != epoch {
            return Err(ResponseError::NotCoordinator);
        }
        written
            .committed(WRITE_TIMEOUT)
            .await
            .map_err(log::coordinator_error)
    }

    /// Applies the outcome of persisting `transit`: completes the transition, or drops it
    /// when the write failed. NOT_COORDINATOR when the partition was unloaded or reloaded
    /// meanwhile (the write belongs to an old coordinator epoch).
    fn settle(
        &self,
        partition: i32,
        epoch: i32,
        transactional_id: &str,
        written: Result<(), ResponseError>,
        transit: Transit,
    ) -> Result<(), ResponseError> {
        let mut shards = self.shards();
        let shard = shards
            .get_mut(&partition)
            .filter(|s| s.epoch == epoch && !s.loading)
            .ok_or(ResponseError::NotCoordinator)?;
        let dead = transit.state == TxnState::Dead;
        let Some(entry) = shard.txns.get_mut(transactional_id) else {
            return Err(ResponseError::NotCoordinator);
        };
        match written {
            Ok(()) if dead => {
                shard.txns.remove(transactional_id);
                Ok(())
            }
            Ok(()) => {
                entry.complete(transit);
                Ok(())
            }
            Err(e) => {
                entry.abandon();
                Err(e)
            }
        }
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use. An ongoing
    /// transaction of the id is aborted first and the answer is CONCURRENT_TRANSACTIONS (the
    /// client retries); `expected` is the producer id and epoch the client sent (v3+).
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let max = self.config.transactions.max_timeout.as_millis();
        if timeout_ms <= 0 || timeout_ms as u128 > max {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        // A new id, or one whose epochs ran out, needs a new producer id: allocated outside
        // the lock (it may go through the metadata log), then the step is tried again.
        let mut new_pid = None;
        let (partition, epoch, step) = loop {
            let (partition, epoch, step) = self.with_shard(transactional_id, |shard| {
                let now = now_ms();
                if !shard.txns.contains_key(transactional_id) {
                    let Some(pid) = new_pid else {
                        return Ok(InitStep::NeedProducerId);
                    };
                    shard.txns.insert(
                        transactional_id.to_string(),
                        TxnEntry::new(transactional_id, pid, timeout_ms, now),
                    );
                    new_pid = None;
                }
                let entry = shard
                    .txns
                    .get_mut(transactional_id)
                    .ok_or(ResponseError::UnknownServerError)?;
                entry.prepare_init(timeout_ms, expected, new_pid, now)
            })?;
            match step? {
                InitStep::NeedProducerId => {
                    new_pid = Some(self.producer_ids.next_id(&self.metadata).await.map_err(
                        |e| {
                            tracing::error!(error = %e, "cannot allocate a producer id");
                            ResponseError::CoordinatorLoadInProgress
                        },
                    )?);
                }
                step => break (partition, epoch, step),
            }
        };
        match step {
            InitStep::Write(transit) => {
                let answer = (transit.producer_id, transit.producer_epoch);
                let written = self
                    .persist(partition, epoch, transactional_id, &transit)
                    .await;
                self.settle(partition, epoch, transactional_id, written, transit)?;
                tracing::info!(
                    transactional_id,
                    producer_id = answer.0,
                    producer_epoch = answer.1,
                    partition,
                    "initialized a transactional producer"
                );
                Ok(answer)
            }
            InitStep::FenceAndAbort(transit) => {
                tracing::info!(
                    transactional_id,
                    producer_id = transit.producer_id,
                    fencing_epoch = transit.producer_epoch,
                    "InitProducerId fences the producer of an ongoing transaction and aborts it"
                );
                self.end_with(partition, epoch, transactional_id, transit)
                    .await?;
                Err(ResponseError::ConcurrentTransactions)
            }
            InitStep::NeedProducerId => Err(ResponseError::UnknownServerError),
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's `__consumer_offsets`
    /// partition): adds `partitions` to the producer's transaction, starting it if needed.
    pub async fn add_partitions(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let (partition, epoch, step) = self.with_shard(transactional_id, |shard| {
            shard
                .txns
                .get_mut(transactional_id)
                .ok_or(ResponseError::InvalidProducerIdMapping)?
                .prepare_add_partitions(producer_id, producer_epoch, partitions, now_ms())
        })?;
        let Some(transit) = step? else {
            return Ok(());
        };
        let written = self
            .persist(partition, epoch, transactional_id, &transit)
            .await;
        self.settle(partition, epoch, transactional_id, written, transit)
    }

    /// KIP-890 verification (AddPartitionsToTxn v4+ with `verify_only`, or a local call
    /// from the produce path): for each of `partitions`, in order, `Ok` when it is in the
    /// ongoing transaction of this producer id and epoch, TRANSACTION_ABORTABLE when it is
    /// not; an error about the id itself (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
    /// INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS,
    /// INVALID_REQUEST for an empty id) is given for every partition. Changes nothing.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Vec<Result<(), ResponseError>> {
        let verified = if transactional_id.is_empty() {
            Err(ResponseError::InvalidRequest)
        } else {
            self.with_shard(transactional_id, |shard| {
                shard
                    .txns
                    .get(transactional_id)
                    .ok_or(ResponseError::InvalidProducerIdMapping)?
                    .verify_partitions(producer_id, producer_epoch, partitions)
            })
            .and_then(|(_, _, r)| r)
        };
        match verified {
            Ok(each) => each,
            Err(e) => vec![Err(e); partitions.len()],
        }
    }

    /// EndTxn: commits or aborts the producer's transaction; answers once the decision is
    /// persisted (the markers follow). `tv2` is Transactions V2 (EndTxn v5+): the epoch is
    /// bumped and the producer id and epoch to continue with are returned.
    pub async fn end_txn(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        tv2: bool,
    ) -> Result<(i64, i16), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let mut new_pid = None;
        let (partition, epoch, transit) = loop {
            let (partition, epoch, step) = self.with_shard(transactional_id, |shard| {
                shard
                    .txns
                    .get_mut(transactional_id)
                    .ok_or(ResponseError::InvalidProducerIdMapping)?
                    .prepare_end(
                        producer_id,
                        producer_epoch,
                        commit,
                        true,
                        tv2,
                        new_pid,
                        now_ms(),
                    )
            })?;
            match step? {
                EndStep::AlreadyDone {
                    producer_id,
                    producer_epoch,
                } => return Ok((producer_id, producer_epoch)),
                EndStep::NeedProducerId => {
                    new_pid = Some(self.producer_ids.next_id(&self.metadata).await.map_err(
                        |e| {
                            tracing::error!(error = %e, "cannot allocate a producer id");
                            ResponseError::CoordinatorNotAvailable
                        },
                    )?);
                }
                EndStep::Write(transit) => break (partition, epoch, transit),
            }
        };
        let answer = if transit.tv2 && transit.next_producer_id >= 0 {
            (transit.next_producer_id, 0)
        } else {
            (transit.producer_id, transit.producer_epoch)
        };
        self.end_with(partition, epoch, transactional_id, transit)
            .await?;
        Ok(answer)
    }

    /// Persists a PrepareCommit / PrepareAbort, then starts writing its markers (in a task
    /// of its own) and returns.
    async fn end_with(
        self: &Arc<Self>,
        partition: i32,
        epoch: i32,
        transactional_id: &str,
        transit: Transit,
    ) -> Result<(), ResponseError> {
        let written = self
            .persist(partition, epoch, transactional_id, &transit)
            .await;
        self.settle(partition, epoch, transactional_id, written, transit)?;
        self.start_completion(partition, epoch, transactional_id);
        Ok(())
    }

    /// For an id in PrepareCommit / PrepareAbort: prepares its Complete* and spawns the task
    /// that writes the markers and then persists it.
    fn start_completion(self: &Arc<Self>, partition: i32, epoch: i32, transactional_id: &str) {
        let prepared = {
            let mut shards = self.shards();
            let Some(entry) = shards
                .get_mut(&partition)
                .filter(|s| s.epoch == epoch)
                .and_then(|s| s.txns.get_mut(transactional_id))
            else {
                return;
            };
            let m = &entry.meta;
            let marker = TxnMarker {
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                coordinator_epoch: epoch,
                control: if m.state == TxnState::PrepareCommit {
                    ControlType::Commit
                } else {
                    ControlType::Abort
                },
                partitions: m.partitions.iter().cloned().collect(),
            };
            match entry.prepare_complete(now_ms()) {
                Ok(transit) => (marker, transit),
                Err(e) => {
                    tracing::error!(transactional_id, error = %e, "cannot complete a transaction");
                    return;
                }
            }
        };
        let me = self.clone();
        let id = transactional_id.to_string();
        self.runtime.spawn(async move {
            me.complete(partition, epoch, &id, prepared.0, prepared.1)
                .await
        });
    }

    /// Writes the markers of `marker`, then persists `transit` (the Complete*), retrying the
    /// write while this broker stays coordinator in `epoch`.
    async fn complete(
        self: Arc<Self>,
        partition: i32,
        epoch: i32,
        transactional_id: &str,
        marker: TxnMarker,
        transit: Transit,
    ) {
        let still = || self.epoch_of(partition) == Some(epoch);
        if !self.markers.send(&marker, still).await {
            tracing::info!(
                transactional_id,
                partition,
                "stopped writing transaction markers: no longer the coordinator"
            );
            return;
        }
        loop {
            let written = self
                .persist(partition, epoch, transactional_id, &transit)
                .await;
            match written {
                Ok(()) => {
                    if let Err(e) = self.settle(partition, epoch, transactional_id, Ok(()), transit)
                    {
                        tracing::info!(transactional_id, error = %e, "a completed transaction belongs to a newer coordinator");
                    }
                    return;
                }
                Err(ResponseError::NotCoordinator) => return,
                Err(e) => {
                    if !still() {
                        return;
                    }
                    tracing::warn!(transactional_id, error = %e, "cannot persist a completed transaction yet; retrying");
                    tokio::time::sleep(COMPLETE_RETRY).await;
                }
            }
        }
    }

    /// What DescribeTransactions reports for `transactional_id`: TRANSACTIONAL_ID_NOT_FOUND
    /// when it is unknown here.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let (_, _, found) = self.with_shard(transactional_id, |shard| {
            shard
                .txns
                .get(transactional_id)
                .filter(|e| e.meta.state != TxnState::Dead)
                .map(|e| e.meta.clone())
        })?;
        found
            .map(|meta| TxnDescription {
                transactional_id: transactional_id.to_string(),
                meta,
            })
            .ok_or(ResponseError::TransactionalIdNotFound)
    }

    /// ListTransactions over the ids coordinated here; COORDINATOR_LOAD_IN_PROGRESS while a
    /// partition loads.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<TxnDescription>, ResponseError> {
        let now = now_ms();
        let shards = self.shards();
        if shards.values().any(|s| s.loading) {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let mut out = Vec::new();
        for shard in shards.values() {
            for (id, e) in &shard.txns {
                let m = &e.meta;
                let include = m.state != TxnState::Dead
                    && (filter.producer_ids.is_empty()
                        || filter.producer_ids.contains(&m.producer_id))
                    && (filter.states.is_empty() || filter.states.contains(&m.state))
                    && (filter.min_duration_ms < 0 || now - m.start_ms > filter.min_duration_ms)
                    && filter.pattern.as_ref().is_none_or(|p| p.is_match(id));
                if include {
                    out.push(TxnDescription {
                        transactional_id: id.clone(),
                        meta: m.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// The periodic work (every `transaction_abort_timed_out_interval`): transactions open
    /// longer than their timeout are fenced and aborted; ids idle in Empty / Complete* for
    /// `transactional_id_expiration` are removed.
    pub fn tick(self: &Arc<Self>) {
        let now = now_ms();
        let expiration = self.config.transactions.id_expiration.as_millis() as i64;
        let mut aborts = Vec::new();
        let mut expired = Vec::new();
        {
            let mut shards = self.shards();
            for (&partition, shard) in shards.iter_mut() {
                if shard.loading {
                    continue;
                }
                for (id, entry) in shard.txns.iter_mut() {
                    if entry.timed_out(now) {
                        let pid = entry.meta.producer_id;
                        let step = entry.prepare_fence_producer_epoch().and_then(|epoch| {
                            entry.prepare_end(pid, epoch, false, false, false, None, now)
                        });
                        match step {
                            Ok(EndStep::Write(t)) => {
                                aborts.push((partition, shard.epoch, id.clone(), t))
                            }
                            other => {
                                entry.abandon();
                                tracing::warn!(transactional_id = %id, outcome = ?other, "cannot abort a timed-out transaction");
                            }
                        }
                    } else if entry.expired(now, expiration) {
                        if let Ok(t) = entry.prepare_dead() {
                            expired.push((partition, shard.epoch, id.clone(), t));
                        }
                    }
                }
            }
        }
        for (partition, epoch, id, transit) in aborts {
            tracing::info!(
                transactional_id = %id,
                producer_id = transit.producer_id,
                fencing_epoch = transit.producer_epoch,
                "aborting a transaction that ran longer than its timeout"
            );
            let me = self.clone();
            self.runtime.spawn(async move {
                if let Err(e) = me.end_with(partition, epoch, &id, transit).await {
                    tracing::warn!(transactional_id = %id, error = %e, "the abort of a timed-out transaction failed");
                }
            });
        }
        for (partition, epoch, id, transit) in expired {
            let me = self.clone();
            self.runtime.spawn(async move {
                let written = me.persist(partition, epoch, &id, &transit).await;
                match me.settle(partition, epoch, &id, written, transit) {
                    Ok(()) => tracing::info!(transactional_id = %id, "expired an idle transactional id"),
                    Err(e) => tracing::warn!(transactional_id = %id, error = %e, "cannot expire a transactional id"),
                }
            });
        }
    }

    /// This broker now leads `__transaction_state` partition `index` in leader epoch
    /// `epoch`: reads its ids from the log (blocking: call it on a blocking thread), serves
    /// them, and finishes every transaction found in PrepareCommit / PrepareAbort.
    pub fn load_partition(self: &Arc<Self>, index: i32, epoch: i32) {
        self.shards().insert(
            index,
            Shard {
                epoch,
                loading: true,
                txns: HashMap::new(),
            },
        );
        let loaded = log::load(&self.partitions, index);
        let mut unfinished = Vec::new();
        {
            let mut shards = self.shards();
            let Some(shard) = shards.get_mut(&index).filter(|s| s.epoch == epoch) else {
                return; // unloaded or reloaded meanwhile
            };
            for (id, meta) in loaded.txns {
                if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                    unfinished.push(id.clone());
                }
                let entry = TxnEntry::loaded(&id, meta);
                shard.txns.insert(id, entry);
            }
            shard.loading = false;
        }
        tracing::info!(
            partition = index,
            coordinator_epoch = epoch,
            records = loaded.records,
            unfinished = unfinished.len(),
            "loaded transaction state"
        );
        for id in unfinished {
            self.start_completion(index, epoch, &id);
        }
    }

    /// This broker no longer leads `__transaction_state` partition `index`: forgets its ids
    /// (marker writes in flight for them stop).
    pub fn unload_partition(&self, index: i32) {
        if self.shards().remove(&index).is_some() {
            tracing::info!(partition = index, "unloaded transaction state");
        }
    }

    /// Forgets every loaded partition, so that no task of this coordinator writes again
    /// (broker shutdown, or a crash played in-process).
    pub fn stop(&self) {
        self.shards().clear();
    }
}
