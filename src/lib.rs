//! A Kafka-wire-compatible message broker.
//!
//! Map of the crate:
//! - [`config`]: the JSON configuration (the guide's format), its defaults and validation;
//!   the topic configs and the broker configs DescribeConfigs reports.
//! - [`log`]: per-partition segment logs on local disk (segments, indexes, recovery, retention).
//! - [`metadata`]: the metadata image (topics, partitions, epochs, configs) changed only by
//!   applying [`metadata::MetadataCommand`]s; data only, no I/O.
//! - [`cluster`]: the Raft cluster that commits those commands (`Manager`, the `Metadata`
//!   service handlers propose through) and the controller's duties (`cluster::controller`).
//! - [`server`]: the TCP listener and one task per connection (framing, in-order responses).
//! - [`handlers`]: one file per Kafka API family; typed request in, typed response out.
//! - [`group`]: consumer groups and committed offsets (`__consumer_offsets`).
//! - [`replication`]: the hosted partitions (registry, `Partition` with the one leader-append
//!   path), their roles, followers pulling from leaders, high watermarks, the ISR.
//! - [`broker`]: the composition root handlers work on; the reconcile task that applies each
//!   new image; topic administration.
//! - [`txn`]: the transaction coordinator (`__transaction_state`) and marker delivery.
//! - [`clock`]: wall-clock milliseconds.
//!
//! Dependencies point one way: `handlers`/`server` → `broker` → `group` → `replication` →
//! `log`; `broker`, `group` and `replication` propose through `cluster`; `cluster` →
//! `metadata` → `config`; nothing below `broker` knows it.
pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod fsutil;
pub mod group;
pub mod handlers;
pub mod log;
pub mod metadata;
pub mod replication;
pub mod server;
pub mod txn;
