//! The Raft core of the cluster, on openraft; the only module that names openraft.
//!
//! Why openraft `=0.9.21` with `storage-v2`: 0.9 is openraft's stable line (0.10 is still
//! alpha and reshapes the storage and network traits between releases); `storage-v2` is the
//! 0.9 storage API (`RaftLogStorage` + `RaftStateMachine`, an asynchronous flush callback for
//! appends) that 0.10 keeps, so the stores written here carry over. The pin is exact and
//! everything openraft-specific stays in this module, so an upgrade touches one place.
//!
//! Parts (one job each):
//! - [`types`]: the type configuration (`MetadataCommand` in, [`CommandResponse`] out).
//! - `log_disk` / [`log_store`]: the durable log and vote (segment files, fsync before ack).
//! - [`state_machine`]: `ClusterStateMachine`, its snapshots and the published image.
//! - `wire` / `network` / `server`: the TCP transport (length-prefixed JSON frames, a
//!   connection pool per peer, the `Forward` RPC for proposals from followers).
//! - `node`: a running node behind an API without openraft types, used by the manager.
pub mod log_disk;
pub mod log_store;
mod network;
mod node;
mod server;
pub mod state_machine;
pub mod types;
mod wire;

pub use log_disk::LogStoreError;
pub use node::{RaftNode, RaftOptions, RaftStatus, Role, StatusWatch, WriteFailure};
pub use state_machine::{AppliedImage, SnapshotError};
pub use types::{CommandResponse, NodeId};

#[cfg(test)]
mod storage_suite;
