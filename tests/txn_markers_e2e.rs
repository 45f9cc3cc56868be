//! Transaction marker delivery (`txn::markers`) and the WriteTxnMarkers handler:
//!
//! 1. `write_local_appends_a_committed_marker_and_refuses_what_kafka_refuses`: one broker;
//!    a COMMIT marker written through `MarkerSender::write_local` is a control batch in the
//!    log below the high watermark; unknown partitions answer UNKNOWN_TOPIC_OR_PARTITION and
//!    (`stale_marker_epochs_are_refused_and_stop_the_sending`: a marker in an older
//!    producer epoch answers INVALID_PRODUCER_EPOCH and stops `send`.)
//! 2. `write_txn_markers_over_the_socket_answers_per_partition`: WriteTxnMarkers v1 with two
//!    markers, partitions here and an unknown one: per producer id and partition codes, and
//!    the markers in the logs.
//! 3. `send_writes_local_partitions_drops_deleted_ones_and_stops_when_no_longer_coordinator`.
//! 4. `send_reaches_every_leader_and_retries_across_a_leader_change`: three brokers, the
//!    partitions of a replication-factor-3 topic led by each; a marker sent from one broker
//!    reaches all three leaders (two through WriteTxnMarkers); then, with the leader of one
//!    partition killed, the next marker is retried until the new leader writes it.
//! 5. `verification_asks_the_local_coordinator_and_translates_its_answers`: KIP-890
//!    verification (`txn::verify`) with this broker as the transaction coordinator.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use broker::broker::Broker;
use broker::log::control::ControlType;
use broker::txn::markers::{MarkerSender, TxnMarker};
use common::cluster::*;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Record;

fn sender_on(broker: &Arc<Broker>) -> MarkerSender {
    MarkerSender::new(
        broker.node_id,
        broker.metadata.clone(),
        broker.partitions.clone(),
        broker.groups.clone(),
        broker.config.clone(),
    )
}

fn marker(pid: i64, epoch: i16, control: ControlType, partitions: &[(&str, i32)]) -> TxnMarker {
    TxnMarker {
        producer_id: pid,
        producer_epoch: epoch,
        coordinator_epoch: 0,
        control,
        partitions: partitions
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect(),
    }
}

/// Every record of the partition from `addr` up to its high watermark (a consumer fetch).
async fn records(addr: std::net::SocketAddr, topic: &str, partition: i32) -> Vec<Record> {
    let mut c = Client::connect(addr).await;
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        let p = fetch(&mut c, topic, partition, next).await;
        assert_eq!(p.error_code, 0, "fetch {topic}-{partition} at {next}");
        let batch = decode_records(&p.records.unwrap_or_default());
        if batch.is_empty() {
            return out;
        }
        next = batch.last().unwrap().offset + 1;
        out.extend(batch);
    }
}

/// The (producer id, control type) of every marker among `records`.
fn markers_in(records: &[Record]) -> Vec<(i64, i16)> {
    records
        .iter()
        .filter(|r| r.control)
        .map(|r| {
            assert!(r.transactional, "a marker is transactional");
            let key = r.key.as_ref().expect("a marker has a key");
            (r.producer_id, i16::from_be_bytes([key[2], key[3]]))
        })
        .collect()
}

#[tokio::test]
async fn write_local_appends_a_committed_marker_and_refuses_what_kafka_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "t", 2).await.topics[0].error_code, 0);
    let sender = sender_on(&b.broker);
    let m = marker(7, 3, ControlType::Commit, &[]);
    let last = std::sync::Mutex::new(None);
    let written = wait_until(Duration::from_secs(10), || async {
        let r = sender.write_local(&m, "t", 0).await;
        let ok = r.is_ok();
        *last.lock().unwrap() = Some(r);
        ok
    })
    .await;
    assert!(
        written,
        "the marker is written once the partition is led here: {:?}",
        last.lock().unwrap()
    );
    assert_eq!(markers_in(&records(b.addr, "t", 0).await), vec![(7, 1)]);

    assert_eq!(
        sender.write_local(&m, "nope", 0).await,
        Err(ResponseError::UnknownTopicOrPartition)
    );
    assert_eq!(
        sender.write_local(&m, "t", 5).await,
        Err(ResponseError::UnknownTopicOrPartition)
    );
    b.stop().await;
}

