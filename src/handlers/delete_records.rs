//! DeleteRecords (`kafka-delete-records`, `Admin.deleteRecords`, Kafka Streams purging its
//! repartition topics): moves a partition's log start offset up to the requested offset
//! (-1: the high watermark) on its leader, then answers once every live replica dropped the
//! records too (the low watermark reached the offset), or REQUEST_TIMED_OUT at the request's
//! timeout, as Kafka's DelayedDeleteRecords does.
//!
//! Per partition: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER (led elsewhere),
//! OFFSET_OUT_OF_RANGE (below 0 other than -1, or past the high watermark),
//! INVALID_TOPIC_EXCEPTION for internal topics. One deadline for the whole request.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::led_here;
use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::replication::DeleteRecordsHandle;

pub async fn handle(
    broker: &Arc<Broker>,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let image = broker.metadata.image();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut waiting: Vec<(usize, usize, DeleteRecordsHandle)> = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            if name == OFFSETS_TOPIC {
                partitions
                    .push(result.with_error_code(ResponseError::InvalidTopicException.code()));
                continue;
            }
            let partition = match led_here(broker, &image, &name, p.partition_index) {
                Ok((_, partition)) => partition,
                Err(e) => {
                    partitions.push(result.with_error_code(e.code()));
                    continue;
                }
            };
            match partition.delete_records_as_leader(p.offset, |id| image.is_live(id)) {
                Ok(handle) => {
                    tracing::info!(topic = %name, partition = p.partition_index, offset = handle.offset(), "deleting records");
                    waiting.push((topics.len(), partitions.len(), handle));
                    partitions.push(result);
                }
                Err(e) => {
                    tracing::debug!(topic = %name, partition = p.partition_index, error = %e, "delete records refused");
                    partitions.push(result.with_error_code(e.error().code()));
                }
            }
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    for (t, slot, handle) in waiting {
        let result: &mut DeleteRecordsPartitionResult = &mut topics[t].partitions[slot];
        match handle.wait(deadline).await {
            Ok(low_watermark) => result.low_watermark = low_watermark,
            Err(e) => result.error_code = e.code(),
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
