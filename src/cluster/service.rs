//! The metadata service the broker talks to: read the current image, watch it change, and
//! propose commands. Behind it sits the Raft cluster (`crate::cluster::Manager`): on a
//! single node a one-voter cluster, through the same code path as three nodes.
//!
//! Invariant: `propose` returns only after the command is committed and applied on this
//! node, so the caller's next `image()` shows its change.

use std::sync::Arc;

use super::{AppliedImage, ClusterError, Manager, QuorumInfo};
use crate::metadata::{ApplyError, MetadataCommand, MetadataImage};

/// The broker's view of the cluster metadata. Clones share one Raft manager.
#[derive(Clone)]
pub struct Metadata {
    raft: Arc<Manager>,
}

/// Why a proposal was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("the metadata quorum did not take the change: {0}")]
    Cluster(#[from] ClusterError),
}

impl Metadata {
    /// Metadata replicated by this node's Raft manager.
    pub fn raft(raft: Arc<Manager>) -> Metadata {
        Metadata { raft }
    }

    /// The current image. Cheap: a shared pointer.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.raft.image()
    }

    /// Changes whenever the image does.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<AppliedImage> {
        self.raft.subscribe()
    }

    /// Commits `command` through Raft (forwarded to the leader from a follower) and waits
    /// until this node applied it; the image right after.
    pub async fn propose(
        &self,
        command: MetadataCommand,
    ) -> Result<Arc<MetadataImage>, ProposeError> {
        self.propose_at(command).await.map(|(_, image)| image)
    }

    /// [`propose`](Self::propose), also returning the Raft index the command was applied
    /// at (to wait until this broker acted on it, see `Reconciler::wait_reconciled`).
    pub async fn propose_at(
        &self,
        command: MetadataCommand,
    ) -> Result<(u64, Arc<MetadataImage>), ProposeError> {
        let (index, applied) = self.raft.propose(command).await?;
        applied?;
        Ok((index, self.raft.image()))
    }

    /// The controller: the Raft leader's node id, when there is one.
    pub fn controller_id(&self) -> Option<i32> {
        self.raft.leader_id().and_then(|id| i32::try_from(id).ok())
    }

    /// Leader, term, commit index and voters, for DescribeQuorum.
    pub fn quorum(&self) -> QuorumInfo {
        self.raft.quorum()
    }

    /// Whether this node is the Raft leader (the controller).
    pub fn is_controller(&self) -> bool {
        self.raft.is_leader()
    }

    /// Fault injection for tests: drops every Raft message to and from this node (`true`),
    /// as a network partition of its Raft port would, or lets them through again (`false`).
    pub fn cut_off_raft(&self, cut: bool) {
        self.raft.set_cut_off(cut);
    }

    /// Makes this node start a Raft election now (tests that need a given controller).
    pub async fn campaign(&self) -> Result<(), ClusterError> {
        self.raft.campaign().await
    }

    /// Stops the Raft node (clean shutdown).
    pub async fn shutdown(&self) {
        self.raft.shutdown().await;
    }
}
