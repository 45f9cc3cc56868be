//! [`Manager`], the guide's `cluster.Manager`: starts this broker's Raft node, watches
//! leadership, routes proposals to the leader and keeps the broker's metadata image current.
//!
//! Proposals (what KRaft's brokers do with controller requests): on the leader, the command is
//! appended through openraft; on a follower it is forwarded over the Raft transport to the
//! leader, which appends it and answers with the log index and the apply result. The call
//! then waits until this node has applied that index, so the caller reads its own write in
//! [`Manager::image`]. While no leader is known, or the leader cannot be reached before the
//! request is sent, or the node asked is no longer the leader (so nothing was appended), the
//! proposal is retried until [`PROPOSE_TIMEOUT`]. Once a request may have reached a leader, it
//! is never resent: a timeout then is reported as [`ClusterError::Ambiguous`], because
//! commands like `AllocateProducerIds` must not apply twice.
//!
//! Leadership: `check_quorum` (the guide's flag, KRaft's "check quorum") makes a leader that
//! has not heard from a majority within the maximum election timeout stop reporting itself as
//! the leader ([`Manager::is_leader`], [`Manager::leader_id`]); openraft's leader lease already
//! keeps followers from electing a new leader while the old one is heard. The log lines
//! "Raft cluster started", "became leader" and "lost leadership" follow that view.
//!
//! Invariants: no lock is held across an `.await`; the manager owns the node, and
//! [`Manager::shutdown`] stops it (the Raft port is free when it returns).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::ClusterError;
use super::members::parse_members;
use super::raft::{
    AppliedImage, CommandResponse, NodeId, RaftNode, RaftOptions, RaftStatus, Role, StatusWatch,
    WriteFailure,
};
use crate::config::ClusterConfig;
use crate::metadata::{ApplyError, MetadataCommand, MetadataImage};

/// How long a proposal may wait for a leader and its answer.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// One voter, as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterInfo {
    pub id: NodeId,
    /// The highest Raft log index known to be on this voter (inclusive; Kafka's
    /// `log_end_offset` is this + 1). Known on the leader for every voter, elsewhere only for
    /// this node.
    pub matched_index: Option<u64>,
    /// Milliseconds since this voter last answered the leader (0 for this node); known on the
    /// leader only.
    pub last_contact_ms: Option<u64>,
}

/// The quorum as this node sees it (for DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    pub leader_id: Option<NodeId>,
    pub term: u64,
    /// On the leader: the highest index a majority holds, once an entry of the current term
    /// is among them (Raft's commit rule); elsewhere (and as a floor): the last applied index.
    pub commit_index: Option<u64>,
    /// Ascending by id.
    pub voters: Vec<VoterInfo>,
}

/// Decides whom this node reports as the leader.
#[derive(Debug, Clone, Copy)]
struct LeaderJudge {
    id: NodeId,
    check_quorum: bool,
    /// A leader not acknowledged by a quorum for longer than this is not reported.
    lapse_ms: u64,
}

impl LeaderJudge {
    fn leader(&self, s: &RaftStatus) -> Option<NodeId> {
        if s.stopped.is_some() {
            return None;
        }
        match s.leader {
            Some(l) if l == self.id => (s.role == Role::Leader && self.quorum_ok(s)).then_some(l),
            other => other,
        }
    }

    fn quorum_ok(&self, s: &RaftStatus) -> bool {
        !self.check_quorum
            || s.millis_since_quorum_ack
                .is_some_and(|ms| ms <= self.lapse_ms)
    }
}

/// Logs leadership changes until the node stops.
async fn leadership_loop(mut statuses: StatusWatch, judge: LeaderJudge) {
    let me = judge.id;
    let mut reported: Option<NodeId> = None;
    while let Some(s) = statuses.changed().await {
        let now = judge.leader(&s);
        if now != reported {
            if now == Some(me) {
                tracing::info!(node_id = me, term = s.term, "became leader");
            } else if reported == Some(me) {
                tracing::info!(node_id = me, term = s.term, leader = ?now, "lost leadership");
            } else if let Some(leader) = now {
                tracing::info!(
                    node_id = me,
                    term = s.term,
                    leader,
                    "following the Raft leader"
                );
            }
            reported = now;
        }
        if s.stopped.is_some() {
            break;
        }
    }
    if reported == Some(me) {
        tracing::info!(node_id = me, "lost leadership (the Raft node stopped)");
    }
}

