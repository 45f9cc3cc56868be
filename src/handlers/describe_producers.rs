//! DescribeProducers (KIP-664, v0): for each requested partition led here, the producers
//! the partition log keeps state for (id, epoch, last sequence, timestamp of the last batch,
//! coordinator epoch of the last marker, first offset of the open transaction or -1), as
//! Kafka's `ReplicaManager.activeProducerState` answers; UNKNOWN_TOPIC_OR_PARTITION or
//! NOT_LEADER_OR_FOLLOWER per partition otherwise. `kafka-transactions.sh describe-producers`
//! and `find-hanging` read it.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::led_here;
use crate::broker::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = broker.metadata.image();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let r = PartitionResponse::default().with_partition_index(index);
                    let partition = match led_here(broker, &image, &name, index) {
                        Ok((_, p)) => p,
                        Err(e) => return r.with_error_code(e.code()),
                    };
                    let log = partition.log_reader();
                    let mut active: Vec<ProducerState> = log
                        .producer_state()
                        .producers()
                        .map(|(id, e)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(id))
                                .with_producer_epoch(i32::from(e.epoch))
                                .with_last_sequence(e.last_seq())
                                .with_last_timestamp(e.last_timestamp())
                                .with_coordinator_epoch(e.coordinator_epoch)
                                .with_current_txn_start_offset(
                                    e.current_txn_first_offset.unwrap_or(-1),
                                )
                        })
                        .collect();
                    active.sort_by_key(|p| p.producer_id.0);
                    r.with_active_producers(active)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
