//! End-to-end tests of the transactional data path (KIP-98) from a socket: transactional
//! batches produced with a transactional id, markers written by the in-process coordinator
//! side (`Partition::append_marker_as_leader`, what WriteTxnMarkers does), and what
//! read_committed and read_uncommitted consumers see in Fetch and ListOffsets: the last
//! stable offset, the aborted transactions, and both after a restart.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use broker::log::control::ControlType;

const READ_COMMITTED: i8 = 1;

/// One transactional batch of `n` records from `producer_id` (epoch 0, sequences from
/// `seq`).
fn txn_batch(prefix: &str, n: usize, producer_id: i64, seq: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            // Wall-clock time, like the markers, so no time-based roll splits the reads.
            timestamp: broker::broker::now_ms() + i as i64,
            key: Some(Bytes::from(format!("{prefix}-{i}"))),
            value: Some(Bytes::from(format!("v-{prefix}-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

async fn produce_txn(
    c: &mut Client,
    topic: &str,
    transactional_id: Option<&str>,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let req = produce_request(topic, 0, records, -1)
        .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))));
    let resp = c.call(&req, 9).await;
    resp.responses[0].partition_responses[0].clone()
}

async fn fetch_isolated(
    c: &mut Client,
    topic: &str,
    offset: i64,
    isolation: i8,
) -> fetch_response::PartitionData {
    let req = fetch_request(topic, 0, offset, 0, 0).with_isolation_level(isolation);
    let resp = c.call(&req, 12).await;
    resp.responses[0].partitions[0].clone()
}

