//! The group coordinator: every consumer group this broker coordinates, their requests,
//! their timers, and their durable state in `__consumer_offsets`.
//!
//! Locking: the map of groups and each group are std mutexes, held only for synchronous
//! work (state changes and the append of their records); JoinGroup and SyncGroup wait on
//! oneshot channels after the locks are released. A group's records are written while its
//! lock is held, so they reach the log in the order its state changed. Lock order: the map,
//! then a group, then the index of open transactions; the loading state is taken alone.
//!
//! Transactions (TxnOffsetCommit): the offsets are written as one transactional batch of
//! the producer and kept pending in their group until the transaction coordinator writes
//! the transaction's marker into the group's `__consumer_offsets` partition and calls
//! [`GroupCoordinator::complete_txn`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use super::offsets::{self, Change, GroupRecord, OFFSETS_TOPIC};
use super::state::{CommittedOffset, Group, GroupState, JoinOutcome, JoinRequest, SyncOutcome};
use crate::cluster::Metadata;
use crate::config::GroupConfig;
use crate::metadata::BrokerInfo;
use crate::replication::PartitionRegistry;

/// Kafka's `offset.metadata.max.bytes`.
const MAX_OFFSET_METADATA: usize = 4096;

/// A described group, for DescribeGroups.
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// A TxnOffsetCommit, decoupled from the wire types.
#[derive(Debug, Clone)]
pub struct TxnOffsetCommit {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// KIP-447 consumer group metadata (v3+); empty / None / -1 when not sent.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub offsets: Vec<(String, i32, CommittedOffset)>,
}

/// Per-partition results of a commit: (topic, partition, error or None).
pub type CommitResults = Vec<(String, i32, Option<ResponseError>)>;

/// One partition of an OffsetFetch: its committed offset (None when nothing is committed)
/// or its error (UNSTABLE_OFFSET_COMMIT).
pub type FetchedPartition = (i32, Result<Option<CommittedOffset>, ResponseError>);

/// Which `__consumer_offsets` partitions are loaded, and the transaction completions that
/// arrived for a partition before its load finished (applied when it does).
#[derive(Default)]
struct Loading {
    loaded: HashSet<i32>,
    /// partition → (producer id, commit, log end offset when the completion arrived).
    deferred: HashMap<i32, Vec<(i64, bool, i64)>>,
}

/// Every group coordinated here.
pub struct GroupCoordinator {
    node_id: i32,
    config: GroupConfig,
    metadata: Metadata,
    /// Where `__consumer_offsets` partitions are hosted (read on load, written as leader).
    partitions: Arc<PartitionRegistry>,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    /// The `__consumer_offsets` partitions led here whose groups are loaded.
    loading: Mutex<Loading>,
    /// Producer id → the groups holding pending offsets of its open transaction (Kafka's
    /// `openGroupsForProducer`).
    open_txns: Mutex<HashMap<i64, HashSet<String>>>,
}

fn lock(group: &Arc<Mutex<Group>>) -> MutexGuard<'_, Group> {
    group.lock().unwrap_or_else(|p| p.into_inner())
}

impl GroupCoordinator {
    pub fn new(
        node_id: i32,
        config: GroupConfig,
        metadata: Metadata,
        partitions: Arc<PartitionRegistry>,
    ) -> GroupCoordinator {
        GroupCoordinator {
            node_id,
            config,
            metadata,
            partitions,
            groups: Mutex::default(),
            loading: Mutex::default(),
            open_txns: Mutex::default(),
        }
    }

