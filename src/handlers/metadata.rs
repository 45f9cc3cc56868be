//! Metadata: brokers, the controller (this broker on a single node), and topics with their
//! ids, partitions, leaders and leader epochs. Auto-creates unknown topics when both the
//! broker (`auto_create_topics`) and the request (v4+ `allow_auto_topic_creation`) allow it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::str_bytes;
use crate::broker::Broker;
use crate::metadata::{MetadataImage, TopicImage};

/// Sent for authorized operations the client did not ask for (Kafka's Integer.MIN_VALUE).
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// A topic as Metadata shows it. A partition whose leader is fenced (or unknown) has no
/// leader: LEADER_NOT_AVAILABLE and leader -1, until the broker returns.
pub fn describe_topic(
    image: &MetadataImage,
    topic: &TopicImage,
    authorized_operations: i32,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name == crate::group::OFFSETS_TOPIC)
        .with_topic_authorized_operations(authorized_operations)
        .with_partitions(
            topic
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let live = image.is_live(p.leader);
                    MetadataResponsePartition::default()
                        .with_error_code(if live {
                            0
                        } else {
                            ResponseError::LeaderNotAvailable.code()
                        })
                        .with_partition_index(i as i32)
                        .with_leader_id(BrokerId(if live { p.leader } else { -1 }))
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(p.replicas.iter().map(|&r| BrokerId(r)).collect())
                        .with_isr_nodes(p.isr.iter().map(|&r| BrokerId(r)).collect())
                })
                .collect(),
        )
}

fn topic_error(name: Option<&str>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

/// The live brokers of the image, as Metadata lists them (Kafka lists only brokers that
/// are not fenced).
pub fn brokers(image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host.clone()))
                .with_port(b.port as i32)
        })
        .collect()
}

/// All operations a topic supports, as Kafka's AclOperation bit set (READ, WRITE, CREATE,
/// DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS): there is no authorization.
const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
pub(crate) const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub async fn handle(
    broker: &Arc<Broker>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let auto_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let topic_ops = if request.include_topic_authorized_operations {
        TOPIC_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let mut image = broker.metadata.image();
    let requested = match request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let topics = match requested {
        // Every topic, internal ones flagged (clients hide them unless asked), as Kafka does.
        None => image
            .topics
            .values()
            .map(|t| describe_topic(&image, t, topic_ops))
            .collect(),
        Some(wanted) => {
            let mut out = Vec::with_capacity(wanted.len());
            for t in wanted {
                let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                    out.push(match image.topic_by_id(&t.topic_id) {
                        Some(topic) => describe_topic(&image, topic, topic_ops),
                        None => topic_error(None, t.topic_id, ResponseError::UnknownTopicId),
                    });
                    continue;
                };
                if let Some(topic) = image.topics.get(&name) {
                    out.push(describe_topic(&image, topic, topic_ops));
                    continue;
                }
                if !auto_create {
                    out.push(topic_error(
                        Some(&name),
                        Uuid::nil(),
                        ResponseError::UnknownTopicOrPartition,
                    ));
                    continue;
                }
                match broker
                    .create_topic(&name, -1, -1, BTreeMap::new(), false)
                    .await
                {
                    Ok(topic) => {
                        image = broker.metadata.image();
                        out.push(describe_topic(&image, &topic, topic_ops));
                    }
                    Err(e) if e.error == ResponseError::TopicAlreadyExists => {
                        image = broker.metadata.image();
                        match image.topics.get(&name) {
                            Some(topic) => out.push(describe_topic(&image, topic, topic_ops)),
                            None => out.push(topic_error(
                                Some(&name),
                                Uuid::nil(),
                                ResponseError::LeaderNotAvailable,
                            )),
                        }
                    }
                    Err(e) => out.push(topic_error(Some(&name), Uuid::nil(), e.error)),
                }
            }
            out
        }
    };
    MetadataResponse::default()
        .with_brokers(brokers(&image))
        .with_cluster_id(Some(str_bytes(image.cluster_id.clone())))
        .with_controller_id(BrokerId(
            broker.metadata.controller_id().unwrap_or(broker.node_id),
        ))
        .with_topics(topics)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        })
}
