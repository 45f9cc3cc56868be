//! One consumer group's state machine (Kafka's classic protocol), with no I/O.
//!
//! States and the transitions this module allows:
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!   ▲                  ▲        │ (no member left)                    │ leader's SyncGroup
//!   └──────────────────┼────────┘                                     ▼
//!                      └──── join / leave / expiry / new metadata ── Stable
//! any ──delete──▶ Dead
//! ```
//! Invariants: a member waits on at most one JoinGroup and one SyncGroup; the generation
//! only grows; the leader is a current member; the chosen protocol is one every member
//! supports. Waiters are answered through oneshot channels owned by the member, so the
//! caller never holds the group's lock while a request waits.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::offset_store::GroupOffsets;

/// The classic group states, named as Kafka reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup caller receives.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: (member id, group instance id, metadata).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup caller receives.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ResponseError) -> Self {
        SyncOutcome {
            error: Some(error),
            ..Default::default()
        }
    }
}

/// A member of the group.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// Protocols in the member's order of preference: (name, metadata).
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// Order of arrival, for choosing a leader deterministically.
    pub joined_seq: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }

    fn is_expired(&self, now: Instant) -> bool {
        now >= self.last_heartbeat + self.session_timeout
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// The parameters of a JoinGroup, decoupled from the wire types.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member first gets MEMBER_ID_REQUIRED and its new id.
    pub require_known_member_id: bool,
}

/// One consumer group.
#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they expire.
    pub pending: HashMap<String, Instant>,
    /// group.instance.id → member id of the static members.
    pub static_members: HashMap<String, String>,
    pub offsets: GroupOffsets,
    /// No join completes before this (Kafka's initial rebalance delay for a new group).
    pub join_not_before: Option<Instant>,
    /// Joins are forced to complete at this time (the largest rebalance timeout).
    pub rebalance_deadline: Option<Instant>,
    next_seq: u64,
}

/// What the caller must do after a state change: nothing, or persist the group record.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// The group's generation or protocol changed: write its metadata record.
    pub persist_group: bool,
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