#[tokio::test]
async fn write_txn_markers_over_the_socket_answers_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "t", 2).await.topics[0].error_code, 0);
    // A record in partition 1 first (written once the partition is led here).
    produce_acked(b.addr, "t", 1, "before").await;
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(11))
            .with_producer_epoch(0)
            .with_transaction_result(false)
            .with_coordinator_epoch(4)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(tn("t"))
                    .with_partition_indexes(vec![1, 0]),
                WritableTxnMarkerTopic::default()
                    .with_name(tn("missing"))
                    .with_partition_indexes(vec![0]),
            ]),
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(12))
            .with_producer_epoch(1)
            .with_transaction_result(true)
            .with_coordinator_epoch(4)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(tn("t"))
                .with_partition_indexes(vec![0])]),
    ]);
    let response = c.call(&request, 1).await;
    let codes: Vec<(i64, String, i32, i16)> = response
        .markers
        .iter()
        .flat_map(|m| {
            m.topics.iter().flat_map(move |t| {
                t.partitions.iter().map(move |p| {
                    (
                        m.producer_id.0,
                        t.name.0.to_string(),
                        p.partition_index,
                        p.error_code,
                    )
                })
            })
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (11, "t".into(), 1, 0),
            (11, "t".into(), 0, 0),
            (
                11,
                "missing".into(),
                0,
                ResponseError::UnknownTopicOrPartition.code()
            ),
            (12, "t".into(), 0, 0),
        ]
    );
    let p1 = records(b.addr, "t", 1).await;
    assert_eq!(p1.len(), 2, "the record and the ABORT marker");
    assert_eq!(markers_in(&p1), vec![(11, 0)]);
    assert_eq!(
        markers_in(&records(b.addr, "t", 0).await),
        vec![(11, 0), (12, 1)]
    );
    b.stop().await;
}

#[tokio::test]
async fn send_writes_local_partitions_drops_deleted_ones_and_stops_when_no_longer_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "t", 3).await.topics[0].error_code, 0);
    let sender = sender_on(&b.broker);

    // Partitions that exist are written (retried until the broker took them over); one
    // of a topic that does not exist is dropped.
    let m = marker(
        21,
        0,
        ControlType::Commit,
        &[("t", 0), ("t", 1), ("t", 2), ("deleted", 0)],
    );
    let done = tokio::time::timeout(Duration::from_secs(20), sender.send(&m, || true))
        .await
        .expect("send returns");
    assert!(done);
    for p in 0..3 {
        assert_eq!(
            markers_in(&records(b.addr, "t", p).await),
            vec![(21, 1)],
            "partition {p}"
        );
    }

    // No longer the coordinator: nothing is written.
    let m = marker(22, 0, ControlType::Abort, &[("t", 0)]);
    assert!(!sender.send(&m, || false).await);
    assert_eq!(markers_in(&records(b.addr, "t", 0).await), vec![(21, 1)]);

    b.stop().await;
}

/// Needs the log's marker checks (part A's producer state): a marker in an older producer
/// epoch than the log's is refused with INVALID_PRODUCER_EPOCH, by `write_local` and by a
/// leader `send` reaches, which then stops instead of retrying.
#[tokio::test]
async fn stale_marker_epochs_are_refused_and_stop_the_sending() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "t", 1).await.topics[0].error_code, 0);
    let sender = sender_on(&b.broker);
    let newer = marker(22, 5, ControlType::Commit, &[("t", 0)]);
    let done = tokio::time::timeout(Duration::from_secs(20), sender.send(&newer, || true))
        .await
        .expect("send returns");
    assert!(done);
    let stale = marker(22, 4, ControlType::Abort, &[("t", 0)]);
    assert_eq!(
        sender.write_local(&stale, "t", 0).await,
        Err(ResponseError::InvalidProducerEpoch)
    );
    let stopped = tokio::time::timeout(Duration::from_secs(10), sender.send(&stale, || true))
        .await
        .expect("a fenced marker is not retried");
    assert!(!stopped, "INVALID_PRODUCER_EPOCH stops the sending");
    assert_eq!(markers_in(&records(b.addr, "t", 0).await), vec![(22, 1)]);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_reaches_every_leader_and_retries_across_a_leader_change() {
    let mut cluster = Cluster::start().await;
    let topic = "txn-markers";
    let roles = replicated_topic(&cluster, topic, 2, "first").await;
    // Partition i is led by broker i + 1: wait until each leader takes writes.
    for p in 0..3 {
        produce_acked(cluster.addr(p + 1), topic, p, "warm").await;
    }
    let c = roles.controller;
    let sender = Arc::new(sender_on(&cluster.broker(c).broker));
    let all = [(topic, 0), (topic, 1), (topic, 2)];
    let m = marker(31, 0, ControlType::Commit, &all);
    let done = tokio::time::timeout(Duration::from_secs(20), sender.send(&m, || true))
        .await
        .expect("send returns");
    assert!(done);
    for p in 0..3 {
        let got = markers_in(&records(cluster.addr(p + 1), topic, p).await);
        assert_eq!(got, vec![(31, 1)], "partition {p} on its leader {}", p + 1);
    }

    // The leader L of one partition dies; the marker sent meanwhile reaches the new leader
    // F once it took over.
    let (l, f, p) = (roles.leader, roles.follower, roles.partition);
    cluster.crash(l).await;
    let still = Arc::new(AtomicBool::new(true));
    let task = {
        let (sender, still) = (sender.clone(), still.clone());
        let m = marker(32, 0, ControlType::Abort, &[(topic, p)]);
        tokio::spawn(async move { sender.send(&m, move || still.load(Ordering::SeqCst)).await })
    };
    cluster
        .wait_state(topic, p, Duration::from_secs(20), |s| s.leader == f)
        .await
        .expect("the follower takes over");
    let done = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the marker is delivered after the leader change")
        .unwrap();
    assert!(done);
    let got = markers_in(&records(cluster.addr(f), topic, p).await);
    assert_eq!(
        got,
        vec![(31, 1), (32, 0)],
        "partition {p} on its new leader {f}"
    );
    still.store(false, Ordering::SeqCst);
    cluster.stop().await;
}

