//! DeleteRecords over the wire, as `kafka-delete-records` and `Admin.deleteRecords` send it.
//!
//! 1. One broker: the log start offset moves to the requested offset (ListOffsets earliest
//!    answers it, a fetch below it is OFFSET_OUT_OF_RANGE, the records from it are still
//!    read), -1 means the high watermark, past the high watermark is OFFSET_OUT_OF_RANGE, an
//!    unknown partition UNKNOWN_TOPIC_OR_PARTITION, `__consumer_offsets` is refused, and the
//!    new start survives a restart.
//! 2. Three brokers, replication factor 3: the answer comes once every replica dropped the
//!    records (low watermark = the offset), and a follower that then leads starts there too.

mod common;

use std::time::Duration;

use common::cluster::*;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

fn delete_request(topic: &str, partition: i32, offset: i64) -> DeleteRecordsRequest {
    DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset),
            ])])
}

/// (error code, low watermark) of the one partition asked.
async fn delete_records(c: &mut Client, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    let resp = c.call(&delete_request(topic, partition, offset), 2).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

async fn earliest(c: &mut Client, topic: &str, partition: i32) -> i64 {
    let req = list_offsets_request(topic, partition, -2);
    let resp = c.call(&req, 7).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    p.offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_on_one_broker() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "d", 2).await;
    for i in 0..10 {
        let records = batch(&[record("k", &format!("v{i}"), i)], Compression::None);
        let resp = produce(&mut c, "d", 0, records, -1).await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
    assert_eq!(delete_records(&mut c, "d", 0, 4).await, (0, 4));
    assert_eq!(earliest(&mut c, "d", 0).await, 4);
    let below = fetch(&mut c, "d", 0, 2).await;
    assert_eq!(below.error_code, ResponseError::OffsetOutOfRange.code());
    let from = fetch(&mut c, "d", 0, 4).await;
    assert_eq!(from.error_code, 0);
    let values: Vec<String> = decode_records(&from.records.unwrap_or_default())
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values.first().map(String::as_str), Some("v4"));
    assert_eq!(values.len(), 6);

    // Errors, per partition.
    assert_eq!(
        delete_records(&mut c, "d", 0, 11).await.0,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(
        delete_records(&mut c, "d", 0, -5).await.0,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(
        delete_records(&mut c, "d", 7, 1).await.0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        delete_records(&mut c, "__consumer_offsets", 0, 0).await.0,
        ResponseError::InvalidTopicException.code()
    );
    // An offset below the log start changes nothing; -1 is the high watermark.
    assert_eq!(delete_records(&mut c, "d", 0, 2).await, (0, 4));
    assert_eq!(delete_records(&mut c, "d", 1, -1).await, (0, 0));
    assert_eq!(delete_records(&mut c, "d", 0, -1).await, (0, 10));
    assert_eq!(earliest(&mut c, "d", 0).await, 10);

    b.stop().await;
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        earliest(&mut c, "d", 0).await,
        10,
        "the log start survives a restart"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_records_answers_once_every_replica_dropped_the_records() {
    init_tracing();
    let mut cluster = Cluster::start().await;
    let roles = replicated_topic(&cluster, "dr", 2, "r0").await;
    let (topic, p, l) = ("dr", roles.partition, roles.leader);
    for i in 1..8 {
        produce_acked(cluster.addr(l), topic, p, &format!("r{i}")).await;
    }
    let mut c = Client::connect(cluster.addr(l)).await;
    assert_eq!(delete_records(&mut c, topic, p, 5).await, (0, 5));
    // Every replica starts at 5 now: the follower that takes over serves from there.
    for id in 1..=3 {
        let start = cluster
            .broker(id)
            .broker
            .partitions
            .get(topic, p)
            .unwrap()
            .log_reader()
            .log_start_offset();
        assert_eq!(start, 5, "broker {id}'s log start");
    }
    let mut follower = Client::connect(cluster.addr(roles.follower)).await;
    assert_eq!(
        delete_records(&mut follower, topic, p, 6).await.0,
        ResponseError::NotLeaderOrFollower.code()
    );
    cluster.crash(l).await;
    let leader = cluster
        .wait_state(topic, p, Duration::from_secs(15), |s| {
            s.leader != l && s.leader > 0
        })
        .await
        .expect("the partition fails over")
        .leader;
    let offset = produce_acked(cluster.addr(leader), topic, p, "r8").await;
    assert_eq!(offset, 8);
    let mut c = Client::connect(cluster.addr(leader)).await;
    assert_eq!(earliest(&mut c, topic, p).await, 5);
    cluster.stop().await;
}