impl Group {
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: GroupOffsets::default(),
            join_not_before: None,
            rebalance_deadline: None,
            next_seq: 0,
        }
    }

    /// Whether the group has no members (offsets may still exist).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether every member supports at least one protocol in common with `protocols`.
    fn protocols_compatible(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols
            .iter()
            .any(|(name, _)| self.members.values().all(|m| m.supports(name)))
    }

    /// Handles a JoinGroup. Returns the receiver the caller awaits for its answer, which
    /// may already hold the answer.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        initial_delay: Duration,
    ) -> (oneshot::Receiver<JoinOutcome>, Effects) {
        let (tx, rx) = oneshot::channel();
        let mut effects = Effects::default();
        if self.state == GroupState::Dead {
            let _ = tx.send(JoinOutcome::error(
                ResponseError::CoordinatorNotAvailable,
                &req.member_id,
            ));
            return (rx, effects);
        }
        if !self.protocols_compatible(&req.protocol_type, &req.protocols) {
            let _ = tx.send(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            ));
            return (rx, effects);
        }
        let member_id = if req.member_id.is_empty() {
            // A static member rejoining with a new process replaces its old member id; the
            // old one is fenced (FENCED_INSTANCE_ID on its next request).
            if let Some(instance) = &req.instance_id {
                if let Some(old_id) = self.static_members.get(instance).cloned() {
                    if let Some(mut old) = self.members.remove(&old_id) {
                        if let Some(w) = old.join_waiter.take() {
                            let _ = w
                                .send(JoinOutcome::error(ResponseError::FencedInstanceId, &old_id));
                        }
                        if let Some(w) = old.sync_waiter.take() {
                            let _ = w.send(SyncOutcome::error(ResponseError::FencedInstanceId));
                        }
                        if self.leader.as_deref() == Some(old_id.as_str()) {
                            self.leader = None;
                        }
                    }
                }
                let id = new_member_id(&req.client_id);
                self.static_members.insert(instance.clone(), id.clone());
                id
            } else if req.require_known_member_id {
                let id = new_member_id(&req.client_id);
                self.pending.insert(id.clone(), now + req.session_timeout);
                let _ = tx.send(JoinOutcome::error(ResponseError::MemberIdRequired, &id));
                return (rx, effects);
            } else {
                new_member_id(&req.client_id)
            }
        } else {
            let known = self.members.contains_key(&req.member_id);
            let pending = self.pending.remove(&req.member_id).is_some();
            if !known && !pending {
                let _ = tx.send(JoinOutcome::error(
                    ResponseError::UnknownMemberId,
                    &req.member_id,
                ));
                return (rx, effects);
            }
            if let (Some(instance), true) = (&req.instance_id, known) {
                if self.static_members.get(instance) != Some(&req.member_id) {
                    let _ = tx.send(JoinOutcome::error(
                        ResponseError::FencedInstanceId,
                        &req.member_id,
                    ));
                    return (rx, effects);
                }
            }
            req.member_id.clone()
        };

        let existing = self.members.get(&member_id);
        let metadata_changed = existing.is_none_or(|m| m.protocols != req.protocols);
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        let seq = existing.map_or_else(
            || {
                self.next_seq += 1;
                self.next_seq
            },
            |m| m.joined_seq,
        );
        let assignment = existing.map(|m| m.assignment.clone()).unwrap_or_default();
        let mut member = Member {
            id: member_id.clone(),
            instance_id: req.instance_id.clone(),
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols,
            assignment,
            last_heartbeat: now,
            join_waiter: None,
            sync_waiter: None,
            joined_seq: seq,
        };
        if let Some(old) = self.members.remove(&member_id) {
            member.sync_waiter = old.sync_waiter;
            if let Some(w) = old.join_waiter {
                // A second join from the same member supersedes the first.
                let _ = w.send(JoinOutcome::error(
                    ResponseError::UnknownMemberId,
                    &member_id,
                ));
            }
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type);
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance
                if !metadata_changed && !is_leader && self.generation > 0 =>
            {
                // A follower rejoining with the same metadata: answer with the current
                // generation, no rebalance (Kafka does the same).
                let outcome = self.outcome_for(&member_id, false);
                self.members.insert(member_id, member);
                let _ = tx.send(outcome);
                return (rx, effects);
            }
            _ => {}
        }
        member.join_waiter = Some(tx);
        self.members.insert(member_id, member);
        match self.state {
            GroupState::Empty => {
                self.prepare_rebalance(now);
                self.join_not_before = Some(now + initial_delay);
            }
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            _ => {}
        }
        self.maybe_complete_join(now, &mut effects);
        (rx, effects)
    }

    /// Enters PreparingRebalance: members must rejoin before the largest rebalance timeout.
    pub fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for their assignment must rejoin instead.
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
        self.join_not_before = None;
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Completes the join phase when every member has rejoined (after the initial delay),
    /// or when the rebalance deadline passed (dropping members that did not rejoin).
    pub fn maybe_complete_join(&mut self, now: Instant, effects: &mut Effects) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let deadline_passed = self.rebalance_deadline.is_some_and(|d| now >= d);
        let delay_over = self.join_not_before.is_none_or(|t| now >= t);
        if !(deadline_passed || (delay_over && self.all_joined())) {
            return;
        }
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending.clear();
        self.generation += 1;
        self.rebalance_deadline = None;
        self.join_not_before = None;
        effects.persist_group = true;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let outcome = self.outcome_for(&id, is_leader);
            if let Some(w) = self.members.get_mut(&id).and_then(|m| m.join_waiter.take()) {
                let _ = w.send(outcome);
            }
        }
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.supports(n)))
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        candidates
            .iter()
            .max_by_key(|c| {
                (
                    votes.get(*c).copied().unwrap_or(0),
                    std::cmp::Reverse(candidates.iter().position(|x| x == *c)),
                )
            })
            .map(|c| (*c).clone())
    }

    fn outcome_for(&self, member_id: &str, as_leader: bool) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if as_leader {
                self.members
                    .values()
                    .map(|m| {
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.metadata_for(&protocol),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Removes a member, answering any request it has waiting.
    pub fn remove_member(&mut self, member_id: &str) -> bool {
        let Some(mut m) = self.members.remove(member_id) else {
            return false;
        };
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                member_id,
            ));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(ResponseError::UnknownMemberId));
        }
        if let Some(instance) = &m.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        true
    }

    /// Checks member id, instance id and generation the way Heartbeat, SyncGroup and
    /// OffsetCommit do.
    fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => {
                    return Err(ResponseError::FencedInstanceId)
                }
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Handles a SyncGroup. The leader's call carries every member's assignment.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> (oneshot::Receiver<SyncOutcome>, Effects) {
        let (tx, rx) = oneshot::channel();
        let effects = Effects::default();
        if let Err(e) = self.validate_member(member_id, instance_id, generation) {
            let _ = tx.send(SyncOutcome::error(e));
            return (rx, effects);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            let _ = tx.send(SyncOutcome::error(ResponseError::InconsistentGroupProtocol));
            return (rx, effects);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(SyncOutcome::error(ResponseError::UnknownMemberId));
            }
            GroupState::PreparingRebalance => {
                let _ = tx.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
            }
            GroupState::Stable => {
                let outcome = self.sync_outcome(member_id);
                let _ = tx.send(outcome);
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        // A member the leader left out gets an empty assignment.
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let outcome = self.sync_outcome(&id);
                        if let Some(w) =
                            self.members.get_mut(&id).and_then(|m| m.sync_waiter.take())
                        {
                            let _ = w.send(outcome);
                        }
                    }
                }
            }
        }
        (rx, effects)
    }

    fn sync_outcome(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        match self.state {
            GroupState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(ResponseError::UnknownMemberId),
            _ => {}
        }
        self.validate_member(member_id, instance_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
        if self.state == GroupState::PreparingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Handles one member of a LeaveGroup.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let target = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) if member_id.is_empty() || current == member_id => current.clone(),
                Some(_) => return Err(ResponseError::FencedInstanceId),
                None => return Err(ResponseError::UnknownMemberId),
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&target).is_some() {
            return Ok(());
        }
        if !self.remove_member(&target) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.on_membership_change(now);
        Ok(())
    }

    /// After a member left or expired: rebalance the rest (or finish a pending join).
    fn on_membership_change(&mut self, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            _ => {}
        }
    }

    /// Expires members whose session timed out and pending member ids never used, and
    /// completes a join whose deadline passed. Called periodically.
    pub fn tick(&mut self, now: Instant) -> Effects {
        let mut effects = Effects::default();
        self.pending.retain(|_, expires| *expires > now);
        // Members waiting in a join are not expired (Kafka keeps them until the join ends).
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.is_expired(now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id);
            self.on_membership_change(now);
        }
        self.maybe_complete_join(now, &mut effects);
        effects
    }

    /// Checks an OffsetCommit's member fields. An admin commit (generation -1, empty member
    /// id) is allowed only while the group has no members.
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        match self.state {
            GroupState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(ResponseError::UnknownMemberId),
            _ => {}
        }
        // Kafka refuses commits only while the assignment is being handed out; during
        // PreparingRebalance a member of the current generation may still commit (Java
        // consumers commit in onPartitionsRevoked, before they rejoin).
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        self.validate_member(member_id, instance_id, generation)
    }

    /// Checks a TxnOffsetCommit's member fields (KIP-447): they are optional, and checked
    /// only when one of them is given; without them a transactional commit is accepted even
    /// while the group has members, and unlike OffsetCommit it is not refused during
    /// CompletingRebalance (Kafka's classic group with `isTransactional`).
    pub fn validate_txn_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation < 0 && self.members.is_empty() {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            return self.validate_member(member_id, instance_id, generation);
        }
        Ok(())
    }

    /// Topics the current members subscribe to, when the protocol is "consumer" and the
    /// subscription can be read (for OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            let metadata = m.metadata_for(&protocol);
            topics.extend(parse_subscription_topics(&metadata)?);
        }
        Some(topics)
    }
}

