//! Replication of partition data, after Kafka's ReplicaManager: this module owns the
//! partitions hosted here ([`PartitionRegistry`], [`Partition`]) and their roles.
//! Followers pull from the partition leader with Fetch requests carrying their replica id,
//! over the leader's ordinary Kafka port.
//!
//! - [`partition`]: one hosted partition; every log write (leader append, follower append,
//!   truncation) and the role and log locks are there.
//! - [`registry`]: the hosted partitions by name; opens, recovers and deletes their logs.
//! - [`manager`]: [`ReplicaManager`], roles from each new metadata image, the follower
//!   fetchers, ISR changes proposed to the controller.
//! - [`leader`]: what the leader knows of its followers (high watermark, ISR rules).
//! - `fetcher` / `client`: the follower side, one fetcher task per leader broker.
//! - [`checkpoint`]: the high-watermark checkpoint file.
//!
//! Roles come from the metadata image: the broker named leader leads in the image's leader
//! epoch (recorded in the log's epoch history as it takes over); every other replica
//! follows that leader. The high watermark is the smallest log end offset over the in-sync
//! replicas; consumers read below it and acks=all waits for it ([`CommitHandle`]). ISR
//! changes are `AlterPartition` commands carrying the leader and partition epochs, so a
//! change from a stale view is refused. Leader election when a broker is fenced happens in
//! the metadata image itself.
//!
//! Depends on `log`, `metadata`, `config`; nothing here knows the broker or the groups.

pub mod checkpoint;
pub(crate) mod client;
mod fetcher;
pub mod leader;
pub mod manager;
pub mod partition;
pub mod registry;

pub use leader::LeaderState;
pub use manager::ReplicaManager;
pub use partition::{
    AppendError, Appended, CommitHandle, DeleteRecordsError, DeleteRecordsHandle, LogReader,
    Partition, ReplicaRole, RoleChange, Watermark,
};
pub use registry::{log_config, partition_dir, PartitionRegistry};

/// A partition's key: topic name and partition index.
pub(crate) type Key = (String, i32);
