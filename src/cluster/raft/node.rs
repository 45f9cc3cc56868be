//! One running Raft node: storage, the openraft core, the peer listener and the peer pool,
//! behind an API with no openraft types in it (the manager's only way into Raft).
//!
//! Bootstrap, as KRaft does with a static voter set: every node derives the same initial
//! membership from `initial_members`, and a node whose storage is pristine (no log entry, no
//! vote) calls openraft's `initialize` with it. openraft writes that membership as entry 0 with
//! the smallest log id, identical on every node, and refuses `initialize` on a node that has
//! any log or vote, so nodes may bootstrap in any order, concurrently or after the cluster has
//! formed; the vote then elects one leader. (openraft documents initialization of several
//! nodes with the same membership as safe, and with different ones as split-brain: every node
//! must list the same `initial_members`.)
//!
//! Invariants: timings come from the cluster config (election timeout in `[e, 2e)`, heartbeat
//! below it); a failed start shuts down whatever it already started; `shutdown` stops the
//! listener (the port is free when it returns) and the openraft core.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, RaftMetrics, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::log_store::LogStore;
use super::network::{CallError, NetworkFactory, Pool};
use super::server::serve;
use super::state_machine::{AppliedImage, ClusterStateMachine};
use super::types::{CommandResponse, Node, NodeId, Raft};
use super::wire::ForwardRefusal;
use crate::cluster::error::ClusterError;
use crate::metadata::MetadataCommand;

/// Largest chunk of snapshot data per InstallSnapshot RPC (JSON makes it up to ~4x on the wire).
const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;

/// How to start a node.
pub struct RaftOptions {
    pub node_id: NodeId,
    /// The initial voters and their Raft addresses (must be the same on every node).
    pub members: BTreeMap<NodeId, String>,
    /// Where the log (`raft-log/`) and the snapshot (`raft-sm/`) live.
    pub data_dir: PathBuf,
    /// Minimum election timeout; openraft picks each timeout in `[e, 2e)`.
    pub election_timeout: Duration,
    pub heartbeat: Duration,
    /// Entries between snapshots.
    pub snapshot_entries: u64,
    /// Entries kept in the log behind a snapshot.
    pub compaction_overhead: u64,
    /// The bound listener for peers; `None` runs without one (a single voter).
    pub listener: Option<TcpListener>,
}

/// What a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Candidate,
    Follower,
    Learner,
    Stopped,
}

/// A point-in-time view of the node.
#[derive(Debug, Clone)]
pub struct RaftStatus {
    pub role: Role,
    /// The leader this node knows of (itself included).
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    /// On the leader: how long ago a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// The voters of the effective membership, ascending.
    pub voters: Vec<NodeId>,
    /// Every member's Raft address.
    pub addresses: BTreeMap<NodeId, String>,
    /// On the leader: the (term, index) of the last entry known to be on each member.
    pub matched: BTreeMap<NodeId, Option<(u64, u64)>>,
    /// Why the node stopped, once it has.
    pub stopped: Option<String>,
}

fn status_of(m: &RaftMetrics<NodeId, Node>) -> RaftStatus {
    let role = match m.state {
        ServerState::Leader => Role::Leader,
        ServerState::Candidate => Role::Candidate,
        ServerState::Follower => Role::Follower,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Stopped,
    };
    let membership = m.membership_config.membership();
    RaftStatus {
        role,
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        last_applied: m.last_applied.map(|l| l.index),
        millis_since_quorum_ack: m.millis_since_quorum_ack,
        voters: membership.voter_ids().collect(),
        addresses: membership
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect(),
        matched: m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, l)| (*id, l.map(|l| (l.leader_id.term, l.index))))
                    .collect()
            })
            .unwrap_or_default(),
        stopped: match (&m.running_state, role) {
            (Err(e), _) => Some(e.to_string()),
            (Ok(()), Role::Stopped) => Some("shut down".into()),
            _ => None,
        },
    }
}

/// Status changes of a node.
pub struct StatusWatch {
    rx: watch::Receiver<RaftMetrics<NodeId, Node>>,
}

impl StatusWatch {
    /// The next status, or `None` once the node is gone.
    pub async fn changed(&mut self) -> Option<RaftStatus> {
        self.rx.changed().await.ok()?;
        let status = status_of(&self.rx.borrow_and_update());
        Some(status)
    }
}

