//! The Raft transport's messages and framing.
//!
//! A message is a frame: a `u32` big-endian length, then that many bytes of JSON. One
//! connection carries one request at a time: the client writes a [`RequestEnvelope`] and reads
//! one [`RpcResponse`]. Frames above [`MAX_FRAME_BYTES`] are refused on both ends, before any
//! buffer of the claimed size is allocated.
//!
//! Every request names the node it is meant for (`to`); a node answers a request meant for
//! another id with [`RpcResponse::WrongNode`] instead of acting on it, so a wrong address in
//! `initial_members` cannot make node A vote on node B's behalf.
//!
//! Cancellation: [`read_frame`] and [`write_frame`] are not cancellation-safe (a cancelled read
//! leaves the stream mid-frame); a caller that cancels one must drop the connection.

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::types::{CommandResponse, NodeId, TypeConfig};
use crate::metadata::MetadataCommand;

/// The largest frame either end sends or accepts.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Why a frame could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {0} bytes is above the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge(usize),
    #[error("the peer sent a message that does not decode: {0}")]
    Decode(String),
    #[error("could not encode a message: {0}")]
    Encode(String),
}

/// A request and the node it is meant for.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// The id of the node the sender believes it is talking to.
    pub to: NodeId,
    /// The sender's id (for logs).
    pub from: NodeId,
    pub body: RpcRequest,
}

/// The requests between nodes: openraft's three, and one of ours.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A follower hands a proposal to the node it believes is the leader.
    Forward(MetadataCommand),
}

/// Why a forwarded proposal was not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardRefusal {
    /// The receiver is not the leader (any more); it names the leader it knows of. The
    /// proposal was not appended to the log (or was removed from it), so it is safe to retry.
    NotLeader { leader: Option<NodeId> },
    /// The receiver's Raft node failed or stopped.
    Stopped(String),
}

/// The answers, one per request kind.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Forward(Result<CommandResponse, ForwardRefusal>),
    /// The request was meant for another node id.
    WrongNode {
        expected: NodeId,
        actual: NodeId,
    },
}

/// Serializes `msg` into a frame (length prefix included), refusing oversized ones.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, msg).map_err(|e| WireError::Encode(e.to_string()))?;
    let len = buf.len() - 4;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(len));
    }
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Writes an encoded frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), WireError> {
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame and decodes it.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> Result<T, WireError> {
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf).map_err(|e| WireError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversized_frames_are_refused_before_allocation() {
        let mut bytes: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let r: Result<RpcResponse, _> = read_frame(&mut bytes).await;
        assert!(matches!(r, Err(WireError::TooLarge(_))));
    }

    #[tokio::test]
    async fn a_forward_round_trips() {
        let req = RequestEnvelope {
            to: 2,
            from: 1,
            body: RpcRequest::Forward(MetadataCommand::InitCluster {
                cluster_id: "c".into(),
            }),
        };
        let frame = encode(&req).unwrap();
        let mut r: &[u8] = &frame;
        let back: RequestEnvelope = read_frame(&mut r).await.unwrap();
        assert_eq!(back.to, 2);
        assert!(matches!(
            back.body,
            RpcRequest::Forward(MetadataCommand::InitCluster { .. })
        ));
        let mut garbage: &[u8] = &[0, 0, 0, 2, b'{', b'x'];
        let r: Result<RequestEnvelope, _> = read_frame(&mut garbage).await;
        assert!(matches!(r, Err(WireError::Decode(_))));
    }
}
