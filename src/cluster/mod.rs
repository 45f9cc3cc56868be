//! The cluster: every broker is a Raft node, and the cluster metadata lives in
//! `ClusterStateMachine` (see the guide).
//!
//! - [`Manager`] (the guide's `cluster.Manager`) starts the node from the `cluster` config,
//!   bootstraps it from `initial_members`, watches leadership, routes proposals to the leader
//!   and keeps this broker's metadata image current.
//! - `raft` holds everything that knows openraft: the durable log, the state machine and its
//!   snapshots, and the TCP transport between nodes.
//!
//! Invariants:
//! - The metadata image changes only by applying committed [`MetadataCommand`]s in log order,
//!   on every node alike; a single node (`cluster.enabled` false) is a one-voter cluster on
//!   the same path.
//! - A proposal that returns `Ok` has committed and is visible in [`Manager::image`] on this
//!   node; an error says whether it was not proposed ([`ClusterError::NoLeader`]) or may still
//!   commit ([`ClusterError::Ambiguous`]).
//!
//! [`MetadataCommand`]: crate::metadata::MetadataCommand
pub mod controller;
mod error;
mod manager;
mod members;
mod raft;
mod service;

pub use error::ClusterError;
pub use manager::{Manager, QuorumInfo, VoterInfo};
pub use members::parse_members;
pub use raft::{AppliedImage, CommandResponse, NodeId};
pub use service::{Metadata, ProposeError};

#[cfg(test)]
mod cluster_tests;