/// The commit index by Raft's rule, from the leader's view of what each voter holds.
fn quorum_commit(
    voters: &[NodeId],
    matched: &BTreeMap<NodeId, Option<(u64, u64)>>,
    term: u64,
) -> Option<u64> {
    let majority = voters.len() / 2 + 1;
    let mut held: Vec<(u64, u64)> = voters
        .iter()
        .filter_map(|v| matched.get(v).copied().flatten())
        .collect();
    if voters.is_empty() || held.len() < majority {
        return None;
    }
    held.sort_by_key(|&(_, index)| std::cmp::Reverse(index));
    let (entry_term, index) = held[majority - 1];
    (entry_term == term).then_some(index)
}

/// This broker's view of, and handle on, the metadata cluster.
pub struct Manager {
    node: RaftNode,
    judge: LeaderJudge,
    images: watch::Receiver<AppliedImage>,
    retry: Duration,
    propose_timeout: Duration,
    watcher: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
}

fn config_error(field: &'static str, message: impl Into<String>) -> ClusterError {
    ClusterError::Config {
        field,
        message: message.into(),
    }
}

impl Manager {
    /// Starts this node: binds `cluster.raft_address` (when `cluster.enabled`), opens the Raft
    /// log and snapshot in `cluster.data_dir` (which must be set; the broker defaults it), and
    /// joins or bootstraps the cluster. With `cluster.enabled` false, the node is the only
    /// voter of its own cluster, with no listener.
    pub async fn start(config: &ClusterConfig) -> Result<Arc<Manager>, ClusterError> {
        let listener = if config.enabled {
            let address = config.raft_address.clone().ok_or_else(|| {
                config_error(
                    "cluster.raft_address",
                    "is required when cluster.enabled is true",
                )
            })?;
            match TcpListener::bind(&address).await {
                Ok(l) => Some(l),
                Err(source) => return Err(ClusterError::Bind { address, source }),
            }
        } else {
            None
        };
        Manager::start_with_listener(config, listener).await
    }

