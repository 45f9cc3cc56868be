//! Cluster metadata: topics, partitions, configs, brokers and leader epochs.
//!
//! Nothing changes the metadata except applying a [`MetadataCommand`] to the
//! [`MetadataImage`] through the [`MetadataStore`], which persists the command first.
//! Handlers read an immutable snapshot of the image and propose commands; they never
//! mutate state directly, so the Raft cluster can feed the same commands.
pub mod command;
pub mod image;
pub mod service;
pub mod store;

pub use command::{MetadataCommand, PartitionAssignment};
pub use image::{ApplyError, BrokerInfo, MetadataImage, PartitionImage, TopicImage};
pub use service::Metadata;
pub use store::{write_atomically, MetadataError, MetadataStore};
