//! One hosted partition: its log, this broker's replica role for it (leader, follower or
//! neither), its high watermark, and the fetches waiting for new data on it.
//!
//! Every write to the log goes through a method here, so the two locks never leave this
//! file: `role` is always taken before `log`, and neither is held across `.await`.
//! - As leader: [`Partition::append_as_leader`] appends under the role lock (leadership
//!   cannot move during an append) and returns a [`CommitHandle`] that waits until the high
//!   watermark covers the write (acks=all, offset commits).
//! - As follower: truncation by leader epoch, appending the leader's batches as they are
//!   (and taking the leader's log start offset), and restarting the log at the leader's log
//!   start, each only while this broker still follows that leader in that epoch.
//! - DeleteRecords: [`Partition::delete_records_as_leader`] moves the log start offset up to
//!   at most the high watermark and returns a [`DeleteRecordsHandle`] that waits until every
//!   live replica's log start reached it (the low watermark).
//! - Readers get a [`LogReader`]: shared access to the log, no writes.
//! - Transactions: [`Partition::append_marker_as_leader`] writes a transaction marker (the
//!   log checks its epochs and indexes an abort), and [`Partition::last_stable_offset`] is
//!   the bound of read_committed reads; followers keep the same bookkeeping from the
//!   replicated batches, so a new leader knows the open transactions.
//!
//! Invariant: the high watermark never goes down while this broker leads the partition, and
//! never passes the local log end.

use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::leader::LeaderState;
use crate::log::batch::split_whole_batches;
use crate::log::cleaner::{CleanStats, Throttle};
use crate::log::control::{marker_batch, ControlType};
use crate::log::partition_log::Dirtiness;
use crate::log::producer_state::AppendOrigin;
use crate::log::{AppendInfo, BatchHeader, LogConfig, LogError, PartitionLog};
use crate::metadata::{MetadataCommand, PartitionImage};

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

/// One hosted partition.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub topic_id: Uuid,
    log: Mutex<PartitionLog>,
    waiters: Mutex<Vec<Arc<Notify>>>,
    /// Leader, follower or neither. Lock order: `role`, then `log`.
    role: Mutex<ReplicaRole>,
    /// The high watermark, and whether this broker leads the partition.
    watermark: watch::Sender<Watermark>,
    /// On the leader: the smallest log start offset over the live replicas.
    low_watermark: watch::Sender<i64>,
}

/// Shared access to a partition's log (reads only), holding its lock: keep it short and
/// never across `.await`.
pub struct LogReader<'a>(MutexGuard<'a, PartitionLog>);

impl Deref for LogReader<'_> {
    type Target = PartitionLog;
    fn deref(&self) -> &PartitionLog {
        &self.0
    }
}

/// Why a DeleteRecords was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeleteRecordsError {
    #[error("this broker does not lead the partition")]
    NotLeader,
    #[error("offset {offset} is not between 0 and the high watermark {high_watermark} (or -1 for the high watermark)")]
    OutOfRange { offset: i64, high_watermark: i64 },
    #[error(transparent)]
    Log(#[from] LogError),
}

impl DeleteRecordsError {
    /// The Kafka error the client sees.
    pub fn error(&self) -> ResponseError {
        match self {
            DeleteRecordsError::NotLeader => ResponseError::NotLeaderOrFollower,
            DeleteRecordsError::OutOfRange { .. } => ResponseError::OffsetOutOfRange,
            DeleteRecordsError::Log(e) => e.kafka_error(),
        }
    }
}

/// Waits until every live replica dropped the records a DeleteRecords removed.
pub struct DeleteRecordsHandle {
    partition: Arc<Partition>,
    offset: i64,
}

impl DeleteRecordsHandle {
    /// The new log start offset asked for.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Waits until the low watermark reaches the new log start offset, until `deadline`;
    /// the low watermark then. REQUEST_TIMED_OUT at the deadline, NOT_LEADER_OR_FOLLOWER
    /// when this broker no longer leads the partition.
    pub async fn wait(&self, deadline: tokio::time::Instant) -> Result<i64, ResponseError> {
        let p = &self.partition;
        let mut low = p.low_watermark.subscribe();
        let mut leading = p.watermark.subscribe();
        let offset = self.offset;
        let reached = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                w = low.wait_for(|w| *w >= offset) => w.map(|w| *w).ok(),
                _ = leading.wait_for(|w| w.leader_epoch.is_none()) => None,
            }
        })
        .await;
        match reached {
            Err(_) => Err(ResponseError::RequestTimedOut),
            Ok(None) => Err(ResponseError::NotLeaderOrFollower),
            Ok(Some(w)) => Ok(w),
        }
    }
}

/// Why an append as leader was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("this broker does not lead the partition")]
    NotLeader,
    #[error("{isr} in-sync replicas, fewer than min.insync.replicas {min}")]
    NotEnoughReplicas { isr: usize, min: i32 },
    #[error(transparent)]
    Log(#[from] LogError),
}