    /// Like [`Manager::start`], with the peer listener already bound (tests bind
    /// `127.0.0.1:0` first so every node's address is known before any starts). `None`
    /// runs without a listener.
    pub async fn start_with_listener(
        config: &ClusterConfig,
        listener: Option<TcpListener>,
    ) -> Result<Arc<Manager>, ClusterError> {
        let id = NodeId::try_from(config.node_id)
            .map_err(|_| config_error("cluster.node_id", "must not be negative"))?;
        let data_dir = config.data_dir.clone().ok_or_else(|| {
            config_error(
                "cluster.data_dir",
                "is required: it holds the Raft log and snapshots",
            )
        })?;
        let members = if config.enabled {
            let members = parse_members(&config.initial_members)?;
            let Some(own) = members.get(&id) else {
                return Err(config_error(
                    "cluster.node_id",
                    format!(
                        "node {id} is not one of cluster.initial_members (ids {:?}); every node \
                         must be an initial voter (adding nodes later is not supported yet)",
                        members.keys().collect::<Vec<_>>()
                    ),
                ));
            };
            if let Some(addr) = &config.raft_address {
                if addr != own {
                    tracing::warn!(
                        raft_address = %addr,
                        listed = %own,
                        "cluster.raft_address differs from this node's entry in \
                         cluster.initial_members; peers dial the listed address"
                    );
                }
            }
            members
        } else {
            let addr = listener
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.to_string())
                .or_else(|| config.raft_address.clone())
                .unwrap_or_default();
            BTreeMap::from([(id, addr)])
        };
        let election = Duration::from_millis(config.election_rtt.saturating_mul(config.rtt_ms));
        let heartbeat = Duration::from_millis(config.heartbeat_rtt.saturating_mul(config.rtt_ms));
        let voters: Vec<NodeId> = members.keys().copied().collect();
        let node = RaftNode::start(RaftOptions {
            node_id: id,
            members,
            data_dir,
            election_timeout: election,
            heartbeat,
            snapshot_entries: config.snapshot_entries,
            compaction_overhead: config.compaction_overhead,
            listener,
        })
        .await?;
        let judge = LeaderJudge {
            id,
            check_quorum: config.check_quorum,
            lapse_ms: u64::try_from(election.as_millis())
                .unwrap_or(u64::MAX)
                .saturating_mul(2),
        };
        let watcher = tokio::spawn(leadership_loop(node.watch_status(), judge));
        tracing::info!(
            node_id = id,
            raft_address = ?node.local_addr(),
            voters = ?voters,
            election_timeout_ms = election.as_millis() as u64,
            heartbeat_ms = heartbeat.as_millis() as u64,
            "Raft cluster started"
        );
        Ok(Arc::new(Manager {
            images: node.images(),
            node,
            judge,
            retry: heartbeat.clamp(Duration::from_millis(10), Duration::from_millis(100)),
            propose_timeout: PROPOSE_TIMEOUT,
            watcher: Mutex::new(Some(watcher)),
            stopped: AtomicBool::new(false),
        }))
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.judge.id
    }

    /// The address the Raft listener is bound to, if one runs.
    pub fn raft_addr(&self) -> Option<SocketAddr> {
        self.node.local_addr()
    }

    /// Proposes `command` to the cluster. Returns its Raft log index and whether it applied
    /// (a command that does not apply is still committed, and changed nothing), once this
    /// node's [`Manager::image`] includes it.
    ///
    /// Cancellation: dropping the future does not withdraw a proposal already sent.
    pub async fn propose(
        &self,
        command: MetadataCommand,
    ) -> Result<(u64, Result<(), ApplyError>), ClusterError> {
        let started = Instant::now();
        let deadline = started + self.propose_timeout;
        let response = self.write_somewhere(command, started, deadline).await?;
        self.wait_applied(response.index, deadline, started).await?;
        Ok((response.index, response.result))
    }

    async fn write_somewhere(
        &self,
        command: MetadataCommand,
        started: Instant,
        deadline: Instant,
    ) -> Result<CommandResponse, ClusterError> {
        // A leader named by a node that refused, tried before the (possibly stale) local view.
        let mut hint: Option<NodeId> = None;
        loop {
            let status = self.node.status();
            if let Some(reason) = status.stopped {
                return Err(ClusterError::Stopped(reason));
            }
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            let hinted = hint.is_some();
            let (leader, attempt) = match hint.take().or(status.leader) {
                Some(l) if l == self.judge.id => {
                    let write = self.node.write(command.clone());
                    let attempt = match tokio::time::timeout(left, write).await {
                        Ok(r) => r,
                        Err(_) => Err(WriteFailure::Ambiguous(format!(
                            "not committed within {:?}",
                            self.propose_timeout
                        ))),
                    };
                    (l, attempt)
                }
                Some(l) => (l, self.node.forward(l, command.clone(), left).await),
                None => (0, Err(WriteFailure::NotLeader { leader: None })),
            };
            match attempt {
                Ok(response) => return Ok(response),
                Err(WriteFailure::NotLeader {
                    leader: Some(named),
                }) if !hinted && named != leader && Instant::now() < deadline => hint = Some(named),
                Err(WriteFailure::NotLeader { .. }) | Err(WriteFailure::Unreachable(_)) => {
                    if let Err(WriteFailure::Unreachable(reason)) = &attempt {
                        tracing::debug!(leader, %reason, "the Raft leader is unreachable; retrying");
                    }
                    if Instant::now() + self.retry >= deadline {
                        return Err(ClusterError::NoLeader {
                            waited: started.elapsed(),
                        });
                    }
                    tokio::time::sleep(self.retry).await;
                }
                Err(WriteFailure::Ambiguous(reason)) => {
                    return Err(ClusterError::Ambiguous { leader, reason })
                }
                Err(WriteFailure::Refused(reason)) | Err(WriteFailure::Stopped(reason)) => {
                    return Err(ClusterError::Stopped(reason))
                }
            }
        }
    }

    async fn wait_applied(
        &self,
        index: u64,
        deadline: Instant,
        started: Instant,
    ) -> Result<(), ClusterError> {
        let mut images = self.images.clone();
        let wait = images.wait_for(|a| a.applied_index >= index);
        let result = tokio::time::timeout_at(deadline.into(), wait)
            .await
            .map(|r| r.map(|_| ()));
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ClusterError::Stopped(
                "the state machine stopped publishing images".into(),
            )),
            Err(_) => Err(ClusterError::NotApplied {
                index,
                waited: started.elapsed(),
            }),
        }
    }

    /// The metadata image this node has applied. Cheap: a shared pointer.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().image.clone()
    }

    /// A receiver of every image this node applies (with its Raft index). Its current value
    /// counts as seen only after `borrow_and_update`.
    pub fn subscribe(&self) -> watch::Receiver<AppliedImage> {
        self.images.clone()
    }

    /// The leader (the controller, in Kafka's terms), if one is known.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.judge.leader(&self.node.status())
    }

    /// Whether this node is the leader (with `check_quorum`: one a majority acknowledged
    /// within the maximum election timeout).
    pub fn is_leader(&self) -> bool {
        self.leader_id() == Some(self.judge.id)
    }

    /// The quorum as this node sees it; complete on the leader.
    pub fn quorum(&self) -> QuorumInfo {
        let s = self.node.status();
        let leading = s.role == Role::Leader;
        let contacts = self.node.last_contacts();
        let now = Instant::now();
        let voters = s
            .voters
            .iter()
            .map(|&id| {
                let own = id == self.judge.id;
                let matched_index = if leading {
                    s.matched.get(&id).copied().flatten().map(|(_, i)| i)
                } else if own {
                    s.last_log_index
                } else {
                    None
                };
                let last_contact_ms = if own {
                    Some(0)
                } else if leading {
                    contacts
                        .get(&id)
                        .map(|t| now.saturating_duration_since(*t).as_millis() as u64)
                } else {
                    None
                };
                VoterInfo {
                    id,
                    matched_index,
                    last_contact_ms,
                }
            })
            .collect();
        let by_quorum = if leading {
            quorum_commit(&s.voters, &s.matched, s.term)
        } else {
            None
        };
        QuorumInfo {
            leader_id: self.judge.leader(&s),
            term: s.term,
            commit_index: by_quorum.max(s.last_applied),
            voters,
        }
    }

    /// Fault injection (tests): cuts this node's Raft traffic in both directions, or
    /// restores it. The Kafka listener is not affected.
    pub fn set_cut_off(&self, cut: bool) {
        tracing::info!(
            node_id = self.judge.id,
            cut,
            "Raft traffic cut off (fault injection)"
        );
        self.node.set_cut_off(cut);
    }

    /// Makes this node start an election now (a voter with an up-to-date log wins it).
    pub async fn campaign(&self) -> Result<(), ClusterError> {
        self.node.campaign().await
    }

    /// Stops the Raft node and its listener. Idempotent.
    pub async fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.node.shutdown().await;
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut watcher) = watcher {
            // It ends by itself (logging a lost leadership) once the stopped core drops its
            // metrics; give it a moment, then stop it regardless.
            if tokio::time::timeout(Duration::from_secs(1), &mut watcher)
                .await
                .is_err()
            {
                watcher.abort();
            }
        }
        tracing::info!(node_id = self.judge.id, "Raft node stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_needs_a_majority_and_an_entry_of_the_current_term() {
        let voters = [1, 2, 3];
        let m = |v: &[(u64, Option<(u64, u64)>)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        let matched = m(&[(1, Some((2, 10))), (2, Some((2, 8))), (3, None)]);
        assert_eq!(quorum_commit(&voters, &matched, 2), Some(8));
        // The majority's entry is from an older term: not committed by this rule.
        let matched = m(&[(1, Some((3, 10))), (2, Some((2, 8))), (3, Some((1, 2)))]);
        assert_eq!(quorum_commit(&voters, &matched, 3), None);
        let matched = m(&[(1, Some((2, 10)))]);
        assert_eq!(quorum_commit(&voters, &matched, 2), None);
        assert_eq!(quorum_commit(&[1], &m(&[(1, Some((1, 4)))]), 1), Some(4));
    }
}
