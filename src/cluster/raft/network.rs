//! The client side of the Raft transport: openraft's `RaftNetworkFactory` / `RaftNetwork` over
//! TCP, and the `Forward` RPC a follower uses to hand a proposal to the leader.
//!
//! Connections are pooled per peer (keyed by node id and address): an RPC takes an idle
//! connection or dials a new one, and puts it back only after a complete exchange. A
//! connection that failed in any way is dropped, so the next RPC reconnects.
//!
//! Error classes, which decide what openraft and the manager may do next:
//! - could not connect (or the peer is another node): the request never left; openraft backs
//!   off ([`RPCError::Unreachable`]), a proposal may be retried;
//! - sent but no complete answer (I/O error, timeout): the request may have been processed;
//!   openraft retries its idempotent RPCs, a proposal is reported as ambiguous, never retried;
//! - an answer carrying a Raft error: passed to openraft as a remote error.
//!
//! Invariant: no pool lock is held across an `.await`; timeouts bound every RPC.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::RPCTypes;
use tokio::net::TcpStream;

use super::types::{CommandResponse, Node, NodeId, TypeConfig};
use super::wire::{self, ForwardRefusal, RequestEnvelope, RpcRequest, RpcResponse, WireError};
use crate::metadata::MetadataCommand;

/// Idle connections kept per peer.
const MAX_IDLE_PER_PEER: usize = 4;

/// Why an RPC got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The request was not sent.
    #[error("could not connect to node {target} at {addr}: {reason}")]
    Unreachable {
        target: NodeId,
        addr: String,
        reason: String,
    },
    /// The request may have been delivered; its answer was lost.
    #[error("the connection to node {target} at {addr} failed during the request: {source}")]
    Network {
        target: NodeId,
        addr: String,
        #[source]
        source: WireError,
    },
    /// The request may have been delivered; no answer came in time.
    #[error("node {target} at {addr} did not answer within {timeout:?}")]
    Timeout {
        target: NodeId,
        addr: String,
        timeout: Duration,
    },
    /// The request is above the frame limit and was not sent.
    #[error("a request to node {target} of {bytes} bytes is above the frame limit")]
    TooLarge { target: NodeId, bytes: usize },
    /// The address answered as another node: the request was not processed.
    #[error(
        "{addr} answered as node {actual}, not node {expected}; check cluster.initial_members \
         on every node"
    )]
    WrongNode {
        addr: String,
        expected: NodeId,
        actual: NodeId,
    },
}

/// Idle connections per peer and the last time each peer answered.
pub struct Pool {
    me: NodeId,
    connect_timeout: Duration,
    idle: Mutex<HashMap<(NodeId, String), Vec<TcpStream>>>,
    contacts: Mutex<HashMap<NodeId, Instant>>,
    /// Fault injection: while set, no request leaves this node (shared with the server,
    /// which drops every request that arrives), as if its Raft port were cut off.
    cut_off: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    /// A pool for node `me`; connecting gives up after `connect_timeout`.
    pub fn new(me: NodeId, connect_timeout: Duration, cut_off: Arc<AtomicBool>) -> Pool {
        Pool {
            me,
            connect_timeout,
            idle: Mutex::new(HashMap::new()),
            contacts: Mutex::new(HashMap::new()),
            cut_off,
        }
    }

    /// When each peer last answered an RPC from this node.
    pub fn last_contacts(&self) -> HashMap<NodeId, Instant> {
        lock(&self.contacts).clone()
    }

    /// Drops every idle connection (on shutdown).
    pub fn clear(&self) {
        lock(&self.idle).clear();
    }

    fn take(&self, target: NodeId, addr: &str) -> Option<TcpStream> {
        lock(&self.idle)
            .get_mut(&(target, addr.to_string()))
            .and_then(|v| v.pop())
    }

    fn put(&self, target: NodeId, addr: &str, stream: TcpStream) {
        let mut idle = lock(&self.idle);
        let list = idle.entry((target, addr.to_string())).or_default();
        if list.len() < MAX_IDLE_PER_PEER {
            list.push(stream);
        }
    }