/// Why a write (local or forwarded) did not produce an answer.
#[derive(Debug)]
pub enum WriteFailure {
    /// Not written: the node asked is not the leader; it names the leader it knows of.
    NotLeader { leader: Option<NodeId> },
    /// Not written: the leader could not be reached (or is stopping).
    Unreachable(String),
    /// Sent, but no answer came back: it may or may not commit.
    Ambiguous(String),
    /// Not written, and retrying will not help.
    Refused(String),
    /// This node's Raft core has stopped.
    Stopped(String),
}

/// A running Raft node.
pub struct RaftNode {
    id: NodeId,
    raft: Raft,
    pool: Arc<Pool>,
    /// Fault injection: drop every Raft message to and from this node.
    cut_off: Arc<AtomicBool>,
    images: watch::Receiver<AppliedImage>,
    shutdown: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
    local_addr: Option<SocketAddr>,
}

fn build_config(opts: &RaftOptions) -> Result<openraft::Config, ClusterError> {
    let election = u64::try_from(opts.election_timeout.as_millis()).unwrap_or(u64::MAX);
    let heartbeat = u64::try_from(opts.heartbeat.as_millis()).unwrap_or(u64::MAX);
    let config = openraft::Config {
        cluster_name: "broker-metadata".into(),
        election_timeout_min: election,
        election_timeout_max: election.saturating_mul(2),
        heartbeat_interval: heartbeat,
        install_snapshot_timeout: election.saturating_mul(4).max(2_000),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_entries.max(1)),
        max_in_snapshot_log_to_keep: opts.compaction_overhead,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        ..Default::default()
    };
    config.validate().map_err(|e| ClusterError::Config {
        field: "cluster.election_rtt",
        message: format!(
            "the Raft timings are not usable ({e}): election timeout {election} ms, heartbeat \
             {heartbeat} ms; keep heartbeat_rtt below election_rtt"
        ),
    })
}

fn stopped<E: std::fmt::Display>(e: E) -> ClusterError {
    ClusterError::Stopped(e.to_string())
}

impl RaftNode {
    /// Opens storage, starts openraft and the peer listener, and bootstraps a pristine node.
    pub async fn start(opts: RaftOptions) -> Result<RaftNode, ClusterError> {
        let config = Arc::new(build_config(&opts)?);
        let log_dir = opts.data_dir.join("raft-log");
        let sm_dir = opts.data_dir.join("raft-sm");
        let per_segment = opts.snapshot_entries.clamp(8, 4096);
        let task_dir = opts.data_dir.clone();
        let (log_store, state_machine) = tokio::task::spawn_blocking(move || {
            let log = LogStore::open(&log_dir, per_segment)?;
            let sm = ClusterStateMachine::open(&sm_dir)?;
            Ok::<_, ClusterError>((log, sm))
        })
        .await
        .map_err(|e| ClusterError::Task {
            path: task_dir,
            message: e.to_string(),
        })??;
        let images = state_machine.subscribe();

        let cut_off = Arc::new(AtomicBool::new(false));
        let pool = Arc::new(Pool::new(
            opts.node_id,
            opts.election_timeout,
            cut_off.clone(),
        ));
        // After a peer was unreachable, try it again within one election timeout.
        let network = NetworkFactory::new(
            pool.clone(),
            opts.election_timeout.min(Duration::from_millis(500)),
        );
        let raft = Raft::new(opts.node_id, config, network, log_store, state_machine)
            .await
            .map_err(stopped)?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut local_addr = None;
        let mut server = None;
        if let Some(listener) = opts.listener {
            local_addr = listener.local_addr().ok();
            server = Some(tokio::spawn(serve(
                listener,
                raft.clone(),
                opts.node_id,
                cut_off.clone(),
                shutdown_rx,
            )));
        }
        let node = RaftNode {
            id: opts.node_id,
            raft,
            pool,
            cut_off,
            images,
            shutdown,
            server: Mutex::new(server),
            local_addr,
        };
        if let Err(e) = node.bootstrap(&opts.members).await {
            node.shutdown().await;
            return Err(e);
        }
        Ok(node)
    }

