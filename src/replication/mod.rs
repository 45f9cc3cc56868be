//! Replication of partition data, after Kafka: followers pull from the partition leader
//! with Fetch requests carrying their replica id, over the leader's ordinary Kafka port.
//!
//! - Roles come from the metadata image ([`ReplicaManager::reconcile`], run after every
//!   image change): the broker named leader leads in the image's leader epoch (recorded in
//!   the log's epoch history as it takes over); every other replica follows that leader.
//! - The leader tracks each follower's log end offset ([`leader::LeaderState`]); the high
//!   watermark is the smallest log end offset over the in-sync replicas. Consumers read
//!   below it; acks=all waits for it ([`wait_for_high_watermark`]).
//! - ISR changes are proposed by the leader as `AlterPartition` metadata commands carrying
//!   the leader and partition epochs, so a change from a stale view is rejected: a follower
//!   out of sync for `replica_lag_time_max` leaves, one that reached the high watermark
//!   rejoins. Leader election when a broker is fenced happens in the metadata image itself.
//! - A follower ([`fetcher`]) first truncates its log by leader epoch (OffsetForLeaderEpoch
//!   against the new leader), then fetches and appends the leader's batches as they are.
//!
//! Locks: a partition's `replica` lock is taken before its `log` lock; appends on the leader
//! happen under the replica lock, so an append never races a change of role.

pub mod checkpoint;
mod client;
mod fetcher;
pub mod leader;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;

use crate::broker::{Broker, Partition};
use crate::metadata::{MetadataCommand, MetadataImage};
pub use leader::LeaderState;

/// What this broker is for one hosted partition.
#[derive(Debug, Clone, Default)]
pub enum ReplicaRole {
    /// Neither leader nor follower (the partition has no leader).
    #[default]
    None,
    Leader(LeaderState),
    Follower {
        leader: i32,
        leader_epoch: i32,
    },
}

/// The high watermark of a partition, and the leader epoch while this broker leads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
}

type Key = (String, i32);

/// An ISR change that is not in the metadata after this long is proposed again (it was
/// refused, e.g. because the joining broker was still fenced, or lost).
const ISR_CHANGE_RETRY: Duration = Duration::from_secs(1);

/// Starts and stops the follower fetchers (one per leader broker) as roles change.
pub struct ReplicaManager {
    node_id: i32,
    attached: OnceLock<Attached>,
    fetchers: Mutex<HashMap<i32, fetcher::FetcherHandle>>,
}

/// The broker the manager serves and the runtime its tasks run on, known after `attach`.
struct Attached {
    broker: Weak<Broker>,
    runtime: tokio::runtime::Handle,
}

impl ReplicaManager {
    pub fn new(node_id: i32) -> ReplicaManager {
        ReplicaManager {
            node_id,
            attached: OnceLock::new(),
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Connects the manager to its broker once the broker exists (called on the runtime);
    /// fetchers start and ISR changes are proposed only after.
    pub fn attach(&self, broker: &Arc<Broker>) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let _ = self.attached.set(Attached {
                broker: Arc::downgrade(broker),
                runtime,
            });
        }
    }