impl AppendError {
    /// The Kafka error the client sees.
    pub fn error(&self) -> ResponseError {
        match self {
            AppendError::NotLeader => ResponseError::NotLeaderOrFollower,
            AppendError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            AppendError::Log(e) => e.kafka_error(),
        }
    }
}

/// An append made as leader: what the log reported, and the handle to wait for its commit.
pub struct Appended {
    pub info: AppendInfo,
    pub commit: CommitHandle,
}

/// Waits until an append made as leader is committed (the high watermark covers it).
pub struct CommitHandle {
    partition: Arc<Partition>,
    leader_epoch: i32,
    end: i64,
    min_insync_replicas: Option<i32>,
}

impl CommitHandle {
    /// The leader epoch the write was made in.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// Waits until the high watermark reaches the end of the write while this broker still
    /// leads in its epoch, until `deadline`. REQUEST_TIMED_OUT at the deadline;
    /// NOT_LEADER_OR_FOLLOWER when the leadership moved first (the client retries on the new
    /// leader, where an idempotent retry is recognised); with a min.insync.replicas given,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below it meanwhile (Kafka's
    /// check when an acks=all write is committed).
    pub async fn wait(&self, deadline: tokio::time::Instant) -> Result<(), ResponseError> {
        let p = &self.partition;
        let (end, epoch) = (self.end, self.leader_epoch);
        if p.watermark().offset < end {
            let mut rx = p.subscribe_watermark();
            let reached = tokio::time::timeout_at(deadline, async {
                rx.wait_for(|w| w.offset >= end || w.leader_epoch != Some(epoch))
                    .await
                    .map(|w| *w)
            })
            .await;
            match reached {
                Err(_) => return Err(ResponseError::RequestTimedOut),
                Ok(Ok(w)) if w.offset >= end => {}
                Ok(_) => return Err(ResponseError::NotLeaderOrFollower),
            }
        }
        let Some(min) = self.min_insync_replicas else {
            return Ok(());
        };
        match &*p.role() {
            ReplicaRole::Leader(s) if (s.isr.len() as i32) < min => {
                Err(ResponseError::NotEnoughReplicasAfterAppend)
            }
            _ => Ok(()),
        }
    }
}

/// How a partition's role changed with a new image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Unchanged,
    /// This broker leads it now (it did not before, or in an older epoch).
    BecameLeader,
    /// This broker led it and no longer does.
    LostLeadership,
}

/// What a follower does with a partition after the leader's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerOutcome {
    Ok,
    RetryLater,
    TruncateAgain,
}

/// An ISR change for the leader to propose.
#[derive(Debug, Clone, PartialEq)]
pub struct IsrProposal {
    pub command: MetadataCommand,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

/// An ISR change that is not in the metadata after this long is proposed again (it was
/// refused, e.g. because the joining broker was still fenced, or lost).
const ISR_CHANGE_RETRY: Duration = Duration::from_secs(1);

impl Partition {
    /// A partition over an opened log, with no role yet.
    pub fn new(
        topic: String,
        index: i32,
        topic_id: Uuid,
        log: PartitionLog,
        watermark: i64,
    ) -> Partition {
        let log_start = log.log_start_offset();
        Partition {
            topic,
            index,
            topic_id,
            log: Mutex::new(log),
            waiters: Mutex::new(Vec::new()),
            role: Mutex::new(ReplicaRole::None),
            watermark: watch::Sender::new(Watermark {
                offset: watermark,
                leader_epoch: None,
            }),
            low_watermark: watch::Sender::new(log_start),
        }
    }

    fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn role(&self) -> MutexGuard<'_, ReplicaRole> {
        self.role.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the log (offsets, lookups, read plans).
    pub fn log_reader(&self) -> LogReader<'_> {
        LogReader(self.log())
    }

    /// Whether this broker leads the partition now.
    pub fn is_leader(&self) -> bool {
        matches!(&*self.role(), ReplicaRole::Leader(_))
    }

    /// The role, copied (for tests and diagnostics).
    pub fn role_snapshot(&self) -> ReplicaRole {
        self.role().clone()
    }

