//! WriteTxnMarkers (v1): a transaction coordinator on another broker asks this broker to
//! write the COMMIT or ABORT markers of ended transactions to partitions led here (Kafka's
//! `handleWriteTxnMarkersRequest`).
//!
//! Every marker of every partition is appended first, then the commits are awaited under
//! one deadline (Kafka appends with acks=all and `request.timeout.ms`); a marker in a
//! `__consumer_offsets` partition then completes the producer's pending transactional
//! offsets. Answers per producer id and partition: UNKNOWN_TOPIC_OR_PARTITION,
//! NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, or the log's
//! INVALID_PRODUCER_EPOCH / TRANSACTION_COORDINATOR_FENCED for a stale marker.

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::broker::Broker;
use crate::log::control::ControlType;
use crate::txn::markers::{LocalWrite, TxnMarker, WRITE_TIMEOUT};

pub async fn handle(
    broker: &Arc<Broker>,
    request: WriteTxnMarkersRequest,
    _version: i16,
) -> WriteTxnMarkersResponse {
    let writer = &broker.markers;
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    let mut waiting: Vec<(usize, usize, usize, LocalWrite)> = Vec::new();
    let mut markers = Vec::with_capacity(request.markers.len());
    for m in request.markers {
        let marker = TxnMarker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: m.coordinator_epoch,
            control: if m.transaction_result {
                ControlType::Commit
            } else {
                ControlType::Abort
            },
            partitions: Vec::new(),
        };
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in m.topics {
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for index in t.partition_indexes {
                let result =
                    WritableTxnMarkerPartitionResult::default().with_partition_index(index);
                match writer.start_local(&marker, t.name.0.as_str(), index) {
                    Ok(w) => {
                        waiting.push((markers.len(), topics.len(), partitions.len(), w));
                        partitions.push(result);
                    }
                    Err(e) => partitions.push(result.with_error_code(e.code())),
                }
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    for (m, t, p, w) in waiting {
        if let Err(e) = w.finish(deadline).await {
            let r: &mut WritableTxnMarkerPartitionResult = &mut markers[m].topics[t].partitions[p];
            r.error_code = e.code();
        }
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