    /// Brings every hosted partition's role in line with `image`: takes over leadership
    /// (recording the new epoch in the log), updates the ISR of partitions still led here,
    /// and points the fetchers at the current leaders. Returns the partitions whose
    /// leadership came here (`true`) or left (`false`).
    pub fn reconcile(
        &self,
        partitions: &[Arc<Partition>],
        image: &MetadataImage,
    ) -> Vec<(Arc<Partition>, bool)> {
        let now = Instant::now();
        let mut changed = Vec::new();
        let mut wanted: HashMap<i32, HashMap<Key, i32>> = HashMap::new();
        for p in partitions {
            let Ok(ip) = image.partition(&p.topic, p.index) else {
                continue;
            };
            let mut role = p.role();
            if ip.leader == self.node_id {
                if let ReplicaRole::Leader(s) = &mut *role {
                    if s.leader_epoch == ip.leader_epoch {
                        s.update(ip, now);
                        refresh_watermark(p, s);
                        continue;
                    }
                }
                let epoch_start = {
                    let mut log = p.log();
                    if let Err(e) = log.begin_leader_epoch(ip.leader_epoch) {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "cannot record the new leader epoch");
                    }
                    log.log_end_offset()
                };
                let state = LeaderState::new(self.node_id, ip, epoch_start, now);
                tracing::info!(
                    topic = %p.topic,
                    partition = p.index,
                    leader_epoch = ip.leader_epoch,
                    isr = ?ip.isr,
                    "leading partition"
                );
                refresh_watermark(p, &state);
                *role = ReplicaRole::Leader(state);
                changed.push((p.clone(), true));
            } else {
                let was_leader = matches!(&*role, ReplicaRole::Leader(_));
                *role = if ip.leader >= 0 {
                    wanted
                        .entry(ip.leader)
                        .or_default()
                        .insert((p.topic.clone(), p.index), ip.leader_epoch);
                    ReplicaRole::Follower {
                        leader: ip.leader,
                        leader_epoch: ip.leader_epoch,
                    }
                } else {
                    ReplicaRole::None
                };
                if was_leader {
                    changed.push((p.clone(), false));
                    tracing::info!(topic = %p.topic, partition = p.index, leader = ip.leader, "no longer leading partition");
                }
                p.publish_watermark(Watermark {
                    offset: p.high_watermark(),
                    leader_epoch: None,
                });
            }
        }
        let Some(Attached { broker, runtime }) = self.attached.get() else {
            return changed; // not attached yet: the first reconcile after `attach` starts fetchers
        };
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        fetchers.retain(|leader, f| {
            let keep = wanted.contains_key(leader);
            if !keep {
                f.stop();
            }
            keep
        });
        for (leader, targets) in wanted {
            let f = fetchers.entry(leader).or_insert_with(|| {
                fetcher::FetcherHandle::spawn(runtime, broker.clone(), self.node_id, leader)
            });
            f.assign(targets);
        }
        changed
    }

    /// Stops every fetcher (shutdown).
    pub fn stop_all(&self) {
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        for (_, f) in fetchers.drain() {
            f.stop();
        }
    }

    /// On the leader: records a follower's fetch from `fetch_offset`, advances the high
    /// watermark, and proposes that the follower rejoin the ISR once it has caught up.
    /// NOT_LEADER_OR_FOLLOWER when this broker does not lead the partition or `replica` is
    /// not one of its replicas.
    pub fn record_follower_fetch(
        &self,
        p: &Arc<Partition>,
        replica: i32,
        fetch_offset: i64,
    ) -> Result<(), ResponseError> {
        let mut role = p.role();
        let ReplicaRole::Leader(s) = &mut *role else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        if !s.is_follower(replica) {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let now = Instant::now();
        let leader_end = p.log().log_end_offset();
        if fetch_offset > leader_end {
            // A follower past this log's end has a divergent tail: the read answers
            // OFFSET_OUT_OF_RANGE and it truncates by epoch; its offset proves nothing.
            return Ok(());
        }
        s.record_fetch(replica, fetch_offset, leader_end, now);
        refresh_watermark(p, s);
        // Only the follower fetching now is judged: its offset is fresh. A fenced broker is
        // not eligible (Kafka's isReplicaIsrEligible): the change would be refused, and while
        // it waits for its retry no live follower could join.
        let joins = s.ready_to_join(p.high_watermark()).contains(&replica);
        if joins && s.pending_isr_change.is_none() && self.is_live(replica) {
            let mut isr = s.isr.clone();
            isr.push(replica);
            self.propose_isr(p, s, isr, now);
        }
        Ok(())
    }

    /// Whether broker `id` is registered and not fenced in the current metadata.
    fn is_live(&self, id: i32) -> bool {
        self.attached
            .get()
            .and_then(|a| a.broker.upgrade())
            .is_some_and(|b| b.metadata.image().is_live(id))
    }

    /// Proposes `isr` for a partition led here (at most one change in flight).
    fn propose_isr(&self, p: &Partition, s: &mut LeaderState, isr: Vec<i32>, now: Instant) {
        let Some(Attached { broker, runtime }) = self.attached.get() else {
            return;
        };
        let Some(broker) = broker.upgrade() else {
            return;
        };
        s.pending_isr_change = Some(now);
        let command = MetadataCommand::AlterPartition {
            name: p.topic.clone(),
            partition: p.index,
            leader: s.node_id,
            leader_epoch: s.leader_epoch,
            partition_epoch: s.partition_epoch,
            isr: isr.clone(),
        };
        let (topic, index, old) = (p.topic.clone(), p.index, s.isr.clone());
        runtime.spawn(async move {
            match broker.metadata.propose(command).await {
                Ok(_) => {
                    tracing::info!(topic, partition = index, from = ?old, to = ?isr, "ISR changed");
                    broker.sync_partitions_quietly();
                }
                Err(e) => {
                    tracing::info!(topic, partition = index, error = %e, "ISR change not taken")
                }
            }
        });
    }

    /// On the leader, every tick: drops out-of-sync followers from the ISR, and forgets ISR
    /// proposals that got no answer (so they are made again).
    pub fn check_isr(&self, partitions: &[Arc<Partition>], max_lag: Duration) {
        let now = Instant::now();
        for p in partitions {
            let mut role = p.role();
            let ReplicaRole::Leader(s) = &mut *role else {
                continue;
            };
            if s.pending_isr_change
                .is_some_and(|at| now.duration_since(at) > ISR_CHANGE_RETRY)
            {
                s.pending_isr_change = None;
            }
            let out = s.out_of_sync(now, max_lag);
            if out.is_empty() || s.pending_isr_change.is_some() {
                continue;
            }
            tracing::info!(topic = %p.topic, partition = p.index, followers = ?out, "followers fell out of sync");
            let isr = s.isr.iter().copied().filter(|r| !out.contains(r)).collect();
            self.propose_isr(p, s, isr, now);
        }
    }
}