    /// Wakes every fetch waiting on this partition.
    pub fn notify_appended(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|p| p.into_inner()));
        for w in waiters {
            w.notify_one();
        }
    }

    /// Registers `waker` to be notified on the next append.
    pub fn wait_for_append(&self, waker: &Arc<Notify>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.retain(|w| Arc::strong_count(w) > 1);
        waiters.push(waker.clone());
    }

    /// The high watermark: consumers read below it, and acks=all waits for it.
    pub fn high_watermark(&self) -> i64 {
        self.watermark.borrow().offset
    }

    /// The last stable offset (Kafka's `lastStableOffset`): the first offset of the oldest
    /// transaction that is open, or completed but with its marker not yet below the high
    /// watermark; the high watermark when there is none. read_committed consumers read
    /// below it. Also forgets the completed transactions the high watermark has passed.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        let mut log = self.log();
        log.on_high_watermark(hw);
        log.last_stable_offset(hw)
    }

    /// The high watermark and leadership.
    pub fn watermark(&self) -> Watermark {
        *self.watermark.borrow()
    }

    /// Watches the high watermark and leadership.
    pub fn subscribe_watermark(&self) -> watch::Receiver<Watermark> {
        self.watermark.subscribe()
    }

    /// Publishes a new watermark when it differs from the current one; returns whether the
    /// offset went up (consumers waiting in a fetch are woken then).
    fn publish_watermark(&self, new: Watermark) -> bool {
        let mut advanced = false;
        self.watermark.send_if_modified(|w| {
            if *w == new {
                return false;
            }
            advanced = new.offset > w.offset;
            *w = new;
            true
        });
        if advanced {
            self.notify_appended();
        }
        advanced
    }

    /// Publishes the low watermark, waking the DeleteRecords waiting on it only when it
    /// changed (it is recomputed on every follower fetch).
    fn publish_low_watermark(&self, low: i64) {
        self.low_watermark.send_if_modified(|w| {
            let changed = *w != low;
            *w = low;
            changed
        });
    }

    /// Publishes the watermark of a partition not led here: kept, capped at `end`.
    fn publish_not_leading(&self, offset: i64) {
        self.publish_watermark(Watermark {
            offset,
            leader_epoch: None,
        });
    }

    /// On the leader: recomputes the high watermark from the followers' progress with the
    /// leader's log end at `leader_end`, and publishes it (it never goes down while this
    /// broker leads); whether it advanced.
    fn refresh_watermark(&self, s: &LeaderState, leader_end: i64) -> bool {
        let current = self.high_watermark().min(leader_end);
        let offset = s
            .high_watermark(leader_end)
            .map_or(current, |hw| hw.max(current));
        self.publish_watermark(Watermark {
            offset,
            leader_epoch: Some(s.leader_epoch),
        })
    }

    // ---- leader ----

    /// Appends producer batches as the leader, in its current leader epoch: NOT_LEADER when
    /// this broker does not lead; with `min_insync_replicas` (acks=all), NOT_ENOUGH_REPLICAS
    /// before anything is written when the ISR is smaller. Advances the high watermark when
    /// no follower holds it back and wakes the waiting fetches once. The returned handle
    /// waits for the commit (also for a retried idempotent batch, which is not written
    /// again: its original offsets are returned).
    pub fn append_as_leader(
        self: &Arc<Self>,
        records: &[u8],
        headers: &[BatchHeader],
        min_insync_replicas: Option<i32>,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        self.append_from(
            records,
            headers,
            min_insync_replicas,
            now_ms,
            AppendOrigin::Client,
        )
    }

    /// Appends batches a coordinator built (transactional offset commits in
    /// `__consumer_offsets`) as the leader: like [`Partition::append_as_leader`] without
    /// min.insync.replicas, and with only the producer epoch checked.
    pub fn append_as_coordinator(
        self: &Arc<Self>,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        self.append_from(records, headers, None, now_ms, AppendOrigin::Coordinator)
    }

    /// Writes the marker that ends producer `producer_id`'s transaction in this partition,
    /// as the leader (WriteTxnMarkers). The handle waits until the marker is committed.
    pub fn append_marker_as_leader(
        self: &Arc<Self>,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        control: ControlType,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let batch = marker_batch(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            control,
            now_ms,
        );
        // A marker is a control batch, which the producer checks refuse: it is built here,
        // so its header is taken as it is.
        let header = crate::log::parse_header(&batch)
            .map_err(|e| AppendError::Log(LogError::InvalidBatch(e)))?;
        self.append_from(&batch, &[header], None, now_ms, AppendOrigin::Coordinator)
    }

    fn append_from(
        self: &Arc<Self>,
        records: &[u8],
        headers: &[BatchHeader],
        min_insync_replicas: Option<i32>,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<Appended, AppendError> {
        let role = self.role();
        let ReplicaRole::Leader(state) = &*role else {
            return Err(AppendError::NotLeader);
        };
        // Kafka's effectiveMinIsr: a partition with fewer replicas than
        // min.insync.replicas needs all of them, not the impossible count.
        let min_insync_replicas =
            min_insync_replicas.map(|min| min.min(state.replicas.len().max(1) as i32));
        if let Some(min) = min_insync_replicas {
            if (state.isr.len() as i32) < min {
                return Err(AppendError::NotEnoughReplicas {
                    isr: state.isr.len(),
                    min,
                });
            }
        }
        let info = self
            .log()
            .append_from(records, headers, state.leader_epoch, now_ms, origin)?;
        let end = info.last_offset + 1;
        if !info.duplicate && !self.refresh_watermark(state, end) {
            self.notify_appended();
        }
        Ok(Appended {
            info,
            commit: CommitHandle {
                partition: self.clone(),
                leader_epoch: state.leader_epoch,
                end,
                min_insync_replicas,
            },
        })
    }

    /// Brings this broker's role for the partition in line with `ip` (its entry in a new
    /// image): takes over leadership in a new epoch (recording it in the log's epoch
    /// history), updates the ISR of a partition still led here, or follows the named leader.
    pub fn apply_image(&self, ip: &PartitionImage, me: i32, now: Instant) -> RoleChange {
        let mut role = self.role();
        if ip.leader == me {
            if let ReplicaRole::Leader(s) = &mut *role {
                if s.leader_epoch == ip.leader_epoch {
                    s.update(ip, now);
                    let end = self.log().log_end_offset();
                    self.refresh_watermark(s, end);
                    return RoleChange::Unchanged;
                }
            }
            let epoch_start = {
                let mut log = self.log();
                if let Err(e) = log.begin_leader_epoch(ip.leader_epoch) {
                    tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot record the new leader epoch");
                }
                log.log_end_offset()
            };
            let state = LeaderState::new(me, ip, epoch_start, now);
            tracing::info!(
                topic = %self.topic,
                partition = self.index,
                leader_epoch = ip.leader_epoch,
                isr = ?ip.isr,
                "leading partition"
            );
            self.refresh_watermark(&state, epoch_start);
            *role = ReplicaRole::Leader(state);
            return RoleChange::BecameLeader;
        }
        let was_leader = matches!(&*role, ReplicaRole::Leader(_));
        *role = if ip.leader >= 0 {
            ReplicaRole::Follower {
                leader: ip.leader,
                leader_epoch: ip.leader_epoch,
            }
        } else {
            ReplicaRole::None
        };
        self.publish_not_leading(self.high_watermark());
        if was_leader {
            tracing::info!(topic = %self.topic, partition = self.index, leader = ip.leader, "no longer leading partition");
            RoleChange::LostLeadership
        } else {
            RoleChange::Unchanged
        }
    }

    /// On the leader: records a follower's fetch from `fetch_offset` and advances the high
    /// watermark; returns the ISR change to propose when the follower caught up and may
    /// rejoin (only a live broker is eligible, Kafka's isReplicaIsrEligible: a fenced one
    /// would be refused and, while its change waited for a retry, no live follower could
    /// join). NOT_LEADER_OR_FOLLOWER when this broker does not lead the partition or
    /// `replica` is not one of its replicas.
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        log_start_offset: i64,
        is_live: impl Fn(i32) -> bool,
        now: Instant,
    ) -> Result<Option<IsrProposal>, ResponseError> {
        let mut role = self.role();
        let ReplicaRole::Leader(s) = &mut *role else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        if !s.is_follower(replica) {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let (leader_start, leader_end) = {
            let log = self.log();
            (log.log_start_offset(), log.log_end_offset())
        };
        s.record_log_start(replica, log_start_offset);
        self.publish_low_watermark(s.low_watermark(leader_start, &is_live));
        if fetch_offset > leader_end {
            // A follower past this log's end has a divergent tail: the read answers
            // OFFSET_OUT_OF_RANGE and it truncates by epoch; its offset proves nothing.
            return Ok(None);
        }
        s.record_fetch(replica, fetch_offset, leader_end, now);
        self.refresh_watermark(s, leader_end);
        // Only the follower fetching now is judged: its offset is fresh.
        let joins = s.ready_to_join(self.high_watermark()).contains(&replica);
        if joins && s.pending_isr_change.is_none() && is_live(replica) {
            let mut isr = s.isr.clone();
            isr.push(replica);
            return Ok(Some(self.isr_proposal(s, isr, now)));
        }
        Ok(None)
    }

    /// On the leader, every tick: forgets an ISR proposal that got no answer (so it is
    /// made again) and returns the change dropping the followers out of sync for longer
    /// than `max_lag`.
    pub fn check_isr(&self, now: Instant, max_lag: Duration) -> Option<IsrProposal> {
        let mut role = self.role();
        let ReplicaRole::Leader(s) = &mut *role else {
            return None;
        };
        if s.pending_isr_change
            .is_some_and(|at| now.duration_since(at) > ISR_CHANGE_RETRY)
        {
            s.pending_isr_change = None;
        }
        let out = s.out_of_sync(now, max_lag);
        if out.is_empty() || s.pending_isr_change.is_some() {
            return None;
        }
        tracing::info!(topic = %self.topic, partition = self.index, followers = ?out, "followers fell out of sync");
        let isr = s.isr.iter().copied().filter(|r| !out.contains(r)).collect();
        Some(self.isr_proposal(s, isr, now))
    }

    /// The AlterPartition command for `isr`, marked in flight (at most one at a time).
    fn isr_proposal(&self, s: &mut LeaderState, isr: Vec<i32>, now: Instant) -> IsrProposal {
        s.pending_isr_change = Some(now);
        IsrProposal {
            command: MetadataCommand::AlterPartition {
                name: self.topic.clone(),
                partition: self.index,
                leader: s.node_id,
                leader_epoch: s.leader_epoch,
                partition_epoch: s.partition_epoch,
                isr: isr.clone(),
            },
            from: s.isr.clone(),
            to: isr,
        }
    }

    /// As leader: DeleteRecords up to `offset` (-1: the high watermark). The log start
    /// offset moves there at once on this broker; followers follow on their next fetch. The
    /// handle waits until every live replica did (Kafka's DelayedDeleteRecords).
    pub fn delete_records_as_leader(
        self: &Arc<Self>,
        offset: i64,
        is_live: impl Fn(i32) -> bool,
    ) -> Result<DeleteRecordsHandle, DeleteRecordsError> {
        let role = self.role();
        let ReplicaRole::Leader(s) = &*role else {
            return Err(DeleteRecordsError::NotLeader);
        };
        let high_watermark = self.high_watermark();
        let offset = if offset == -1 { high_watermark } else { offset };
        if offset < 0 || offset > high_watermark {
            return Err(DeleteRecordsError::OutOfRange {
                offset,
                high_watermark,
            });
        }
        let leader_start = {
            let mut log = self.log();
            log.increment_log_start_offset(offset)?;
            log.log_start_offset()
        };
        self.publish_low_watermark(s.low_watermark(leader_start, is_live));
        Ok(DeleteRecordsHandle {
            partition: self.clone(),
            offset,
        })
    }

    // ---- follower ----

    /// Whether this broker follows `leader` in `epoch` (under the role lock).
    fn follows(role: &ReplicaRole, leader: i32, epoch: i32) -> bool {
        matches!(role, ReplicaRole::Follower { leader: l, leader_epoch: e } if *l == leader && *e == epoch)
    }

    /// As follower of `leader` in `epoch`: applies the leader's answer to
    /// OffsetForLeaderEpoch for this log's latest epoch. The log keeps what the leader has
    /// of that epoch (or of the latest epoch the leader knows below it) and drops the rest.
    pub fn truncate_as_follower(
        &self,
        leader: i32,
        epoch: i32,
        leader_epoch: i32,
        leader_end: i64,
    ) -> FollowerOutcome {
        let role = self.role();
        if !Self::follows(&role, leader, epoch) {
            return FollowerOutcome::RetryLater;
        }
        let mut log = self.log();
        let end = log.log_end_offset();
        let target = if leader_epoch < 0 || leader_end < 0 {
            // The leader holds none of this log's epochs: keep nothing that could diverge.
            log.log_start_offset()
        } else if Some(leader_epoch) == log.latest_epoch() {
            leader_end.min(end)
        } else {
            let (_, local_end) = log.end_offset_for_epoch(leader_epoch);
            leader_end.min(local_end).min(end)
        };
        if target < end {
            tracing::info!(
                topic = %self.topic,
                partition = self.index,
                from = end,
                to = target,
                leader,
                "truncating the divergent tail of a follower"
            );
            if let Err(e) = log.truncate_to(target) {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "truncation failed");
                return FollowerOutcome::TruncateAgain;
            }
        }
        let end = log.log_end_offset();
        drop(log);
        self.publish_not_leading(self.high_watermark().min(end));
        FollowerOutcome::Ok
    }

    /// As follower of `leader` in `epoch`: appends fetched batches (the leader's bytes as
    /// they are), takes the leader's high watermark `hw` capped at this log's end, and moves
    /// this log's start up to the leader's (`leader_start`, after a DeleteRecords) within
    /// that high watermark.
    pub fn append_as_follower(
        &self,
        leader: i32,
        epoch: i32,
        records: &[u8],
        hw: i64,
        leader_start: i64,
        now_ms: i64,
    ) -> FollowerOutcome {
        let role = self.role();
        if !Self::follows(&role, leader, epoch) {
            return FollowerOutcome::RetryLater;
        }
        let mut log = self.log();
        if !records.is_empty() {
            let appended = split_whole_batches(records)
                .map_err(LogError::InvalidBatch)
                .and_then(|(headers, len)| {
                    if headers.is_empty() {
                        return Ok(());
                    }
                    log.append_replicated(&records[..len], &headers, now_ms)
                });
            if let Err(e) = appended {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot append replicated batches; truncating by epoch again");
                return FollowerOutcome::TruncateAgain;
            }
        }
        let end = log.log_end_offset();
        let hw = hw.min(end).max(0);
        log.on_high_watermark(hw);
        if let Err(e) = log.increment_log_start_offset(leader_start.min(hw)) {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot take the leader's log start offset");
        }
        drop(log);
        self.publish_not_leading(hw);
        FollowerOutcome::Ok
    }

    /// As follower: the leader no longer has the fetch offset. Below its log start
    /// (`leader_start`), this log restarts there (retention removed what this follower
    /// missed); otherwise the log diverged and is truncated by epoch again.
    pub fn restart_at_leader_start(&self, leader_start: i64) -> FollowerOutcome {
        let mut log = self.log();
        if leader_start > log.log_end_offset() {
            tracing::info!(topic = %self.topic, partition = self.index, offset = leader_start, "follower restarts its log at the leader's log start");
            if let Err(e) = log.truncate_fully_and_start_at(leader_start) {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot restart the log");
            }
            return FollowerOutcome::Ok;
        }
        FollowerOutcome::TruncateAgain
    }

    // ---- housekeeping ----

    /// Applies a changed topic config to the log.
    pub fn update_config(&self, config: LogConfig) {
        self.log().update_config(config);
    }

    /// How dirty the log is for the cleaner (`None`: not compacted, or nothing to clean).
    pub fn dirtiness(&self, now_ms: i64) -> Option<Dirtiness> {
        let hw = self.high_watermark();
        self.log().dirtiness(hw, now_ms)
    }

    /// One cleaning of the log (see `log::cleaner`): the job is made under the log's lock,
    /// the map and the rewrite run without it, each group is swapped in under it. `None`
    /// when there was nothing to clean or a concurrent truncation or deletion voided it.
    pub fn clean(
        &self,
        now_ms: i64,
        map_budget: usize,
        throttle: &mut Throttle,
    ) -> Result<Option<CleanStats>, LogError> {
        let hw = self.high_watermark();
        let (job, layout) = {
            let log = self.log();
            match log.clean_job(hw, now_ms) {
                Some(job) => (job, log.layout_version()),
                None => return Ok(None),
            }
        };
        let stats = crate::log::cleaner::clean::run(&job, map_budget, throttle, |group| {
            self.log().swap_cleaned(group, layout)
        })?;
        if let Some(stats) = &stats {
            self.log().set_first_dirty_offset(stats.end_offset)?;
        }
        Ok(stats)
    }

    /// Deletes expired segments; how many.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        self.log().apply_retention(now_ms)
    }

    /// Flushes the log when its interval is due.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<bool, LogError> {
        self.log().flush_if_due(now_ms)
    }

    /// Flushes and closes the log with the clean-shutdown marker; later writes are refused.
    pub fn shutdown_log(&self) -> Result<(), LogError> {
        self.log().shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::log::{validate_producer_batches, FlushPolicy, RecordBatchBuilder};

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 20,
            retention_ms: None,
            retention_bytes: None,
            max_message_bytes: 1 << 20,
            message_timestamp_type_log_append: false,
            index_interval_bytes: 4096,
            index_max_bytes: 1 << 16,
            flush: FlushPolicy::Never,
            ..LogConfig::default()
        }
    }

    fn partition(dir: &std::path::Path) -> Arc<Partition> {
        let log = PartitionLog::open(dir, config()).unwrap();
        Arc::new(Partition::new("t".into(), 0, Uuid::new_v4(), log, 0))
    }

    fn image(leader: i32, leader_epoch: i32, isr: &[i32]) -> PartitionImage {
        PartitionImage {
            leader,
            leader_epoch,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            partition_epoch: 0,
        }
    }

    fn batch(n: usize) -> (Vec<u8>, Vec<BatchHeader>) {
        let mut b = RecordBatchBuilder::new();
        for i in 0..n {
            b.push(i as i64, Some(b"k"), Some(b"v"), &[]);
        }
        let bytes = b.build();
        let headers = validate_producer_batches(&bytes, usize::MAX).unwrap();
        (bytes, headers)
    }

    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(200)
    }

    #[tokio::test]
    async fn an_append_commits_once_the_in_sync_followers_fetched_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let (records, headers) = batch(3);
        assert!(matches!(
            p.append_as_leader(&records, &headers, None, 0),
            Err(AppendError::NotLeader)
        ));
        let now = Instant::now();
        assert_eq!(
            p.apply_image(&image(1, 5, &[1, 2]), 1, now),
            RoleChange::BecameLeader
        );
        let appended = p.append_as_leader(&records, &headers, Some(2), 0).unwrap();
        assert_eq!(
            (appended.info.base_offset, appended.info.last_offset),
            (0, 2)
        );
        assert_eq!(appended.commit.leader_epoch(), 5);
        // Follower 2 has not fetched past the batch: not committed yet.
        assert_eq!(
            appended.commit.wait(soon()).await,
            Err(ResponseError::RequestTimedOut)
        );
        assert_eq!(p.record_follower_fetch(2, 3, 0, |_| true, now), Ok(None));
        assert_eq!(p.high_watermark(), 3);
        assert_eq!(appended.commit.wait(soon()).await, Ok(()));
    }

    #[tokio::test]
    async fn acks_all_needs_min_insync_replicas_before_and_after_the_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let (records, headers) = batch(1);
        let now = Instant::now();
        p.apply_image(&image(1, 1, &[1]), 1, now);
        assert!(matches!(
            p.append_as_leader(&records, &headers, Some(2), 0),
            Err(AppendError::NotEnoughReplicas { isr: 1, min: 2 })
        ));
        assert_eq!(p.log_reader().log_end_offset(), 0, "nothing was written");
        p.apply_image(&image(1, 1, &[1, 2]), 1, now);
        let appended = p.append_as_leader(&records, &headers, Some(2), 0).unwrap();
        // The ISR shrinks to the leader alone: the watermark covers the write, but fewer
        // replicas than required hold it.
        p.apply_image(&image(1, 1, &[1]), 1, now);
        assert_eq!(
            appended.commit.wait(soon()).await,
            Err(ResponseError::NotEnoughReplicasAfterAppend)
        );
    }

    #[tokio::test]
    async fn min_insync_replicas_above_the_replica_count_needs_every_replica() {
        // Kafka's effectiveMinIsr: replication factor 1 with min.insync.replicas 2 takes
        // acks=all writes once its one replica has them.
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let (records, headers) = batch(1);
        let single = PartitionImage {
            replicas: vec![1],
            ..image(1, 1, &[1])
        };
        p.apply_image(&single, 1, Instant::now());
        let appended = p.append_as_leader(&records, &headers, Some(2), 0).unwrap();
        assert_eq!(appended.commit.wait(soon()).await, Ok(()));
    }

    #[tokio::test]
    async fn a_waiting_commit_ends_when_leadership_moves() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let (records, headers) = batch(1);
        let now = Instant::now();
        p.apply_image(&image(1, 1, &[1, 2]), 1, now);
        let appended = p.append_as_leader(&records, &headers, None, 0).unwrap();
        let waiting = tokio::spawn(async move {
            appended
                .commit
                .wait(tokio::time::Instant::now() + Duration::from_secs(10))
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            p.apply_image(&image(2, 2, &[2]), 1, now),
            RoleChange::LostLeadership
        );
        assert_eq!(
            waiting.await.unwrap(),
            Err(ResponseError::NotLeaderOrFollower)
        );
        assert!(matches!(
            p.append_as_leader(&records, &headers, None, 0),
            Err(AppendError::NotLeader)
        ));
    }

    #[test]
    fn a_follower_appends_only_for_the_leader_and_epoch_it_follows() {
        let leader_dir = tempfile::tempdir().unwrap();
        let leader = partition(leader_dir.path());
        let now = Instant::now();
        leader.apply_image(&image(1, 3, &[1, 2]), 1, now);
        let (records, headers) = batch(2);
        leader
            .append_as_leader(&records, &headers, None, 0)
            .unwrap();
        let written = leader.log_reader().read(0, 1 << 20).unwrap().bytes;

        let dir = tempfile::tempdir().unwrap();
        let follower = partition(dir.path());
        follower.apply_image(&image(1, 3, &[1, 2]), 2, now);
        assert_eq!(
            follower.append_as_follower(1, 2, &written, 2, 0, 0),
            FollowerOutcome::RetryLater,
            "an older epoch"
        );
        assert_eq!(
            follower.append_as_follower(1, 3, &written, 2, 0, 0),
            FollowerOutcome::Ok
        );
        assert_eq!(follower.log_reader().log_end_offset(), 2);
        assert_eq!(follower.high_watermark(), 2);
        assert_eq!(follower.log_reader().latest_epoch(), Some(3));
    }

    #[test]
    fn a_caught_up_live_follower_is_proposed_back_into_the_isr() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let now = Instant::now();
        p.apply_image(&image(1, 1, &[1, 2]), 1, now);
        // A fenced follower is not eligible.
        assert_eq!(
            p.record_follower_fetch(3, 0, 0, |id| id != 3, now),
            Ok(None)
        );
        let proposal = p
            .record_follower_fetch(3, 0, 0, |_| true, now)
            .unwrap()
            .unwrap();
        assert_eq!((proposal.from, proposal.to), (vec![1, 2], vec![1, 2, 3]));
        assert_eq!(
            p.record_follower_fetch(4, 0, 0, |_| true, now),
            Err(ResponseError::NotLeaderOrFollower),
            "not a replica"
        );
    }

    #[tokio::test]
    async fn delete_records_moves_the_log_start_and_waits_for_the_followers() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let now = Instant::now();
        p.apply_image(&image(1, 1, &[1, 2]), 1, now);
        let (records, headers) = batch(5);
        p.append_as_leader(&records, &headers, None, 0).unwrap();
        assert_eq!(p.high_watermark(), 0, "follower 2 has not fetched yet");
        assert!(matches!(
            p.delete_records_as_leader(3, |_| true),
            Err(DeleteRecordsError::OutOfRange {
                offset: 3,
                high_watermark: 0
            })
        ));
        p.record_follower_fetch(2, 5, 0, |_| true, now).unwrap();
        let deleted = p.delete_records_as_leader(3, |_| true).unwrap();
        assert_eq!(p.log_reader().log_start_offset(), 3);
        // Follower 2 still starts at 0: not done.
        assert_eq!(
            deleted.wait(soon()).await,
            Err(ResponseError::RequestTimedOut)
        );
        p.record_follower_fetch(2, 5, 3, |_| true, now).unwrap();
        assert_eq!(deleted.wait(soon()).await, Ok(3));
        // -1 is the high watermark; beyond it is out of range.
        assert_eq!(
            p.delete_records_as_leader(-1, |_| true).unwrap().offset(),
            5
        );
        assert!(matches!(
            p.delete_records_as_leader(6, |_| true),
            Err(DeleteRecordsError::OutOfRange { .. })
        ));
        p.apply_image(&image(2, 2, &[2]), 1, now);
        assert!(matches!(
            p.delete_records_as_leader(5, |_| true),
            Err(DeleteRecordsError::NotLeader)
        ));
    }

    #[test]
    fn a_follower_takes_the_leaders_log_start_within_its_high_watermark() {
        let leader_dir = tempfile::tempdir().unwrap();
        let leader = partition(leader_dir.path());
        let now = Instant::now();
        leader.apply_image(&image(1, 1, &[1]), 1, now);
        let (records, headers) = batch(4);
        leader
            .append_as_leader(&records, &headers, None, 0)
            .unwrap();
        let written = leader.log_reader().read(0, 1 << 20).unwrap().bytes;
        let dir = tempfile::tempdir().unwrap();
        let follower = partition(dir.path());
        follower.apply_image(&image(1, 1, &[1]), 2, now);
        // The leader's log starts at 3 but only 2 is committed: the follower moves to 2.
        follower.append_as_follower(1, 1, &written, 2, 3, 0);
        assert_eq!(follower.log_reader().log_start_offset(), 2);
        follower.append_as_follower(1, 1, &[], 4, 3, 0);
        assert_eq!(follower.log_reader().log_start_offset(), 3);
    }

    fn txn_batch(pid: i64, seq: i32, n: usize) -> (Vec<u8>, Vec<BatchHeader>) {
        let mut b = RecordBatchBuilder::new()
            .producer(pid, 0, seq)
            .attributes(crate::log::batch::ATTR_TRANSACTIONAL);
        for i in 0..n {
            b.push(i as i64, Some(b"k"), Some(b"v"), &[]);
        }
        let bytes = b.build();
        let headers = validate_producer_batches(&bytes, usize::MAX).unwrap();
        (bytes, headers)
    }

    #[tokio::test]
    async fn markers_end_transactions_and_the_lso_follows_the_high_watermark_on_both_replicas() {
        let now = Instant::now();
        let leader_dir = tempfile::tempdir().unwrap();
        let leader = partition(leader_dir.path());
        leader.apply_image(&image(1, 1, &[1, 2]), 1, now);
        let (records, headers) = txn_batch(7, 0, 3);
        leader
            .append_as_leader(&records, &headers, None, 0)
            .unwrap();
        let marker = leader
            .append_marker_as_leader(7, 0, 4, ControlType::Abort, 0)
            .unwrap();
        assert_eq!(marker.info.base_offset, 3);
        // Follower 2 has fetched nothing: the high watermark is 0.
        assert_eq!(leader.last_stable_offset(), 0);
        leader
            .record_follower_fetch(2, 3, 0, |_| true, now)
            .unwrap();
        assert_eq!(leader.high_watermark(), 3);
        assert_eq!(
            leader.last_stable_offset(),
            0,
            "the marker is not below the high watermark yet"
        );
        leader
            .record_follower_fetch(2, 4, 0, |_| true, now)
            .unwrap();
        assert_eq!(leader.last_stable_offset(), 4);
        assert_eq!(marker.commit.wait(soon()).await, Ok(()));
        // An older coordinator epoch is fenced.
        let e = leader
            .append_marker_as_leader(7, 0, 3, ControlType::Commit, 0)
            .err()
            .unwrap();
        assert_eq!(e.error(), ResponseError::TransactionCoordinatorFenced);

        let written = leader.log_reader().read(0, 1 << 20).unwrap().bytes;
        let dir = tempfile::tempdir().unwrap();
        let follower = partition(dir.path());
        follower.apply_image(&image(1, 1, &[1, 2]), 2, now);
        follower.append_as_follower(1, 1, &written[..], 2, 0, 0);
        assert_eq!(
            follower.last_stable_offset(),
            0,
            "open below the follower's HW"
        );
        follower.append_as_follower(1, 1, &[], 4, 0, 0);
        assert_eq!(follower.last_stable_offset(), 4);
        let aborted = follower.log_reader().aborted_transactions(0, 4);
        assert_eq!(
            aborted
                .iter()
                .map(|t| (t.producer_id, t.first_offset, t.last_offset))
                .collect::<Vec<_>>(),
            vec![(7, 0, 3)]
        );
    }
}
