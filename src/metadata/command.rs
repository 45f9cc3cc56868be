//! Metadata commands: the only way topics, partitions, configs, brokers and epochs change.
//!
//! Commands are serialized (serde) into the metadata log, so their shape is part of the
//! on-disk format: add variants and optional fields, never change the meaning of old ones.
//! The Raft cluster replicates the same commands.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where one partition lives: its leader and replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub leader: i32,
    pub replicas: Vec<i32>,
    /// The initial in-sync replicas: the replicas that were live when it was placed (as
    /// Kafka does, so a fenced broker never starts in an ISR it has not caught up with).
    /// Absent in commands written before it existed, which meant every replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isr: Option<Vec<i32>>,
}

/// One change to the metadata image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataCommand {
    /// Sets the cluster id once, when the metadata log is created.
    InitCluster {
        cluster_id: String,
    },
    /// A broker announces the address clients should use (and is live again).
    RegisterBroker {
        id: i32,
        host: String,
        port: u16,
    },
    /// The controller stopped hearing from a broker: no new partitions go to it and its
    /// partitions have no leader until it returns.
    FenceBroker {
        id: i32,
    },
    /// A fenced broker answers again.
    UnfenceBroker {
        id: i32,
    },
    CreateTopic {
        name: String,
        topic_id: Uuid,
        partitions: Vec<PartitionAssignment>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
        topic_id: Uuid,
    },
    /// Appends partitions to a topic.
    CreatePartitions {
        name: String,
        new_partitions: Vec<PartitionAssignment>,
    },
    /// Sets and removes topic config overrides.
    AlterTopicConfigs {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// Moves a partition's leadership to a replica in its ISR (preferred leader election),
    /// always to a higher epoch.
    ChangeLeader {
        name: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
    },
    /// The partition leader changes the in-sync replica set (a follower fell behind or
    /// caught up). Applies only when `leader`, `leader_epoch` and `partition_epoch` are
    /// still the partition's, so a change made from a stale view is rejected.
    AlterPartition {
        name: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Gives broker `broker_id` the producer ids `[next_producer_id, next_producer_id +
    /// count)` of the image and moves `next_producer_id` past them, so no id is handed out
    /// twice, across restarts and brokers.
    AllocateProducerIds {
        broker_id: i32,
        count: i64,
    },
}
