//! A Kafka-wire-compatible message broker.
//!
//! Map of the crate:
//! - [`config`]: the JSON configuration (the guide's format), its defaults and validation;
//!   the topic configs and the broker configs DescribeConfigs reports.
//! - [`log`]: per-partition segment logs on local disk (segments, indexes, recovery, retention).
//! - [`metadata`]: the metadata image (topics, partitions, epochs, configs) changed only by
//!   applying [`metadata::MetadataCommand`]s, persisted so it survives restarts.
//! - [`server`]: the TCP listener and one task per connection (framing, in-order responses).
//! - [`handlers`]: one file per Kafka API family; typed request in, typed response out.
//! - [`group`]: consumer groups and committed offsets (`__consumer_offsets`).
//! - [`replication`]: followers pulling from partition leaders, high watermarks, the ISR.
//! - [`broker`]: the shared state handlers work on (logs, metadata, groups).
pub mod broker;
pub mod cluster;
pub mod config;
pub mod fsutil;
pub mod group;
pub mod handlers;
pub mod log;
pub mod metadata;
pub mod replication;
pub mod server;
