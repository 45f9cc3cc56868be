//! Cluster metadata: topics, partitions, configs, brokers and leader epochs, as data.
//! Of the rest of the crate it imports only the topic config key names (the `config`
//! module): the Raft layer (the `cluster` module) depends on it, never the other way round.
//!
//! Nothing changes the metadata except applying a [`MetadataCommand`] to the
//! [`MetadataImage`]; the metadata service (`Metadata`, in the `cluster` module) commits each command
//! through Raft first, so every node applies the same commands in the same order. Handlers
//! read an immutable snapshot of the image and propose commands; they never mutate state
//! directly.
pub mod command;
pub mod image;

pub use command::{MetadataCommand, PartitionAssignment};
pub use image::{ApplyError, BrokerInfo, MetadataImage, PartitionImage, TopicImage};