    fn loading(&self) -> MutexGuard<'_, Loading> {
        self.loading.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_txns(&self) -> MutexGuard<'_, HashMap<i64, HashSet<String>>> {
        self.open_txns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Mutex<Group>>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.map().get(id).cloned()
    }

    fn get_or_create(&self, id: &str) -> Arc<Mutex<Group>> {
        self.map()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(id))))
            .clone()
    }

    fn offsets_partitions(&self) -> i32 {
        self.metadata
            .image()
            .topics
            .get(OFFSETS_TOPIC)
            .map_or(1, |t| t.partitions.len() as i32)
    }

    /// Loads the groups of every `__consumer_offsets` partition led here (on start, before
    /// serving).
    pub fn load(&self) {
        for p in self.partitions.all() {
            if p.topic == OFFSETS_TOPIC && p.is_leader() {
                self.load_partition(p.index);
            }
        }
    }

    /// This broker now leads `__consumer_offsets` partition `index`: rebuilds its groups from
    /// the log (replicated from the previous coordinator), replacing anything held for them,
    /// with the offsets of transactions still open pending.
    pub fn load_partition(&self, index: i32) {
        let n = self.offsets_partitions();
        self.loading().loaded.remove(&index);
        let loaded = offsets::load(&self.partitions, index);
        let mut map = self.map();
        map.retain(|id, _| offsets::partition_for(id, n) != index);
        for (id, record) in &loaded.groups {
            let mut g = Group::new(id);
            g.generation = record.generation;
            g.protocol_type = record.protocol_type.clone();
            map.insert(id.clone(), Arc::new(Mutex::new(g)));
        }
        for (id, offsets) in loaded.offsets {
            if offsets.is_empty() {
                continue;
            }
            let g = map
                .entry(id.clone())
                .or_insert_with(|| Arc::new(Mutex::new(Group::new(&id))))
                .clone();
            lock(&g).offsets = offsets;
        }
        {
            let mut open = self.open_txns();
            for groups in open.values_mut() {
                groups.retain(|id| offsets::partition_for(id, n) != index);
            }
            open.retain(|_, groups| !groups.is_empty());
            for (pid, groups) in &loaded.open_transactions {
                open.entry(*pid).or_default().extend(groups.iter().cloned());
            }
        }
        drop(map);
        let deferred = {
            let mut loading = self.loading();
            loading.loaded.insert(index);
            loading.deferred.remove(&index).unwrap_or_default()
        };
        for (producer_id, commit, before) in deferred {
            self.apply_completion(index, producer_id, commit, before);
        }
        if loaded.records > 0 {
            tracing::info!(
                partition = index,
                groups = loaded.groups.len(),
                records = loaded.records,
                open_transactions = loaded.open_transactions.len(),
                "loaded consumer groups"
            );
        }
    }

    /// This broker no longer leads `__consumer_offsets` partition `index`: forgets its
    /// groups (their members rejoin at the new coordinator, which also takes over their
    /// pending transactional offsets).
    pub fn unload_partition(&self, index: i32) {
        let n = self.offsets_partitions();
        {
            let mut loading = self.loading();
            loading.loaded.remove(&index);
            loading.deferred.remove(&index);
        }
        self.map()
            .retain(|id, _| offsets::partition_for(id, n) != index);
        let mut open = self.open_txns();
        for groups in open.values_mut() {
            groups.retain(|id| offsets::partition_for(id, n) != index);
        }
        open.retain(|_, groups| !groups.is_empty());
    }

    /// The broker coordinating `group`: the leader of its `__consumer_offsets` partition.
    pub fn coordinator_for(&self, group: &str) -> Result<BrokerInfo, ResponseError> {
        // FindCoordinator creates the topic; until then there is no coordinator.
        let image = self.metadata.image();
        let topic = image
            .topics
            .get(OFFSETS_TOPIC)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let p = offsets::partition_for(group, topic.partitions.len() as i32);
        let leader = topic
            .partitions
            .get(p as usize)
            .map(|p| p.leader)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        image
            .brokers
            .get(&leader)
            .cloned()
            .ok_or(ResponseError::CoordinatorNotAvailable)
    }

    /// NOT_COORDINATOR unless this broker coordinates `group`; the partition storing it.
    fn check_coordinator(&self, group: &str) -> Result<i32, ResponseError> {
        if group.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let coordinator = self.coordinator_for(group)?;
        if coordinator.id != self.node_id {
            return Err(ResponseError::NotCoordinator);
        }
        let n = self
            .metadata
            .image()
            .topics
            .get(OFFSETS_TOPIC)
            .map_or(1, |t| t.partitions.len() as i32);
        let p = offsets::partition_for(group, n);
        if !self.loading().loaded.contains(&p) {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(p)
    }

    fn persist_group(&self, partition: i32, g: &Group) {
        let change = Change::Group {
            group: g.id.clone(),
            value: Some(GroupRecord {
                protocol_type: g.protocol_type.clone(),
                generation: g.generation,
            }),
        };
        if let Err(e) = offsets::write(&self.partitions, partition, &[change]) {
            tracing::error!(group = %g.id, error = %e, "cannot persist group metadata");
        }
    }

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinOutcome {
        let partition = match self.check_coordinator(group_id) {
            Ok(p) => p,
            Err(e) => return JoinOutcome::error(e, &req.member_id),
        };
        let limits = &self.config;
        if req.session_timeout < limits.min_session_timeout
            || req.session_timeout > limits.max_session_timeout
        {
            return JoinOutcome::error(ResponseError::InvalidSessionTimeout, &req.member_id);
        }
        let group = self.get_or_create(group_id);
        let rx = {
            let mut g = lock(&group);
            let (rx, effects) = g.join(req, Instant::now(), limits.initial_rebalance_delay);
            if effects.persist_group {
                self.persist_group(partition, &g);
            }
            rx
        };
        rx.await
            .unwrap_or_else(|_| JoinOutcome::error(ResponseError::UnknownMemberId, ""))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        if let Err(e) = self.check_coordinator(group_id) {
            return SyncOutcome::error(e);
        }
        let Some(group) = self.get(group_id) else {
            return SyncOutcome::error(ResponseError::UnknownMemberId);
        };
        let rx = {
            let mut g = lock(&group);
            g.sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
            )
            .0
        };
        rx.await
            .unwrap_or_else(|_| SyncOutcome::error(ResponseError::RebalanceInProgress))
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        self.check_coordinator(group_id)?;
        let group = self.get(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let mut g = lock(&group);
        g.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    /// Removes members; one result per (member id, instance id).
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let partition = self.check_coordinator(group_id)?;
        let group = self.get(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let mut g = lock(&group);
        let now = Instant::now();
        let results = members
            .iter()
            .map(|(member, instance)| g.leave(member, instance.as_deref(), now))
            .collect();
        let mut effects = super::state::Effects::default();
        g.maybe_complete_join(now, &mut effects);
        if effects.persist_group {
            self.persist_group(partition, &g);
        }
        Ok(results)
    }

    /// Commits offsets; per-partition error codes (None = committed).
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(CommitResults, Option<offsets::Written>), ResponseError> {
        let partition = self.check_coordinator(group_id)?;
        let group = if generation < 0 && member_id.is_empty() {
            self.get_or_create(group_id)
        } else {
            self.get(group_id).ok_or(ResponseError::UnknownMemberId)?
        };
        let mut g = lock(&group);
        g.validate_commit(member_id, instance_id, generation)?;
        let (results, changes, accepted) = self.check_offsets(group_id, offsets);
        let written = match offsets::write(&self.partitions, partition, &changes) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(group = group_id, error = %e, "offset commit failed");
                return Err(ResponseError::NotCoordinator);
            }
        };
        if let Some(w) = &written {
            for (i, (key, offset)) in accepted.into_iter().enumerate() {
                g.offsets.commit(key, offset, w.base_offset + i as i64);
            }
        }
        Ok((results, written))
    }

    /// Sorts the offsets of a commit into per-partition results, the records to write for
    /// the accepted ones, and those (in the same order as their records).
    #[allow(clippy::type_complexity)]
    fn check_offsets(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> (
        CommitResults,
        Vec<Change>,
        Vec<((String, i32), CommittedOffset)>,
    ) {
        let image = self.metadata.image();
        let mut results = Vec::with_capacity(offsets.len());
        let mut changes = Vec::new();
        let mut accepted = Vec::new();
        for (topic, p, offset) in offsets {
            let known = image
                .topics
                .get(&topic)
                .is_some_and(|t| p >= 0 && (p as usize) < t.partitions.len());
            let error = if !known {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if offset.metadata.len() > MAX_OFFSET_METADATA {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                changes.push(Change::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: p,
                    value: Some(offset.clone()),
                });
                accepted.push(((topic.clone(), p), offset));
                None
            };
            results.push((topic, p, error));
        }
        (results, changes, accepted)
    }

    /// Commits offsets in producer `producer_id`'s transaction (TxnOffsetCommit): checks
    /// the coordinator and, when given, the member (KIP-447), writes the accepted offsets as
    /// one transactional batch of the producer, and keeps them pending until the
    /// transaction's marker ([`GroupCoordinator::complete_txn`]). Per-partition errors
    /// (None = written); the caller waits for the write's replication before answering.
    pub fn txn_offset_commit(
        &self,
        request: TxnOffsetCommit,
    ) -> Result<(CommitResults, Option<offsets::Written>), ResponseError> {
        let group_id = request.group_id.as_str();
        let partition = self.check_coordinator(group_id)?;
        let group = match self.get(group_id) {
            Some(g) => g,
            // A producer committing for a group unknown here (no membership): Kafka creates a
            // simple group; naming a generation of a group that does not exist is stale.
            None if request.generation < 0 => self.get_or_create(group_id),
            None => return Err(ResponseError::IllegalGeneration),
        };
        let mut g = lock(&group);
        g.validate_txn_commit(
            &request.member_id,
            request.instance_id.as_deref(),
            request.generation,
        )?;
        let (results, changes, accepted) = self.check_offsets(group_id, request.offsets);
        let written = offsets::write_transactional(
            &self.partitions,
            partition,
            request.producer_id,
            request.producer_epoch,
            &changes,
        )
        .map_err(|e| {
            tracing::warn!(group = group_id, producer_id = request.producer_id, error = %e, "transactional offset commit failed");
            e.commit_error()
        })?;
        if let Some(w) = &written {
            for (i, (key, offset)) in accepted.into_iter().enumerate() {
                g.offsets
                    .stage(request.producer_id, key, offset, w.base_offset + i as i64);
            }
            self.open_txns()
                .entry(request.producer_id)
                .or_default()
                .insert(group_id.to_string());
        }
        Ok((results, written))
    }

    /// Committed offsets: the requested partitions (None when nothing is committed), or
    /// every committed partition when `wanted` is None. With `require_stable` (OffsetFetch
    /// v7+), a partition with a pending transactional offset answers
    /// UNSTABLE_OFFSET_COMMIT (the consumer retries until the transaction ends); without
    /// it, the committed offset is answered as if the transaction did not exist.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Result<Vec<(String, Vec<FetchedPartition>)>, ResponseError> {
        self.check_coordinator(group_id)?;
        let group = self.get(group_id);
        let g = group.as_ref().map(lock);
        let offsets = g.as_ref().map(|g| &g.offsets);
        let answer = |key: &(String, i32)| -> Result<Option<CommittedOffset>, ResponseError> {
            let Some(offsets) = offsets else {
                return Ok(None);
            };
            if require_stable && offsets.is_pending(key) {
                return Err(ResponseError::UnstableOffsetCommit);
            }
            Ok(offsets.get(key).cloned())
        };
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| (p, answer(&(t.clone(), p))))
                        .collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<FetchedPartition>> = BTreeMap::new();
                for (key, _) in offsets.into_iter().flat_map(|o| o.committed()) {
                    by_topic
                        .entry(key.0.clone())
                        .or_default()
                        .push((key.1, answer(key)));
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// (group id, protocol type, state) of every group, filtered by state names.
    pub fn list(&self, states: &[String]) -> Vec<(String, String, GroupState)> {
        let groups: Vec<Arc<Mutex<Group>>> = self.map().values().cloned().collect();
        let mut out: Vec<(String, String, GroupState)> = groups
            .iter()
            .map(|g| {
                let g = lock(g);
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .filter(|(_, _, s)| *s != GroupState::Dead)
            .filter(|(_, _, s)| {
                states.is_empty() || states.iter().any(|x| x.eq_ignore_ascii_case(s.name()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, ResponseError> {
        self.check_coordinator(group_id)?;
        let Some(group) = self.get(group_id) else {
            return Ok(GroupDescription {
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            });
        };
        let g = lock(&group);
        let protocol = g.protocol.clone().unwrap_or_default();
        let stable = g.state == GroupState::Stable;
        Ok(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: g
                .members
                .values()
                .map(|m| {
                    let metadata = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    // Kafka shows metadata and assignments only for a Stable group.
                    let (metadata, assignment) = if stable {
                        (metadata, m.assignment.clone())
                    } else {
                        (Bytes::new(), Bytes::new())
                    };
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        metadata,
                        assignment,
                    )
                })
                .collect(),
        })
    }

    /// Deletes an empty group and its offsets.
    pub fn delete(&self, group_id: &str) -> Result<(), ResponseError> {
        let partition = self.check_coordinator(group_id)?;
        let group = self.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut g = lock(&group);
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound);
        }
        if !g.is_empty() {
            return Err(ResponseError::NonEmptyGroup);
        }
        // Pending transactional offsets go too (Kafka writes a tombstone for each
        // partition that has only a pending one); a later marker finds nothing to complete.
        let mut changes: Vec<Change> = g
            .offsets
            .keys()
            .into_iter()
            .map(|(t, p)| Change::Offset {
                group: group_id.to_string(),
                topic: t.clone(),
                partition: p,
                value: None,
            })
            .collect();
        changes.push(Change::Group {
            group: group_id.to_string(),
            value: None,
        });
        offsets::write(&self.partitions, partition, &changes)
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        g.state = GroupState::Dead;
        g.offsets.clear();
        drop(g);
        self.map().remove(group_id);
        Ok(())
    }

    /// Deletes committed offsets of some partitions (OffsetDelete).
    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<Vec<(String, Vec<(i32, Option<ResponseError>)>)>, ResponseError> {
        let partition = self.check_coordinator(group_id)?;
        let group = self.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut g = lock(&group);
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound);
        }
        let subscribed = if g.is_empty() {
            Some(Vec::new())
        } else {
            g.subscribed_topics()
        };
        if subscribed.is_none() {
            // Members of a non-consumer protocol: Kafka refuses while the group is active.
            return Err(ResponseError::NonEmptyGroup);
        }
        let subscribed = subscribed.unwrap_or_default();
        let mut changes = Vec::new();
        let mut results = Vec::new();
        for (topic, parts) in topics {
            let is_subscribed = subscribed.contains(&topic);
            let mut out = Vec::new();
            for p in parts {
                if is_subscribed {
                    out.push((p, Some(ResponseError::GroupSubscribedToTopic)));
                } else {
                    // The committed offset and any pending transactional one.
                    if g.offsets.remove(&(topic.clone(), p)) {
                        changes.push(Change::Offset {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition: p,
                            value: None,
                        });
                    }
                    out.push((p, None));
                }
            }
            results.push((topic, out));
        }
        offsets::write(&self.partitions, partition, &changes)
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        Ok(results)
    }

    /// The marker that ends producer `producer_id`'s transaction was written to
    /// `__consumer_offsets` partition `partition`: its pending transactional offsets become
    /// committed (`commit`) or are dropped.
    ///
    /// Call it after the marker is appended: every pending offset of the producer below
    /// the partition's log end then belongs to the ended transaction. When the partition is
    /// still loading, the completion is applied once the load finishes (the load may have
    /// read the log before the marker arrived); a marker both loaded and reported is
    /// applied once.
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let Some(hosted) = self.partitions.get(OFFSETS_TOPIC, partition) else {
            return;
        };
        let before = hosted.log_reader().log_end_offset();
        {
            let mut loading = self.loading();
            if !loading.loaded.contains(&partition) {
                loading
                    .deferred
                    .entry(partition)
                    .or_default()
                    .push((producer_id, commit, before));
                return;
            }
        }
        self.apply_completion(partition, producer_id, commit, before);
    }

    /// Completes producer `producer_id`'s pending offsets written before log offset
    /// `before` in the groups of `partition`.
    fn apply_completion(&self, partition: i32, producer_id: i64, commit: bool, before: i64) {
        let n = self.offsets_partitions();
        let groups: Vec<String> = {
            let mut open = self.open_txns();
            let Some(all) = open.get_mut(&producer_id) else {
                return;
            };
            let here: Vec<String> = all
                .iter()
                .filter(|id| offsets::partition_for(id, n) == partition)
                .cloned()
                .collect();
            for id in &here {
                all.remove(id);
            }
            if all.is_empty() {
                open.remove(&producer_id);
            }
            here
        };
        for id in groups {
            let Some(group) = self.get(&id) else {
                continue;
            };
            let mut g = lock(&group);
            if g.offsets.complete(producer_id, commit, before) {
                tracing::debug!(group = %id, producer_id, commit, "transactional offsets completed");
            }
            if g.offsets.pending_producers().any(|p| p == producer_id) {
                self.open_txns().entry(producer_id).or_default().insert(id);
            }
        }
    }

    /// Expires sessions and completes joins whose time came. Called periodically.
    pub fn tick(&self) {
        let groups: Vec<Arc<Mutex<Group>>> = self.map().values().cloned().collect();
        let now = Instant::now();
        let n = self
            .metadata
            .image()
            .topics
            .get(OFFSETS_TOPIC)
            .map_or(1, |t| t.partitions.len() as i32);
        for group in groups {
            let mut g = lock(&group);
            let effects = g.tick(now);
            if effects.persist_group {
                let p = offsets::partition_for(&g.id, n);
                self.persist_group(p, &g);
            }
        }
    }
}
