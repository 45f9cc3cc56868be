//! The openraft type configuration of the cluster: what a log entry carries and what
//! applying it answers.
//!
//! - `D` (the application data of a log entry) is a [`MetadataCommand`]; its serde shape is
//!   already part of the on-disk format (see `crate::metadata::command`), so the Raft log and
//!   the wire reuse it unchanged.
//! - `R` (the answer to applying an entry) is a [`CommandResponse`]: the log index and whether
//!   the command applied. A command that does not apply is still a committed entry; its
//!   [`ApplyError`] travels back to the proposer, which may be on another node, so the
//!   response is serializable even though `ApplyError` itself is not (see [`apply_error_serde`]).
//! - Node ids are `u64`; a node is an [`openraft::BasicNode`] whose `addr` is its Raft address
//!   (`host:port`).
//!
//! Invariant: nothing in this file has behaviour; it only names types, so the network, the
//! stores and the manager can depend on it without depending on each other.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::metadata::{ApplyError, MetadataCommand};

/// A Raft node id. Broker ids (`i32`, never negative) convert losslessly.
pub type NodeId = u64;

/// A member of the cluster as Raft stores it: the address its Raft RPC listener answers on.
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// The openraft type configuration of the metadata cluster.
    pub TypeConfig:
        D = MetadataCommand,
        R = CommandResponse,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log id (term, leader, index) of this cluster.
pub type LogId = openraft::LogId<NodeId>;
/// A log entry of this cluster.
pub type Entry = openraft::Entry<TypeConfig>;
/// A vote (term, candidate, committed) of this cluster.
pub type Vote = openraft::Vote<NodeId>;
/// The membership as of some log id.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// What a snapshot covers.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// A storage failure reported to openraft.
pub type StorageError = openraft::StorageError<NodeId>;
/// The openraft node of this cluster.
pub type Raft = openraft::Raft<TypeConfig>;

/// The answer to applying one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// The Raft log index of the entry.
    pub index: u64,
    /// `Ok` when the command changed the image (or the entry carried no command), the reason
    /// otherwise; a command that does not apply leaves the image unchanged.
    #[serde(with = "apply_error_serde")]
    pub result: Result<(), ApplyError>,
}

/// Serde for `Result<(), ApplyError>` through a mirror of [`ApplyError`].
///
/// `ApplyError` lives in the metadata layer and does not derive serde. The mirror below is a
/// serde "remote" definition: the derive matches every variant of the real type, so adding a
/// variant to `ApplyError` fails to compile here until the mirror learns it.
pub mod apply_error_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    use crate::metadata::ApplyError;

    #[derive(Serialize, Deserialize)]
    #[serde(remote = "ApplyError")]
    enum ApplyErrorDef {
        TopicExists(String),
        UnknownTopic(String),
        TopicIdExists(Uuid),
        UnknownPartition(String, i32),
        StaleEpoch {
            topic: String,
            partition: i32,
            current: i32,
            new: i32,
        },
        StalePartitionState {
            topic: String,
            partition: i32,
            leader: i32,
            leader_epoch: i32,
            partition_epoch: i32,
        },
        InvalidIsr {
            topic: String,
            partition: i32,
            isr: Vec<i32>,
            reason: String,
        },
        ClusterIdSet,
        InvalidProducerIdBlock {
            next: i64,
            count: i64,
        },
    }

    #[derive(Serialize)]
    enum WireRef<'a> {
        Ok,
        Err(#[serde(with = "ApplyErrorDef")] &'a ApplyError),
    }

    #[derive(Deserialize)]
    enum Wire {
        Ok,
        Err(#[serde(with = "ApplyErrorDef")] ApplyError),
    }

    /// Serializes the result as `"Ok"` or `{"Err": <ApplyError>}`.
    pub fn serialize<S: Serializer>(
        result: &Result<(), ApplyError>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match result {
            Ok(()) => WireRef::Ok.serialize(serializer),
            Err(e) => WireRef::Err(e).serialize(serializer),
        }
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Result<(), ApplyError>, D::Error> {
        Ok(match Wire::deserialize(deserializer)? {
            Wire::Ok => Ok(()),
            Wire::Err(e) => Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_response_round_trips_every_outcome() {
        let cases = [
            Ok(()),
            Err(ApplyError::TopicExists("t".into())),
            Err(ApplyError::StaleEpoch {
                topic: "t".into(),
                partition: 3,
                current: 4,
                new: 2,
            }),
            Err(ApplyError::ClusterIdSet),
            Err(ApplyError::TopicIdExists(uuid::Uuid::new_v4())),
        ];
        for result in cases {
            let resp = CommandResponse { index: 7, result };
            let json = serde_json::to_vec(&resp).unwrap();
            let back: CommandResponse = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, resp);
        }
    }
}
