//! Cluster metadata: topics, partitions, configs, brokers and leader epochs.
//!
//! Nothing changes the metadata except applying a [`MetadataCommand`] to the
//! [`MetadataImage`]; the [`Metadata`] service commits each command through Raft first
//! (`crate::cluster`), so every node applies the same commands in the same order. Handlers
//! read an immutable snapshot of the image and propose commands; they never mutate state
//! directly.
pub mod command;
pub mod image;
pub mod service;

pub use command::{MetadataCommand, PartitionAssignment};
pub use image::{ApplyError, BrokerInfo, MetadataImage, PartitionImage, TopicImage};
pub use service::{Metadata, ProposeError};
