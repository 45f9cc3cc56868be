//! Request handlers, one file per API family. Each takes the broker and a typed request
//! and returns a typed response (or none, for acks=0 produce); none touches the socket,
//! so each can be tested without TCP.
//!
//! Errors from storage or metadata are turned into the Kafka error code of the partition
//! or topic they concern; a handler never fails a whole request for one bad partition.

mod api_versions;
mod cluster;
mod configs;
mod delete_records;
mod describe_producers;
mod fetch;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod quorum;
mod topics;
mod txn;
mod write_txn_markers;

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use protocol::codec::Request;

use crate::broker::Broker;

/// Who sent a request: the connection's peer and the header's client id.
pub struct Context {
    pub peer: SocketAddr,
    pub client_id: String,
}

/// Handles one decoded request. `None` means no response is sent (acks=0 produce).
pub async fn dispatch(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    request: Request,
) -> Option<ResponseKind> {
    let version = request.version;
    let ctx = Context {
        peer,
        client_id: request
            .header
            .client_id
            .as_deref()
            .unwrap_or("")
            .to_string(),
    };
    let response = match request.body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(r, version)),
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::handle(broker, r, version).await)
        }
        RequestKind::Produce(r) => {
            return produce::handle(broker, r, version)
                .await
                .map(ResponseKind::Produce)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, r, version).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, version))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(topics::create(broker, r, version).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(topics::delete(broker, r, version).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, r, version).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(topics::create_partitions(broker, r, version).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, r, version))
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter(broker, r, version).await,
        ),
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter(broker, r, version).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(cluster::describe(broker, r, version))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r, version).await)
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r, version))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, r, version).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join(broker, &ctx, r, version).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(groups::sync(broker, r, version).await)
        }
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(broker, r, version)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave(broker, r, version)),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(groups::offset_commit(broker, r, version).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(groups::txn_offset_commit(broker, r, version).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(broker, r, version))
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(groups::list_groups(broker, r, version))
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe_groups(broker, r, version))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete_groups(broker, r, version))
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(groups::offset_delete(broker, r, version))
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(describe_producers::handle(broker, r))
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(write_txn_markers::handle(broker, r, version).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions_to_txn(broker, r, version).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets_to_txn(broker, r, version).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(broker, r, version).await),
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe_transactions(broker, r, version))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(txn::list_transactions(broker, r, version))
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(quorum::describe(broker, r, version))
        }
        other => {
            // The codec only decodes APIs in the version table; reaching this is a bug.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a decoded request");
            return None;
        }
    };
    Some(response)
}

/// Builds a `StrBytes` from a `String` (kafka-protocol's string type).
pub(crate) fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}

/// The error for a client's `current_leader_epoch` against the partition's: none when the
/// client sent -1 or the same epoch; FENCED_LEADER_EPOCH when the client's is older;
/// UNKNOWN_LEADER_EPOCH when it is newer than this broker knows.
pub(crate) fn leader_epoch_error(client_epoch: i32, partition_epoch: i32) -> Option<i16> {
    use kafka_protocol::error::ResponseError;
    if client_epoch < 0 || client_epoch == partition_epoch {
        None
    } else if client_epoch < partition_epoch {
        Some(ResponseError::FencedLeaderEpoch.code())
    } else {
        Some(ResponseError::UnknownLeaderEpoch.code())
    }
}

/// The partition and its leader epoch when this broker leads it; otherwise the error Kafka
/// gives: UNKNOWN_TOPIC_OR_PARTITION when the metadata has no such partition,
/// NOT_LEADER_OR_FOLLOWER when another broker leads it (clients refresh their metadata),
/// or when the image that made this broker its leader is not reconciled here yet (the
/// request path never opens a log; the client retries).
pub(crate) fn led_here(
    broker: &Broker,
    image: &crate::metadata::MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<(i32, Arc<crate::replication::Partition>), kafka_protocol::error::ResponseError> {
    use kafka_protocol::error::ResponseError;
    let p = image
        .topics
        .get(topic)
        .and_then(|t| {
            usize::try_from(partition)
                .ok()
                .and_then(|i| t.partitions.get(i))
        })
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    if p.leader != broker.node_id {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    let hosted = broker
        .partitions
        .get(topic, partition)
        .ok_or(ResponseError::NotLeaderOrFollower)?;
    Ok((p.leader_epoch, hosted))
}