/// KIP-890 verification routed to this broker as the transaction coordinator: the local
/// check answers, its errors become produce errors by Produce version, and without a
/// `__transaction_state` leader the produce gets the retriable NOT_ENOUGH_REPLICAS.
#[tokio::test]
async fn verification_asks_the_local_coordinator_and_translates_its_answers() {
    use broker::txn::verify::{verify_batch, verify_transactional, Batch, Produced};
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let sender = sender_on(&b.broker);
    let tps = vec![("t".to_string(), 0), ("t".to_string(), 1)];
    let produced = |version| Produced {
        transactional_id: "tx",
        producer_id: 5,
        producer_epoch: 0,
        version,
    };
    let never = |_: &[(String, i32)]| -> Vec<Result<(), ResponseError>> {
        panic!("no coordinator here yet")
    };
    let verdicts = verify_transactional(&sender, &produced(9), &tps, never).await;
    assert!(verdicts
        .iter()
        .all(|v| v.as_ref().unwrap_err().error == ResponseError::NotEnoughReplicas));

    b.broker
        .create_internal_topic(
            broker::txn::TRANSACTION_STATE_TOPIC,
            1,
            1,
            Default::default(),
        )
        .await
        .expect("the transaction state topic is created");
    let asked = std::sync::Mutex::new(Vec::new());
    let local = |ps: &[(String, i32)]| {
        asked.lock().unwrap().extend_from_slice(ps);
        vec![Ok(()), Err(ResponseError::TransactionAbortable)]
    };
    let verdicts = verify_transactional(&sender, &produced(9), &tps, local).await;
    assert_eq!(*asked.lock().unwrap(), tps);
    assert_eq!(verdicts[0], Ok(()));
    let refused = verdicts[1].as_ref().unwrap_err();
    assert_eq!(refused.error, ResponseError::InvalidTxnState);
    assert_eq!(
        refused.message.as_deref(),
        Some("Partition was not added to the transaction")
    );
    // The produce path's form: one partition's batch headers.
    let mut r = record("k", "v", 1);
    r.transactional = true;
    r.producer_id = 5;
    r.producer_epoch = 3;
    r.sequence = 0;
    let txn = batch(&[r], kafka_protocol::records::Compression::None);
    let header = broker::log::parse_header(&txn).unwrap();
    let plain = broker::log::parse_header(&batch(
        &[record("k", "v", 1)],
        kafka_protocol::records::Compression::None,
    ))
    .unwrap();
    let one = |headers| Batch {
        transactional_id: "tx",
        topic: "t",
        partition: 1,
        headers,
        version: 9,
    };
    let unasked = |_: i64, _: i16, _: &[(String, i32)]| -> Vec<Result<(), ResponseError>> {
        panic!("not asked")
    };
    let headers = [plain];
    let verdict = verify_batch(&sender, &one(&headers), |_, _| false, unasked).await;
    assert_eq!(
        verdict,
        Ok(()),
        "a batch that is not transactional is not verified"
    );
    let headers = [header];
    let open = |pid, epoch| (pid, epoch) == (5, 3);
    let verdict = verify_batch(&sender, &one(&headers), open, unasked).await;
    assert_eq!(
        verdict,
        Ok(()),
        "a producer with an open transaction here is not verified"
    );
    let not_added = |pid, epoch, ps: &[(String, i32)]| {
        assert_eq!(
            (pid, epoch, ps.to_vec()),
            (5, 3, vec![("t".to_string(), 1)])
        );
        vec![Err(ResponseError::TransactionAbortable)]
    };
    let verdict = verify_batch(&sender, &one(&headers), |_, _| false, not_added).await;
    assert_eq!(
        verdict,
        Err((
            ResponseError::InvalidTxnState,
            Some("Partition was not added to the transaction".to_string())
        ))
    );

    let fenced = |_: &[(String, i32)]| vec![Err(ResponseError::ProducerFenced); 2];
    let verdicts = verify_transactional(&sender, &produced(11), &tps, fenced).await;
    assert!(verdicts
        .iter()
        .all(|v| v.as_ref().unwrap_err().error == ResponseError::InvalidProducerEpoch));
    b.stop().await;
}
