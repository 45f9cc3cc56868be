//! Produce: validate each partition's batch at the header level (magic, CRC, counts, size),
//! append it to the partition log with offsets and the leader epoch assigned in place, and
//! answer per partition. acks=0 gets no response at all.
//!
//! No per-record work and no lock held across `.await`: validation runs before the log
//! lock is taken, and the append itself is one synchronous call.
//!
//! Idempotent producers: the log checks epochs and sequences under its lock. A retry of a
//! batch it already holds is answered NONE with the original base offset (and append time),
//! as Kafka does, and is not written again; OUT_OF_ORDER_SEQUENCE_NUMBER and
//! INVALID_PRODUCER_EPOCH are set on the partition like any other log error.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{led_here, str_bytes};
use crate::broker::{now_ms, Broker, Partition};
use crate::log::batch::validate_producer_batches;
use crate::replication::{self, ReplicaRole};

/// The zstd codec id in a batch's attributes.
const ZSTD: u8 = 4;
use crate::config::topic::TopicSettings;

fn partition_error(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(str_bytes))
}

pub async fn handle(
    broker: &Arc<Broker>,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let image = broker.metadata.image();
    let refuse_all = if !matches!(acks, -1..=1) {
        Some((
            ResponseError::InvalidRequiredAcks.code(),
            "acks must be -1 (all), 0 or 1".to_string(),
        ))
    } else if request.transactional_id.is_some() {
        Some((
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            "transactions are not supported by this broker".to_string(),
        ))
    } else {
        None
    };
    let request_timeout_ms = request.timeout_ms;
    let mut commits: Vec<PendingCommit> = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.as_str();
        let topic_image = image.topics.get(name);
        let settings = topic_image.map(|t| TopicSettings::resolve(&broker.config, &t.configs));
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            if let Some((code, message)) = &refuse_all {
                partitions.push(partition_error(index, *code, Some(message.clone())));
                continue;
            }
            let (Some(_), Some(settings)) = (topic_image, settings.as_ref()) else {
                partitions.push(partition_error(
                    index,
                    ResponseError::UnknownTopicOrPartition.code(),
                    None,
                ));
                continue;
            };
            // The leader epoch appended under is the replica role's, read under its lock.
            let (_, partition) = match led_here(broker, &image, name, index) {
                Ok(found) => found,
                Err(e) => {
                    partitions.push(partition_error(index, e.code(), None));
                    continue;
                }
            };
            let records = data.records.unwrap_or_default();
            let headers = match validate_producer_batches(&records, settings.max_message_bytes) {
                Ok(h) => h,
                Err(e) => {
                    let code = e.kafka_error_code();
                    let mut r = partition_error(index, code, Some(e.to_string()));
                    if code == ResponseError::InvalidRecord.code() && version >= 8 {
                        r = r.with_record_errors(vec![BatchIndexAndErrorMessage::default()
                            .with_batch_index(0)
                            .with_batch_index_error_message(Some(str_bytes(e.to_string())))]);
                    }
                    partitions.push(r);
                    continue;
                }
            };
            if version < 7 && headers.iter().any(|h| h.compression() == ZSTD) {
                // Kafka: zstd needs Produce v7+ (KIP-110).
                partitions.push(partition_error(
                    index,
                    ResponseError::UnsupportedCompressionType.code(),
                    Some("zstd compression needs Produce v7 or later".into()),
                ));
                continue;
            }
            if headers.iter().any(|h| h.is_transactional()) {
                partitions.push(partition_error(
                    index,
                    ResponseError::InvalidRecord.code(),
                    Some("transactional batches are not supported by this broker".into()),
                ));
                continue;
            }
            // Record bytes go from the request buffer to the segment file: the log patches
            // copies of the batch headers and writes both with one vectored write. The
            // append happens under the replica lock, so leadership cannot move during it.
            let appended = {
                let role = partition.role();
                let ReplicaRole::Leader(state) = &*role else {
                    partitions.push(partition_error(
                        index,
                        ResponseError::NotLeaderOrFollower.code(),
                        None,
                    ));
                    continue;
                };
                if acks == -1 && (state.isr.len() as i32) < settings.min_insync_replicas {
                    partitions.push(partition_error(
                        index,
                        ResponseError::NotEnoughReplicas.code(),
                        Some(format!(
                            "{} in-sync replicas, fewer than min.insync.replicas {}",
                            state.isr.len(),
                            settings.min_insync_replicas
                        )),
                    ));
                    continue;
                }
                let appended =
                    partition
                        .log()
                        .append(&records, &headers, state.leader_epoch, now_ms());
                if let Ok(info) = appended.as_ref() {
                    if !info.duplicate {
                        replication::after_leader_append(&partition, &role, info.last_offset + 1);
                    }
                }
                appended.map(|info| (info, state.leader_epoch))
            };
            match appended {
                Ok((info, epoch)) => {
                    if info.duplicate {
                        tracing::debug!(
                            topic = name,
                            partition = index,
                            base_offset = info.base_offset,
                            "answered a retried idempotent batch with its original offsets"
                        );
                    }
                    if acks == -1 {
                        commits.push(PendingCommit {
                            topic: responses.len(),
                            slot: partitions.len(),
                            partition: partition.clone(),
                            leader_epoch: epoch,
                            end: info.last_offset + 1,
                            min_insync_replicas: settings.min_insync_replicas,
                        });
                    }
                    partitions.push(
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(info.base_offset)
                            .with_log_append_time_ms(info.log_append_time)
                            .with_log_start_offset(info.log_start_offset),
                    );
                }
                Err(e) => {
                    if e.is_storage_failure() {
                        tracing::error!(topic = name, partition = index, error = %e, "append failed");
                    } else {
                        tracing::debug!(topic = name, partition = index, error = %e, "append refused");
                    }
                    partitions.push(partition_error(
                        index,
                        e.kafka_error_code(),
                        Some(e.to_string()),
                    ));
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return None;
    }
    // acks=all: one deadline for the whole request.
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request_timeout_ms.max(0) as u64);
    for c in commits {
        let outcome =
            replication::wait_for_high_watermark(&c.partition, c.leader_epoch, c.end, deadline)
                .await
                .and_then(|()| {
                    // Kafka's check when the write is committed: the ISR may have shrunk
                    // below min.insync.replicas while it waited.
                    match &*c.partition.role() {
                        ReplicaRole::Leader(s) if (s.isr.len() as i32) < c.min_insync_replicas => {
                            Err(ResponseError::NotEnoughReplicasAfterAppend)
                        }
                        _ => Ok(()),
                    }
                });
        if let Err(e) = outcome {
            let slot = &mut responses[c.topic].partition_responses[c.slot];
            *slot = partition_error(slot.index, e.code(), None);
        }
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// An acks=all write waiting for the high watermark.
struct PendingCommit {
    topic: usize,
    slot: usize,
    partition: Arc<Partition>,
    leader_epoch: i32,
    end: i64,
    min_insync_replicas: i32,
}