/// Reads the topic list of a ConsumerProtocolSubscription (version i16, then an array of
/// i16-length strings); enough for every version a client sends.
fn parse_subscription_topics(bytes: &[u8]) -> Option<Vec<String>> {
    let mut at = 2usize;
    let count = i32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
    at += 4;
    if count < 0 || count as usize > bytes.len() {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?);
        at += 2;
        let len = usize::try_from(len).ok()?;
        topics.push(String::from_utf8(bytes.get(at..at + len)?.to_vec()).ok()?);
        at += len;
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_req(member_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: false,
        }
    }

    fn joined(rx: &mut oneshot::Receiver<JoinOutcome>) -> JoinOutcome {
        rx.try_recv().expect("join answered")
    }

    /// Joins one member into a new group and completes its join (no initial delay).
    fn single_member_group() -> (Group, String) {
        let mut g = Group::new("g");
        let now = Instant::now();
        let (mut rx, e) = g.join(join_req(""), now, Duration::ZERO);
        assert!(e.persist_group);
        let out = joined(&mut rx);
        assert_eq!(out.error, None);
        assert_eq!(out.generation, 1);
        assert_eq!(out.leader, out.member_id);
        assert_eq!(out.members.len(), 1, "the leader gets the member list");
        let id = out.member_id;
        let (mut s, _) = g.sync(
            &id,
            None,
            1,
            None,
            None,
            vec![(id.clone(), Bytes::from_static(b"a1"))],
        );
        assert_eq!(s.try_recv().unwrap().assignment, Bytes::from_static(b"a1"));
        assert_eq!(g.state, GroupState::Stable);
        (g, id)
    }

    #[tokio::test(start_paused = true)]
    async fn join_and_sync_make_a_stable_group() {
        let (g, id) = single_member_group();
        assert_eq!(g.leader.as_deref(), Some(id.as_str()));
        assert_eq!(g.protocol.as_deref(), Some("range"));
    }

    #[tokio::test(start_paused = true)]
    async fn v4_unknown_member_gets_member_id_required_first() {
        let mut g = Group::new("g");
        let mut req = join_req("");
        req.require_known_member_id = true;
        let (mut rx, _) = g.join(req.clone(), Instant::now(), Duration::ZERO);
        let out = joined(&mut rx);
        assert_eq!(out.error, Some(ResponseError::MemberIdRequired));
        assert!(!out.member_id.is_empty());
        req.member_id = out.member_id.clone();
        let (mut rx, _) = g.join(req, Instant::now(), Duration::ZERO);
        assert_eq!(joined(&mut rx).error, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_member_triggers_a_rebalance_both_rejoin() {
        let (mut g, first) = single_member_group();
        let now = Instant::now();
        let (mut rx2, _) = g.join(join_req(""), now, Duration::ZERO);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(
            rx2.try_recv().is_err(),
            "waits for the first member to rejoin"
        );
        assert_eq!(
            g.heartbeat(&first, None, 1, now),
            Err(ResponseError::RebalanceInProgress)
        );
        let (mut rx1, _) = g.join(join_req(&first), now, Duration::ZERO);
        let (o1, o2) = (joined(&mut rx1), joined(&mut rx2));
        assert_eq!((o1.generation, o2.generation), (2, 2));
        assert_eq!(o1.leader, first, "the leader stays");
        assert_eq!(o1.members.len(), 2);
        assert!(o2.members.is_empty(), "followers get no member list");
        // The follower's sync waits for the leader's.
        let (mut s2, _) = g.sync(
            &o2.member_id,
            None,
            2,
            Some("consumer"),
            Some("range"),
            vec![],
        );
        assert!(s2.try_recv().is_err());
        let (mut s1, _) = g.sync(
            &first,
            None,
            2,
            None,
            None,
            vec![(o2.member_id.clone(), Bytes::from_static(b"x"))],
        );
        assert_eq!(s2.try_recv().unwrap().assignment, Bytes::from_static(b"x"));
        assert_eq!(
            s1.try_recv().unwrap().assignment,
            Bytes::new(),
            "left out: empty assignment"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leave_rebalances_the_rest() {
        let (mut g, first) = single_member_group();
        let now = Instant::now();
        let (mut rx2, _) = g.join(join_req(""), now, Duration::ZERO);
        let (mut rx1, _) = g.join(join_req(&first), now, Duration::ZERO);
        let second = joined(&mut rx2).member_id;
        joined(&mut rx1);
        g.sync(&first, None, 2, None, None, vec![]);
        assert_eq!(g.state, GroupState::Stable);
        g.leave(&first, None, now).unwrap();
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let (mut rx, _) = g.join(join_req(&second), now, Duration::ZERO);
        let out = joined(&mut rx);
        assert_eq!(out.leader, second, "a new leader is chosen");
        assert_eq!(out.generation, 3);
        assert_eq!(
            g.leave("nobody", None, now),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn session_expiry_removes_a_silent_member() {
        let (mut g, id) = single_member_group();
        tokio::time::advance(Duration::from_secs(5)).await;
        g.heartbeat(&id, None, 1, Instant::now()).unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        g.tick(Instant::now());
        assert!(g.members.contains_key(&id), "heartbeat kept it alive");
        tokio::time::advance(Duration::from_secs(2)).await;
        let e = g.tick(Instant::now());
        assert!(g.members.is_empty());
        assert_eq!(g.state, GroupState::Empty);
        assert!(e.persist_group);
    }

    #[tokio::test(start_paused = true)]
    async fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let (mut g, first) = single_member_group();
        let (mut rx2, _) = g.join(join_req(""), Instant::now(), Duration::ZERO);
        // The first member keeps heartbeating but never rejoins.
        tokio::time::advance(Duration::from_secs(31)).await;
        g.tick(Instant::now());
        let out = joined(&mut rx2);
        assert_eq!(out.error, None);
        assert!(!g.members.contains_key(&first));
        assert_eq!(out.leader, out.member_id);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_generation_and_unknown_member_are_refused() {
        let (mut g, id) = single_member_group();
        let now = Instant::now();
        assert_eq!(
            g.heartbeat(&id, None, 0, now),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("x", None, 1, now),
            Err(ResponseError::UnknownMemberId)
        );
        let (mut rx, _) = g.join(join_req("x"), now, Duration::ZERO);
        assert_eq!(joined(&mut rx).error, Some(ResponseError::UnknownMemberId));
        assert_eq!(
            g.validate_commit(&id, None, 0),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.validate_commit("", None, -1),
            Err(ResponseError::UnknownMemberId),
            "admin commit needs an empty group"
        );
        let mut empty = Group::new("e");
        assert_eq!(empty.validate_commit("", None, -1), Ok(()));
        let mut other = join_req("");
        other.protocol_type = "connect".into();
        let (mut rx, _) = g.join(other, now, Duration::ZERO);
        assert_eq!(
            joined(&mut rx).error,
            Some(ResponseError::InconsistentGroupProtocol)
        );
        let _ = &mut empty;
    }

    #[tokio::test(start_paused = true)]
    async fn commits_are_accepted_while_preparing_a_rebalance_but_not_while_completing_it() {
        let (mut g, first) = single_member_group();
        let now = Instant::now();
        let (mut rx2, _) = g.join(join_req(""), now, Duration::ZERO);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        // Java commits in onPartitionsRevoked before rejoining: allowed, as in Kafka.
        assert_eq!(g.validate_commit(&first, None, 1), Ok(()));
        let (mut rx1, _) = g.join(join_req(&first), now, Duration::ZERO);
        joined(&mut rx1);
        joined(&mut rx2);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(
            g.validate_commit(&first, None, 2),
            Err(ResponseError::RebalanceInProgress)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn transactional_commits_check_the_member_only_when_one_is_named() {
        let (mut g, first) = single_member_group();
        // No member fields (TxnOffsetCommit v0-2, or a producer without group metadata):
        // accepted although the group has members.
        assert_eq!(g.validate_txn_commit("", None, -1), Ok(()));
        assert_eq!(g.validate_txn_commit(&first, None, 1), Ok(()));
        assert_eq!(
            g.validate_txn_commit("someone", None, 1),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            g.validate_txn_commit(&first, None, 7),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.validate_txn_commit("", None, 1),
            Err(ResponseError::UnknownMemberId)
        );
        // Not refused while the assignment is handed out, unlike OffsetCommit.
        let now = Instant::now();
        let (mut rx2, _) = g.join(join_req(""), now, Duration::ZERO);
        let (mut rx1, _) = g.join(join_req(&first), now, Duration::ZERO);
        joined(&mut rx1);
        joined(&mut rx2);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(g.validate_txn_commit(&first, None, 2), Ok(()));
        g.state = GroupState::Dead;
        assert_eq!(
            g.validate_txn_commit("", None, -1),
            Err(ResponseError::CoordinatorNotAvailable)
        );
        assert_eq!(Group::new("e").validate_txn_commit("m", None, -1), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn static_member_replacement_fences_the_old_member() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let mut req = join_req("");
        req.instance_id = Some("instance-1".into());
        let (mut rx, _) = g.join(req.clone(), now, Duration::ZERO);
        let old = joined(&mut rx).member_id;
        g.sync(&old, Some("instance-1"), 1, None, None, vec![]);
        // The same instance restarts and joins with no member id.
        let (mut rx, _) = g.join(req, now, Duration::ZERO);
        let new = joined(&mut rx);
        assert_eq!(new.error, None);
        assert_ne!(new.member_id, old);
        assert_eq!(
            g.heartbeat(&old, Some("instance-1"), new.generation, now),
            Err(ResponseError::FencedInstanceId)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn initial_delay_waits_for_more_members() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let (mut rx1, _) = g.join(join_req(""), now, Duration::from_secs(3));
        assert!(rx1.try_recv().is_err(), "held for the initial delay");
        let (mut rx2, _) = g.join(join_req(""), now, Duration::from_secs(3));
        tokio::time::advance(Duration::from_secs(3)).await;
        g.tick(Instant::now());
        let (a, b) = (joined(&mut rx1), joined(&mut rx2));
        assert_eq!((a.generation, b.generation), (1, 1));
        assert_eq!(a.members.len() + b.members.len(), 2);
    }

    #[test]
    fn subscription_topics_are_read_from_consumer_metadata() {
        let mut m = vec![0u8, 1, 0, 0, 0, 2];
        for t in ["a", "bc"] {
            m.extend_from_slice(&(t.len() as i16).to_be_bytes());
            m.extend_from_slice(t.as_bytes());
        }
        assert_eq!(
            parse_subscription_topics(&m),
            Some(vec!["a".to_string(), "bc".to_string()])
        );
        assert_eq!(parse_subscription_topics(&[0, 1, 0x7f, 0, 0, 0]), None);
    }
}
