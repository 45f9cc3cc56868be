//! The cluster layer's error type, [`ClusterError`], and its one mapping to Kafka error codes.
//!
//! Invariants: every `Display` is a sentence an operator can act on; retriable failures
//! (no leader yet, a leader that went away before the proposal was sent) are told apart from
//! ambiguous ones (the proposal was sent and may still commit) and from fatal ones (storage).

use std::path::PathBuf;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use super::raft::{LogStoreError, SnapshotError};

/// Everything that can go wrong in `crate::cluster`.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The `cluster` section cannot start a node.
    #[error("invalid configuration {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },

    /// The Raft listener could not bind.
    #[error(
        "could not listen for Raft peers on {address}: {source}; check that cluster.raft_address \
         is a local address and that no other process uses the port"
    )]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },

    /// The Raft log or vote files failed.
    #[error(transparent)]
    LogStore(#[from] LogStoreError),

    /// The snapshot file failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),

    /// A blocking storage task could not run.
    #[error("the storage task for {} failed: {message}", path.display())]
    Task { path: PathBuf, message: String },

    /// The Raft node stopped (storage failure or shutdown); nothing more can be proposed.
    #[error("the Raft node has stopped ({0}); restart the broker")]
    Stopped(String),

    /// No leader was known for the whole proposal timeout. Nothing was proposed.
    #[error(
        "no Raft leader was available within {waited:?}; check that a majority of \
         cluster.initial_members is running and can reach each other on their raft_address"
    )]
    NoLeader { waited: Duration },

    /// The proposal reached the leader but no answer came back: it may or may not commit.
    #[error(
        "the proposal was sent to the Raft leader (node {leader}) but its outcome is unknown \
         ({reason}); read the metadata again before retrying"
    )]
    Ambiguous { leader: u64, reason: String },

    /// The proposal committed at `index`, but this node did not apply it in time.
    #[error(
        "the change committed at Raft index {index} but this node had not applied it after \
         {waited:?}; it will be visible once this node catches up with the leader"
    )]
    NotApplied { index: u64, waited: Duration },
}

impl ClusterError {
    /// True when retrying the same proposal later is safe and may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, ClusterError::NoLeader { .. })
    }

    /// The Kafka error a handler should answer with.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            ClusterError::NoLeader { .. } => ResponseError::NotController,
            ClusterError::Ambiguous { .. } | ClusterError::NotApplied { .. } => {
                ResponseError::RequestTimedOut
            }
            _ => ResponseError::UnknownServerError,
        }
    }
}