async fn latest(c: &mut Client, topic: &str, isolation: i8) -> i64 {
    let req = list_offsets_request(topic, 0, -1).with_isolation_level(isolation);
    let resp = c.call(&req, 7).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

fn aborted(d: &fetch_response::PartitionData) -> Option<Vec<(i64, i64)>> {
    d.aborted_transactions.as_ref().map(|list| {
        list.iter()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect()
    })
}

/// Writes the marker ending `producer_id`'s transaction in partition 0 of `topic` and
/// waits for its commit, as the marker writer does.
async fn end_txn(b: &TestBroker, topic: &str, producer_id: i64, control: ControlType) -> i64 {
    let p = b.broker.partitions.get(topic, 0).expect("hosted");
    let appended = p
        .append_marker_as_leader(producer_id, 0, 1, control, broker::broker::now_ms())
        .expect("marker written");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    appended.commit.wait(deadline).await.expect("committed");
    appended.info.base_offset
}

#[tokio::test]
async fn read_committed_stops_at_the_lso_and_gets_the_aborted_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "txn", 1).await;
    let p1 = init_producer_id(&mut c, 4).await.producer_id.0;
    let p2 = init_producer_id(&mut c, 4).await.producer_id.0;

    // Transactional batches are accepted with a transactional id, refused without.
    let r = produce_txn(&mut c, "txn", None, txn_batch("x", 1, p1, 0)).await;
    assert_eq!(
        r.error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    let r = produce_txn(&mut c, "txn", Some("t1"), txn_batch("a", 3, p1, 0)).await;
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 0),
        "{:?}",
        r.error_message
    );
    let r = produce_txn(&mut c, "txn", Some("t2"), txn_batch("b", 2, p2, 0)).await;
    assert_eq!((r.error_code, r.base_offset), (0, 3));
    let r = produce(
        &mut c,
        "txn",
        0,
        batch(
            &[record("c", "v", broker::broker::now_ms())],
            Compression::None,
        ),
        -1,
    )
    .await;
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 5);
    // A plain idempotent batch of a producer inside a transaction is refused.
    let plain = idempotent_batch(&[record("y", "v", 1)], p1, 0, 3, Compression::None);
    let r = produce_txn(&mut c, "txn", Some("t1"), plain).await;
    assert_eq!(r.error_code, ResponseError::InvalidTxnState.code());

    // Both transactions are open: read_committed sees nothing, read_uncommitted all.
    let d = fetch_isolated(&mut c, "txn", 0, READ_COMMITTED).await;
    assert_eq!(
        (d.error_code, d.high_watermark, d.last_stable_offset),
        (0, 6, 0)
    );
    assert!(decode_records(d.records.as_ref().unwrap()).is_empty());
    assert_eq!(aborted(&d), Some(vec![]));
    let d = fetch_isolated(&mut c, "txn", 0, 0).await;
    assert_eq!(decode_records(d.records.as_ref().unwrap()).len(), 6);
    assert_eq!(d.last_stable_offset, 0);
    assert_eq!(
        aborted(&d),
        None,
        "read_uncommitted gets null, as from Kafka"
    );
    assert_eq!(latest(&mut c, "txn", READ_COMMITTED).await, 0);
    assert_eq!(latest(&mut c, "txn", 0).await, 6);

    // p1 aborts, p2 commits.
    assert_eq!(end_txn(&b, "txn", p1, ControlType::Abort).await, 6);
    let d = fetch_isolated(&mut c, "txn", 0, READ_COMMITTED).await;
    assert_eq!(d.last_stable_offset, 3, "p2's transaction is still open");
    assert_eq!(aborted(&d), Some(vec![(p1, 0)]));
    assert_eq!(end_txn(&b, "txn", p2, ControlType::Commit).await, 7);
    let d = fetch_isolated(&mut c, "txn", 0, READ_COMMITTED).await;
    assert_eq!((d.high_watermark, d.last_stable_offset), (8, 8));
    let bytes = d.records.clone().unwrap();
    let (headers, _) = broker::log::batch::split_whole_batches(&bytes).unwrap();
    assert_eq!(headers.len(), 5, "three data batches and two markers");
    assert!(headers[3].is_control() && headers[4].is_control());
    assert_eq!(headers.last().unwrap().next_offset(), 8);
    let recs = decode_records(&bytes);
    assert_eq!(aborted(&d), Some(vec![(p1, 0)]));
    // What a consumer keeps: the committed records and the plain one.
    let kept: Vec<_> = recs
        .iter()
        .filter(|r| !(r.control || (r.transactional && r.producer_id == p1)))
        .map(|r| String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(kept, vec!["b-0", "b-1", "c"]);
    // A fetch after the aborted transaction ended does not get it.
    let d = fetch_isolated(&mut c, "txn", 7, READ_COMMITTED).await;
    assert_eq!(aborted(&d), Some(vec![]));
    assert_eq!(latest(&mut c, "txn", READ_COMMITTED).await, 8);
    // Clients may not write markers.
    let fake = broker::log::control::marker_batch(p1, 0, 1, ControlType::Commit, 0);
    let r = produce_txn(&mut c, "txn", Some("t1"), Bytes::from(fake)).await;
    assert_eq!(r.error_code, ResponseError::InvalidRecord.code());
    b.stop().await;

    // After a restart the index and the producer state come back.
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let d = fetch_isolated(&mut c, "txn", 0, READ_COMMITTED).await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.last_stable_offset, 8);
    assert_eq!(aborted(&d), Some(vec![(p1, 0)]));
    // A new transaction of p1 after the restart, left open, holds the LSO back again.
    let r = produce_txn(&mut c, "txn", Some("t1"), txn_batch("d", 1, p1, 3)).await;
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 8),
        "{:?}",
        r.error_message
    );
    let d = fetch_isolated(&mut c, "txn", 0, READ_COMMITTED).await;
    assert_eq!((d.high_watermark, d.last_stable_offset), (9, 8));

    // DescribeProducers shows both producers, p1 with its open transaction (what
    // kafka-transactions.sh find-hanging looks for).
    let req = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(tn("txn"))
            .with_partition_indexes(vec![0, 5]),
    ]);
    let resp = c.call(&req, 0).await;
    let parts = &resp.topics[0].partitions;
    assert_eq!(parts[0].error_code, 0);
    assert_eq!(
        parts[1].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let states: Vec<_> = parts[0]
        .active_producers
        .iter()
        .map(|p| {
            (
                p.producer_id.0,
                p.producer_epoch,
                p.last_sequence,
                p.coordinator_epoch,
                p.current_txn_start_offset,
            )
        })
        .collect();
    let mut expected = vec![(p1, 0, 3, 1, 8), (p2, 0, 1, 1, -1)];
    expected.sort();
    assert_eq!(states, expected);
    b.stop().await;
}
