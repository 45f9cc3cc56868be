//! OffsetForLeaderEpoch: for a requested epoch, the largest epoch at or below it and the
//! offset where it ended (the start of the next epoch, or the log end for the latest), read
//! from the partition's persisted epoch history. Consumers use it to detect truncation; a
//! wrong answer makes them reset silently.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{leader_epoch_error, led_here};
use crate::broker::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let image = broker.metadata.image();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let (epoch, partition) = match led_here(broker, &image, &name, p.partition) {
                        Ok(found) => found,
                        Err(e) => return r.with_error_code(e.code()),
                    };
                    if let Some(code) = leader_epoch_error(p.current_leader_epoch, epoch) {
                        return r.with_error_code(code);
                    }
                    let (found_epoch, end_offset) =
                        partition.log_reader().end_offset_for_epoch(p.leader_epoch);
                    r.with_leader_epoch(found_epoch).with_end_offset(end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
