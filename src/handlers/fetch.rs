//! Fetch: whole batches from the one containing the fetch offset, every requested
//! partition in the response (empty records, never null), and a real long poll: when less
//! than `min_bytes` is available the request waits, woken by appends, until `max_wait_ms`.
//!
//! One deadline per request. No lock is held across `.await`: each pass reads the logs
//! synchronously, then the request waits on a `Notify` registered with every partition.
//!
//! Isolation (KIP-98): a read_committed consumer (`isolation_level` 1) reads below the last
//! stable offset and gets the aborted transactions overlapping what it was sent (producer id
//! and first offset, by first offset), so it can drop their records; read_uncommitted reads
//! below the high watermark and gets null aborted transactions. Every answer carries the
//! last stable offset. A follower (replica id >= 0) reads to the log end.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{leader_epoch_error, led_here};
use crate::broker::Broker;
use crate::log::batch::split_whole_batches;
use crate::replication::Partition;

/// `isolation_level` of a read_committed consumer.
const READ_COMMITTED: i8 = 1;

/// One pass over every requested partition.
struct Pass {
    topics: Vec<FetchableTopicResponse>,
    bytes: usize,
    /// Whether any partition answered with an error (which ends a long poll, as in Kafka).
    errors: bool,
    /// Partitions to wait on if the pass did not return enough.
    hosted: Vec<Arc<Partition>>,
}

fn empty_partition(index: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
        .with_aborted_transactions(Some(Vec::new()))
        .with_records(Some(Bytes::new()))
}

fn read_all(broker: &Broker, request: &FetchRequest, version: i16) -> Pass {
    let image = broker.metadata.image();
    let follower = request.replica_id.0 >= 0;
    let committed = !follower && request.isolation_level == READ_COMMITTED;
    let mut budget = request.max_bytes.max(0) as usize;
    let mut pass = Pass {
        topics: Vec::with_capacity(request.topics.len()),
        bytes: 0,
        errors: false,
        hosted: Vec::new(),
    };
    for t in &request.topics {
        let name = t.topic.0.as_str();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut data = empty_partition(p.partition);
            let (epoch, partition) = match led_here(broker, &image, name, p.partition) {
                Ok(found) => found,
                Err(e) => {
                    pass.errors = true;
                    partitions.push(data.with_error_code(e.code()));
                    continue;
                }
            };
            if version >= 9 {
                if let Some(code) = leader_epoch_error(p.current_leader_epoch, epoch) {
                    pass.errors = true;
                    partitions.push(data.with_error_code(code));
                    continue;
                }
            }
            let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
            if follower {
                // A follower's fetch offset is its log end offset: the leader records it
                // (which may advance the high watermark) before reading.
                if let Err(e) = broker.replication.record_follower_fetch(
                    &partition,
                    request.replica_id.0,
                    p.fetch_offset,
                    p.log_start_offset,
                ) {
                    pass.errors = true;
                    partitions.push(data.with_error_code(e.code()));
                    continue;
                }
            }
            let last_stable_offset = partition.last_stable_offset();
            let high_watermark = partition.high_watermark();
            let log = partition.log_reader();
            data = data
                .with_high_watermark(high_watermark)
                .with_last_stable_offset(last_stable_offset)
                .with_log_start_offset(log.log_start_offset());
            // Kafka sends at least one whole batch only for the first partition with data.
            // The read is planned under the log lock and done without it. Consumers read
            // below the high watermark (read_committed: the last stable offset); followers
            // up to the log end.
            let bound = if committed {
                last_stable_offset
            } else {
                high_watermark
            };
            let plan = if limit == 0 && pass.bytes > 0 {
                None
            } else if follower {
                Some(log.plan_read(p.fetch_offset, limit.max(1)))
            } else {
                Some(log.plan_read_below(p.fetch_offset, limit.max(1), bound))
            };
            drop(log);
            let result = match plan {
                None => Ok(Bytes::new()),
                Some(plan) => plan.and_then(|plan| plan.execute()).map(|r| r.bytes),
            };
            match result {
                Ok(bytes) => {
                    budget = budget.saturating_sub(bytes.len());
                    pass.bytes += bytes.len();
                    // Kafka answers null unless the consumer reads committed data.
                    let aborted =
                        committed.then(|| aborted_transactions(&partition, p.fetch_offset, &bytes));
                    data = data
                        .with_records(Some(bytes))
                        .with_aborted_transactions(aborted);
                }
                Err(e) => {
                    pass.errors = true;
                    data = data.with_error_code(e.kafka_error_code());
                }
            }
            pass.hosted.push(partition);
            partitions.push(data);
        }
        pass.topics.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    pass
}

/// The aborted transactions a read_committed consumer needs for `bytes`, read from
/// `fetch_offset`: those ending at or after it and starting below the end of the last
/// returned batch (Kafka's `addAbortedTransactions`), by first offset.
fn aborted_transactions(
    partition: &Partition,
    fetch_offset: i64,
    bytes: &[u8],
) -> Vec<AbortedTransaction> {
    let upper = match split_whole_batches(bytes) {
        Ok((headers, _)) => match headers.last() {
            Some(last) => last.next_offset(),
            None => return Vec::new(),
        },
        Err(_) => return Vec::new(),
    };
    partition
        .log_reader()
        .aborted_transactions(fetch_offset, upper)
        .into_iter()
        .map(|t| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(t.producer_id))
                .with_first_offset(t.first_offset)
        })
        .collect()
}

pub async fn handle(broker: &Arc<Broker>, request: FetchRequest, version: i16) -> FetchResponse {
    if request.session_id != 0 {
        // This broker never hands out fetch sessions (it answers session id 0), so a client
        // naming one is out of date: Kafka's answer is FETCH_SESSION_ID_NOT_FOUND.
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    loop {
        let pass = read_all(broker, &request, version);
        let now = Instant::now();
        if min_bytes == 0
            || pass.bytes >= min_bytes
            || pass.errors
            || now >= deadline
            || pass.hosted.is_empty()
        {
            return FetchResponse::default().with_responses(pass.topics);
        }
        let waker = Arc::new(Notify::new());
        for p in &pass.hosted {
            p.wait_for_append(&waker);
        }
        // An append between the read and the registration already stored a permit (or
        // will): `notify_one` on a Notify with no waiter keeps it for the next `notified`.
        let again = read_all(broker, &request, version);
        if again.bytes >= min_bytes || again.errors {
            return FetchResponse::default().with_responses(again.topics);
        }
        if tokio::time::timeout_at(deadline, waker.notified())
            .await
            .is_err()
        {
            return FetchResponse::default()
                .with_responses(read_all(broker, &request, version).topics);
        }
    }
}