    async fn connect(&self, target: NodeId, addr: &str) -> Result<TcpStream, CallError> {
        let unreachable = |reason: String| CallError::Unreachable {
            target,
            addr: addr.to_string(),
            reason,
        };
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable(format!("no connection within {:?}", self.connect_timeout)))?
            .map_err(|e| unreachable(e.to_string()))?;
        // Small request/response messages: do not wait to coalesce them.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Sends `body` to `target` at `addr` and waits for the answer, at most `timeout` for the
    /// exchange (plus the connect timeout). `fresh` skips pooled connections, so that a failure
    /// to connect proves the request was not delivered.
    pub async fn call(
        &self,
        target: NodeId,
        addr: &str,
        body: RpcRequest,
        timeout: Duration,
        fresh: bool,
    ) -> Result<RpcResponse, CallError> {
        if self.cut_off.load(Ordering::SeqCst) {
            self.clear();
            return Err(CallError::Unreachable {
                target,
                addr: addr.to_string(),
                reason: "this node is cut off from its peers (fault injection)".into(),
            });
        }
        let frame = wire::encode(&RequestEnvelope {
            to: target,
            from: self.me,
            body,
        })
        .map_err(|e| match e {
            WireError::TooLarge(bytes) => CallError::TooLarge { target, bytes },
            other => CallError::Network {
                target,
                addr: addr.to_string(),
                source: other,
            },
        })?;
        let pooled = if fresh { None } else { self.take(target, addr) };
        let mut stream = match pooled {
            Some(s) => s,
            None => self.connect(target, addr).await?,
        };
        let exchange = async {
            wire::write_frame(&mut stream, &frame).await?;
            wire::read_frame::<_, RpcResponse>(&mut stream).await
        };
        let response = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Err(CallError::Timeout {
                    target,
                    addr: addr.to_string(),
                    timeout,
                })
            }
            Ok(Err(source)) => {
                return Err(CallError::Network {
                    target,
                    addr: addr.to_string(),
                    source,
                })
            }
            Ok(Ok(r)) => r,
        };
        if let RpcResponse::WrongNode { expected, actual } = response {
            return Err(CallError::WrongNode {
                addr: addr.to_string(),
                expected,
                actual,
            });
        }
        lock(&self.contacts).insert(target, Instant::now());
        self.put(target, addr, stream);
        Ok(response)
    }

    /// Hands `command` to `target` (believed to be the leader) and returns its answer.
    pub async fn forward(
        &self,
        target: NodeId,
        addr: &str,
        command: MetadataCommand,
        timeout: Duration,
    ) -> Result<Result<CommandResponse, ForwardRefusal>, CallError> {
        match self
            .call(target, addr, RpcRequest::Forward(command), timeout, true)
            .await?
        {
            RpcResponse::Forward(r) => Ok(r),
            other => Err(unexpected(target, addr, &other)),
        }
    }
}

fn unexpected(target: NodeId, addr: &str, got: &RpcResponse) -> CallError {
    let kind = match got {
        RpcResponse::AppendEntries(_) => "AppendEntries",
        RpcResponse::Vote(_) => "Vote",
        RpcResponse::InstallSnapshot(_) => "InstallSnapshot",
        RpcResponse::Forward(_) => "Forward",
        RpcResponse::WrongNode { .. } => "WrongNode",
    };
    CallError::Network {
        target,
        addr: addr.to_string(),
        source: WireError::Decode(format!("an unexpected {kind} answer")),
    }
}

/// openraft's network factory: one [`PeerClient`] per replication stream or vote.
#[derive(Clone)]
pub struct NetworkFactory {
    pool: Arc<Pool>,
    backoff: Duration,
}

impl NetworkFactory {
    /// A factory over `pool`; after a peer was unreachable, openraft waits `backoff` before
    /// trying it again.
    pub fn new(pool: Arc<Pool>, backoff: Duration) -> NetworkFactory {
        NetworkFactory { pool, backoff }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            pool: self.pool.clone(),
            target,
            addr: node.addr.clone(),
            backoff: self.backoff,
        }
    }
}

/// The RPCs of one replication stream (or one vote) to one peer.
pub struct PeerClient {
    pool: Arc<Pool>,
    target: NodeId,
    addr: String,
    backoff: Duration,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl PeerClient {
    fn rpc_error<E: std::error::Error>(
        &self,
        e: CallError,
        action: RPCTypes,
        entries: usize,
    ) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
        match e {
            CallError::Unreachable { .. } | CallError::WrongNode { .. } => {
                RPCError::Unreachable(Unreachable::new(&e))
            }
            CallError::Timeout { timeout, .. } => RPCError::Timeout(Timeout {
                action,
                id: self.pool.me,
                target: self.target,
                timeout,
            }),
            CallError::TooLarge { .. } if action == RPCTypes::AppendEntries && entries > 1 => {
                RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint((entries / 2) as u64).with_source_error(&e),
                )
            }
            CallError::TooLarge { .. } | CallError::Network { .. } => {
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let entries = rpc.entries.len();
        let body = RpcRequest::AppendEntries(rpc);
        let answer = self
            .pool
            .call(self.target, &self.addr, body, option.hard_ttl(), false)
            .await
            .map_err(|e| self.rpc_error(e, RPCTypes::AppendEntries, entries))?;
        match answer {
            RpcResponse::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.rpc_error(
                unexpected(self.target, &self.addr, &other),
                RPCTypes::AppendEntries,
                entries,
            )),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let body = RpcRequest::InstallSnapshot(rpc);
        let answer = self
            .pool
            .call(self.target, &self.addr, body, option.hard_ttl(), false)
            .await
            .map_err(|e| self.rpc_error(e, RPCTypes::InstallSnapshot, 0))?;
        match answer {
            RpcResponse::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.rpc_error(
                unexpected(self.target, &self.addr, &other),
                RPCTypes::InstallSnapshot,
                0,
            )),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let body = RpcRequest::Vote(rpc);
        let answer = self
            .pool
            .call(self.target, &self.addr, body, option.hard_ttl(), false)
            .await
            .map_err(|e| self.rpc_error(e, RPCTypes::Vote, 0))?;
        match answer {
            RpcResponse::Vote(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.rpc_error(
                unexpected(self.target, &self.addr, &other),
                RPCTypes::Vote,
                0,
            )),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}