/// On the leader: recomputes the high watermark from the followers' progress and publishes
/// it (it never goes down while this broker leads).
fn refresh_watermark(p: &Partition, s: &LeaderState) -> bool {
    let leader_end = p.log().log_end_offset();
    refresh_watermark_at(p, s, leader_end)
}

/// [`refresh_watermark`] with the leader's log end already known; whether it advanced.
fn refresh_watermark_at(p: &Partition, s: &LeaderState, leader_end: i64) -> bool {
    let current = p.high_watermark().min(leader_end);
    let offset = s
        .high_watermark(leader_end)
        .map_or(current, |hw| hw.max(current));
    p.publish_watermark(Watermark {
        offset,
        leader_epoch: Some(s.leader_epoch),
    })
}

/// After an append on the leader (under the replica lock) that moved its log end to
/// `leader_end`: advances the high watermark when no follower holds it back, and wakes the
/// fetches waiting on the partition once (followers for the data, consumers for the
/// watermark).
pub fn after_leader_append(p: &Partition, role: &ReplicaRole, leader_end: i64) {
    let advanced = match role {
        ReplicaRole::Leader(s) => refresh_watermark_at(p, s, leader_end),
        _ => false,
    };
    if !advanced {
        p.notify_appended();
    }
}

/// acks=all: waits until the high watermark reaches `end` (the offset after the batch)
/// while this broker still leads in `leader_epoch`, until `deadline`. REQUEST_TIMED_OUT at
/// the deadline; NOT_LEADER_OR_FOLLOWER when the leadership moved first (the client retries
/// on the new leader, where an idempotent retry is recognised).
pub async fn wait_for_high_watermark(
    p: &Partition,
    leader_epoch: i32,
    end: i64,
    deadline: tokio::time::Instant,
) -> Result<(), ResponseError> {
    let now = p.watermark();
    if now.offset >= end {
        return Ok(()); // committed already (always so with the leader as the only replica)
    }
    let mut rx = p.subscribe_watermark();
    let reached = tokio::time::timeout_at(deadline, async {
        rx.wait_for(|w| w.offset >= end || w.leader_epoch != Some(leader_epoch))
            .await
            .map(|w| *w)
    })
    .await;
    match reached {
        Err(_) => Err(ResponseError::RequestTimedOut),
        Ok(Err(_)) => Err(ResponseError::NotLeaderOrFollower),
        Ok(Ok(w)) if w.offset >= end => Ok(()),
        Ok(Ok(_)) => Err(ResponseError::NotLeaderOrFollower),
    }
}
