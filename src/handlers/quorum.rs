//! DescribeQuorum: the Raft metadata quorum as KRaft reports it, for
//! `kafka-metadata-quorum describe --status / --replication`. One topic,
//! `__cluster_metadata`, partition 0: the leader, the Raft term as the leader epoch, the
//! commit index as the high watermark, and each voter's log end and last contact. A
//! follower knows only its own progress; the leader knows every voter's.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};

use super::str_bytes;
use crate::broker::{now_ms, Broker};

const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn describe(
    broker: &Arc<Broker>,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let q = broker.metadata.quorum();
    let now = now_ms();
    let voters: Vec<ReplicaState> = q
        .voters
        .iter()
        .map(|v| {
            let contact = v.last_contact_ms.map_or(-1, |ms| now - ms as i64);
            let mut r = ReplicaState::default()
                .with_replica_id(BrokerId(v.id as i32))
                .with_log_end_offset(v.matched_index.map_or(-1, |m| m as i64 + 1));
            if version >= 1 {
                r = r
                    .with_last_fetch_timestamp(contact)
                    .with_last_caught_up_timestamp(contact);
            }
            r
        })
        .collect();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let d = PartitionData::default().with_partition_index(p.partition_index);
                    if t.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                        return d.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    }
                    d.with_leader_id(BrokerId(q.leader_id.map_or(-1, |l| l as i32)))
                        .with_leader_epoch(q.term as i32)
                        .with_high_watermark(q.commit_index.map_or(-1, |c| c as i64 + 1))
                        .with_current_voters(voters.clone())
                })
                .collect();
            TopicData::default()
                .with_topic_name(TopicName(str_bytes(t.topic_name.0.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    let mut response = DescribeQuorumResponse::default().with_topics(topics);
    if version >= 2 {
        let image = broker.metadata.image();
        let members = crate::cluster::parse_members(&broker.config.cluster.initial_members)
            .unwrap_or_default();
        response = response.with_nodes(
            q.voters
                .iter()
                .map(|v| {
                    let listeners = members
                        .get(&v.id)
                        .and_then(|addr| addr.rsplit_once(':'))
                        .and_then(|(host, port)| {
                            Some((host.to_string(), port.parse::<u16>().ok()?))
                        })
                        .or_else(|| {
                            image
                                .brokers
                                .get(&(v.id as i32))
                                .map(|b| (b.host.clone(), b.port))
                        })
                        .map(|(host, port)| {
                            vec![Listener::default()
                                .with_name(str_bytes("CONTROLLER"))
                                .with_host(str_bytes(host))
                                .with_port(port)]
                        })
                        .unwrap_or_default();
                    Node::default()
                        .with_node_id(BrokerId(v.id as i32))
                        .with_listeners(listeners)
                })
                .collect(),
        );
    }
    response
}
