//! The server side of the Raft transport: accepts peers on `raft_address` and answers their
//! requests by calling the local openraft node.
//!
//! One task per connection; a connection carries one request at a time (peers open more
//! connections for concurrency). `Forward` runs `client_write` on this node: if this node is
//! not the leader the answer names the leader it knows of, and nothing was appended.
//!
//! Invariants: a request addressed to another node id is answered with `WrongNode` and not
//! acted on; a frame above the size limit or that does not decode closes the connection;
//! shutdown (the watch flips to `true` or its sender is dropped) stops the accept loop, which
//! drops the listener, and every connection task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::types::{NodeId, Raft};
use super::wire::{self, ForwardRefusal, RequestEnvelope, RpcRequest, RpcResponse};

/// Resolves once shutdown is requested (or its sender is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serves peers until `shutdown` fires. While `cut_off` is set (fault injection), every
/// connection is closed before its request is acted on, as if the port were unreachable.
pub async fn serve(
    listener: TcpListener,
    raft: Raft,
    me: NodeId,
    cut_off: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            _ = stopping(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "Raft peer connected");
                    tokio::spawn(connection(stream, raft.clone(), me, cut_off.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::warn!(error = %e, "could not accept a Raft connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
    tracing::debug!("Raft listener stopped");
}

async fn connection(
    stream: TcpStream,
    raft: Raft,
    me: NodeId,
    cut_off: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let request: RequestEnvelope = tokio::select! {
            _ = stopping(&mut shutdown) => return,
            r = wire::read_frame(&mut rd) => match r {
                Ok(r) => r,
                Err(wire::WireError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
                Err(e) => {
                    tracing::warn!(error = %e, "closing a Raft connection");
                    return;
                }
            },
        };
        if cut_off.load(Ordering::SeqCst) {
            return;
        }
        let response = tokio::select! {
            _ = stopping(&mut shutdown) => return,
            r = handle(&raft, me, request) => r,
        };
        let frame = match wire::encode(&response) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "could not encode a Raft answer");
                return;
            }
        };
        if let Err(e) = wire::write_frame(&mut wr, &frame).await {
            tracing::debug!(error = %e, "a Raft peer went away before its answer");
            return;
        }
    }
}

async fn handle(raft: &Raft, me: NodeId, request: RequestEnvelope) -> RpcResponse {
    if request.to != me {
        tracing::warn!(
            from = request.from,
            expected = request.to,
            me,
            "a peer sent a Raft request meant for another node; check cluster.initial_members"
        );
        return RpcResponse::WrongNode {
            expected: request.to,
            actual: me,
        };
    }
    match request.body {
        RpcRequest::AppendEntries(r) => RpcResponse::AppendEntries(raft.append_entries(r).await),
        RpcRequest::Vote(r) => RpcResponse::Vote(raft.vote(r).await),
        RpcRequest::InstallSnapshot(r) => {
            RpcResponse::InstallSnapshot(raft.install_snapshot(r).await)
        }
        RpcRequest::Forward(command) => {
            RpcResponse::Forward(match raft.client_write(command).await {
                Ok(written) => Ok(written.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Err(ForwardRefusal::NotLeader {
                        leader: f.leader_id,
                    })
                }
                Err(RaftError::APIError(e)) => Err(ForwardRefusal::Stopped(e.to_string())),
                Err(RaftError::Fatal(e)) => Err(ForwardRefusal::Stopped(e.to_string())),
            })
        }
    }
}