    async fn bootstrap(&self, members: &BTreeMap<NodeId, String>) -> Result<(), ClusterError> {
        let wanted: BTreeSet<NodeId> = members.keys().copied().collect();
        if !self.raft.is_initialized().await.map_err(stopped)? {
            let nodes: BTreeMap<NodeId, Node> = members
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            match self.raft.initialize(nodes).await {
                Ok(()) => tracing::info!(
                    node_id = self.id,
                    voters = ?wanted,
                    "bootstrapped the Raft log with the initial members"
                ),
                // Another path (a peer's vote or entries) initialized it first: fine.
                Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                    tracing::debug!(reason = %e, "the Raft log was already initialized")
                }
                Err(RaftError::APIError(InitializeError::NotInMembers(e))) => {
                    return Err(ClusterError::Config {
                        field: "cluster.initial_members",
                        message: e.to_string(),
                    })
                }
                Err(RaftError::Fatal(e)) => return Err(stopped(e)),
            }
            return Ok(());
        }
        let stored: BTreeSet<NodeId> = self
            .raft
            .with_raft_state(|st| {
                st.membership_state
                    .effective()
                    .membership()
                    .voter_ids()
                    .collect()
            })
            .await
            .map_err(stopped)?;
        if stored != wanted {
            tracing::warn!(
                stored = ?stored,
                configured = ?wanted,
                "the Raft log's membership differs from cluster.initial_members; the log wins \
                 (initial_members only bootstraps a new cluster)"
            );
        }
        // No election is triggered here: a node whose committed vote is its own (a single voter
        // always) resumes as leader at startup, and forcing a new election on a leader races
        // with its in-flight writes in openraft 0.9 (the new term's first entry can land on an
        // index the old term just used, which the log store refuses).
        Ok(())
    }

    /// The address the peer listener is bound to, if it runs.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The node's current status.
    pub fn status(&self) -> RaftStatus {
        let metrics = self.raft.metrics();
        let status = status_of(&metrics.borrow());
        status
    }

    /// A stream of status changes.
    pub fn watch_status(&self) -> StatusWatch {
        StatusWatch {
            rx: self.raft.metrics(),
        }
    }

    /// The images this node applies.
    pub fn images(&self) -> watch::Receiver<AppliedImage> {
        self.images.clone()
    }

    /// When each peer last answered this node.
    pub fn last_contacts(&self) -> HashMap<NodeId, Instant> {
        self.pool.last_contacts()
    }

    /// Fault injection (tests): with `cut` set, this node sends no Raft message and answers
    /// none, as a network partition of its Raft port would; unset, traffic resumes.
    pub fn set_cut_off(&self, cut: bool) {
        self.cut_off.store(cut, Ordering::SeqCst);
        if cut {
            self.pool.clear();
        }
    }

    /// Starts an election on this node now, as its election timeout would.
    pub async fn campaign(&self) -> Result<(), ClusterError> {
        self.raft.trigger().elect().await.map_err(stopped)
    }

    /// Appends `command` through this node, which must be the leader; returns once the leader
    /// applied it.
    pub async fn write(&self, command: MetadataCommand) -> Result<CommandResponse, WriteFailure> {
        match self.raft.client_write(command).await {
            Ok(written) => Ok(written.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(WriteFailure::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::APIError(e)) => Err(WriteFailure::Refused(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(WriteFailure::Stopped(e.to_string())),
        }
    }

    /// Hands `command` to node `target` (believed to be the leader).
    pub async fn forward(
        &self,
        target: NodeId,
        command: MetadataCommand,
        timeout: Duration,
    ) -> Result<CommandResponse, WriteFailure> {
        let Some(addr) = self.status().addresses.get(&target).cloned() else {
            return Err(WriteFailure::Unreachable(format!(
                "node {target} has no known Raft address"
            )));
        };
        match self.pool.forward(target, &addr, command, timeout).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(ForwardRefusal::NotLeader { leader })) => {
                Err(WriteFailure::NotLeader { leader })
            }
            Ok(Err(ForwardRefusal::Stopped(reason))) => Err(WriteFailure::Unreachable(format!(
                "node {target} is stopping: {reason}"
            ))),
            Err(e @ (CallError::Unreachable { .. } | CallError::WrongNode { .. })) => {
                Err(WriteFailure::Unreachable(e.to_string()))
            }
            Err(e @ CallError::TooLarge { .. }) => Err(WriteFailure::Refused(e.to_string())),
            Err(e @ (CallError::Network { .. } | CallError::Timeout { .. })) => {
                Err(WriteFailure::Ambiguous(e.to_string()))
            }
        }
    }

    /// Stops the listener (its port is free when this returns) and the openraft core.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(server) = server {
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "the Raft listener task failed");
            }
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "the Raft core did not stop cleanly");
        }
        self.pool.clear();
    }
}

impl Drop for RaftNode {
    /// Without `shutdown`, at least stop serving peers; the core stops once its last handle
    /// (held by this node and the connection tasks) is gone.
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}
