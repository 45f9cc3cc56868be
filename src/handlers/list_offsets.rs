//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+) and lookup by
//! timestamp through the time index. Under read_committed (`isolation_level` 1, v2+) the
//! latest offset is the last stable offset and lookups never point at or past it, as in
//! Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{leader_epoch_error, led_here};
use crate::broker::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// `isolation_level` of a read_committed consumer.
const READ_COMMITTED: i8 = 1;

pub fn handle(
    broker: &Arc<Broker>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let image = broker.metadata.image();
    let committed = request.isolation_level == READ_COMMITTED;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let (epoch, partition) =
                        match led_here(broker, &image, &name, p.partition_index) {
                            Ok(found) => found,
                            Err(e) => return r.with_error_code(e.code()),
                        };
                    if version >= 4 {
                        if let Some(code) = leader_epoch_error(p.current_leader_epoch, epoch) {
                            return r.with_error_code(code);
                        }
                    }
                    // Clients see only committed records: the latest offset is the high
                    // watermark (read_committed: the last stable offset), and lookups never
                    // point at or past it.
                    let high_watermark = if committed {
                        partition.last_stable_offset()
                    } else {
                        partition.high_watermark()
                    };
                    let log = partition.log_reader();
                    let found = match p.timestamp {
                        LATEST => Some((high_watermark, -1)),
                        EARLIEST => Some((log.log_start_offset(), -1)),
                        MAX_TIMESTAMP => log.max_timestamp_offset(),
                        ts if ts >= 0 => log.offset_for_timestamp(ts),
                        _ => return r.with_error_code(ResponseError::InvalidRequest.code()),
                    }
                    .filter(|(offset, _)| {
                        matches!(p.timestamp, LATEST | EARLIEST) || *offset < high_watermark
                    });
                    match found {
                        Some((offset, timestamp)) if version >= 4 => r
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(epoch),
                        Some((offset, timestamp)) => {
                            r.with_offset(offset).with_timestamp(timestamp)
                        }
                        None => r,
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
