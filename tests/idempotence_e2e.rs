//! End-to-end tests of the idempotent producer: InitProducerId, duplicate detection of
//! retried batches (answered with the original offsets, stored once), sequence and epoch
//! checks, and producer state that survives a broker restart. The real broker runs
//! in-process on an ephemeral port and is driven with raw Kafka frames.

mod common;

use std::collections::HashSet;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

fn records(prefix: &str, n: usize) -> Vec<kafka_protocol::records::Record> {
    (0..n)
        .map(|i| {
            record(
                &format!("{prefix}-{i}"),
                &format!("v-{prefix}-{i}"),
                1_000 + i as i64,
            )
        })
        .collect()
}

/// Produces `bytes` to partition 0 of `topic` with acks=all; returns the partition answer.
async fn send(
    c: &mut Client,
    topic: &str,
    bytes: bytes::Bytes,
) -> produce_response::PartitionProduceResponse {
    let resp = produce(c, topic, 0, bytes, -1).await;
    resp.responses[0].partition_responses[0].clone()
}

/// Every record of partition 0, fetched from offset 0 to the end.
async fn all_records(c: &mut Client, topic: &str) -> Vec<kafka_protocol::records::Record> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let d = fetch(c, topic, 0, offset).await;
        assert_eq!(d.error_code, 0);
        let recs = decode_records(d.records.as_ref().unwrap());
        let Some(last) = recs.last() else {
            return out;
        };
        offset = last.offset + 1;
        out.extend(recs);
        if offset >= d.high_watermark {
            return out;
        }
    }
}

#[tokio::test]
async fn init_producer_id_gives_distinct_ids_across_calls_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let mut seen = HashSet::new();
    for version in 0..=5 {
        for _ in 0..3 {
            let r = init_producer_id(&mut c, version).await;
            assert_eq!(r.error_code, 0, "v{version}");
            assert_eq!(r.producer_epoch, 0, "a new id always starts at epoch 0");
            assert!(r.producer_id.0 >= 0);
            assert!(
                seen.insert(r.producer_id.0),
                "id {} reused",
                r.producer_id.0
            );
        }
    }
    // v3+ may name the current id and epoch; a non-transactional producer still gets a new
    // id (Kafka ignores them), and a half-set pair is INVALID_REQUEST.
    let bump = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(ProducerId(*seen.iter().next().unwrap()))
        .with_producer_epoch(0);
    let r = c.call(&bump, 4).await;
    assert_eq!(r.error_code, 0);
    assert!(seen.insert(r.producer_id.0));
    let half = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(ProducerId(5))
        .with_producer_epoch(-1);
    let r = c.call(&half, 4).await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    let empty =
        InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(s(""))));
    let r = c.call(&empty, 2).await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    // A transactional id keeps its producer id (from the same allocator, so never one
    // handed out above) and each InitProducerId bumps its epoch.
    let txn = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("txn-1"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut txn_pid = None;
    for version in 0..=5 {
        let r = c.call(&txn, version).await;
        assert_eq!(r.error_code, 0, "v{version}");
        assert_eq!(r.producer_epoch, version, "v{version}");
        assert_eq!(*txn_pid.get_or_insert(r.producer_id.0), r.producer_id.0);
    }
    assert!(seen.insert(txn_pid.unwrap()));
    b.stop().await;

    // A restarted broker never hands out an id it gave before.
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    for _ in 0..5 {
        let r = init_producer_id(&mut c, 5).await;
        assert_eq!(r.error_code, 0);
        assert!(
            seen.insert(r.producer_id.0),
            "id {} reused",
            r.producer_id.0
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn a_retried_batch_gets_its_original_offset_and_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "idem", 1).await;
    let pid = init_producer_id(&mut c, 4).await.producer_id.0;

    let first = idempotent_batch(&records("a", 3), pid, 0, 0, Compression::None);
    let p = send(&mut c, "idem", first.clone()).await;
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    // Another, plain producer writes in between.
    let p = send(
        &mut c,
        "idem",
        batch(&records("plain", 2), Compression::None),
    )
    .await;
    assert_eq!(p.base_offset, 3);
    let second = idempotent_batch(&records("b", 4), pid, 0, 3, Compression::Lz4);
    assert_eq!(send(&mut c, "idem", second.clone()).await.base_offset, 5);

    // Retries (a lost response) are answered NONE with the original offsets.
    for _ in 0..2 {
        let p = send(&mut c, "idem", first.clone()).await;
        assert_eq!(p.error_code, 0, "{:?}", p.error_message);
        assert_eq!(p.base_offset, 0);
        assert_eq!(p.log_append_time_ms, -1);
        assert_eq!(p.log_start_offset, 0);
        assert_eq!(send(&mut c, "idem", second.clone()).await.base_offset, 5);
    }
    let stored = all_records(&mut c, "idem").await;
    assert_eq!(stored.len(), 9, "each batch is in the log once");
    let keys: Vec<_> = stored.iter().map(|r| r.key.clone().unwrap()).collect();
    assert_eq!(&keys[0][..], b"a-0");
    assert_eq!(&keys[5][..], b"b-0");
    assert!(stored[..3]
        .iter()
        .all(|r| r.producer_id == pid && r.sequence >= 0));

    // The next batch continues the sequence.
    let third = idempotent_batch(&records("c", 1), pid, 0, 7, Compression::None);
    assert_eq!(send(&mut c, "idem", third).await.base_offset, 9);
    b.stop().await;
}

#[tokio::test]
async fn out_of_order_sequences_and_old_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "seq", 1).await;
    let pid = init_producer_id(&mut c, 5).await.producer_id.0;
    let at = |epoch, seq, n| idempotent_batch(&records("x", n), pid, epoch, seq, Compression::None);

    assert_eq!(send(&mut c, "seq", at(0, 0, 2)).await.error_code, 0);
    // A gap: sequence 5 after 0..1.
    let p = send(&mut c, "seq", at(0, 5, 1)).await;
    assert_eq!(p.error_code, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(p.base_offset, -1);
    assert!(
        p.error_message
            .as_deref()
            .unwrap_or("")
            .contains("expects sequence 2"),
        "{:?}",
        p.error_message
    );
    // An overlapping range that is not a retained batch.
    let p = send(&mut c, "seq", at(0, 1, 2)).await;
    assert_eq!(p.error_code, ResponseError::OutOfOrderSequenceNumber.code());
    // A new epoch must restart at 0 (the Java producer bumps its epoch itself).
    let p = send(&mut c, "seq", at(1, 2, 1)).await;
    assert_eq!(p.error_code, ResponseError::OutOfOrderSequenceNumber.code());
    let p = send(&mut c, "seq", at(1, 0, 1)).await;
    assert_eq!((p.error_code, p.base_offset), (0, 2));
    // The old epoch is fenced.
    let p = send(&mut c, "seq", at(0, 2, 1)).await;
    assert_eq!(p.error_code, ResponseError::InvalidProducerEpoch.code());
    assert_eq!(
        all_records(&mut c, "seq").await.len(),
        3,
        "nothing refused was written"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_retry_after_a_broker_restart_is_still_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "restart", 1).await;
    let pid = init_producer_id(&mut c, 5).await.producer_id.0;
    let batches: Vec<_> = (0..6)
        .map(|i| {
            idempotent_batch(
                &records(&format!("r{i}"), 2),
                pid,
                0,
                i * 2,
                Compression::Zstd,
            )
        })
        .collect();
    for (i, bytes) in batches.iter().enumerate() {
        let p = send(&mut c, "restart", bytes.clone()).await;
        assert_eq!((p.error_code, p.base_offset), (0, 2 * i as i64));
    }
    b.stop().await;

    // Clean restart: the state comes from the shutdown snapshot.
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    for (i, bytes) in batches.iter().enumerate().skip(1) {
        let p = send(&mut c, "restart", bytes.clone()).await;
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, 2 * i as i64),
            "batch {i}"
        );
    }
    // Older than the last five: out of order, as in Kafka.
    let p = send(&mut c, "restart", batches[0].clone()).await;
    assert_eq!(p.error_code, ResponseError::OutOfOrderSequenceNumber.code());
    let next = idempotent_batch(&records("n", 1), pid, 0, 12, Compression::None);
    assert_eq!(send(&mut c, "restart", next.clone()).await.base_offset, 12);
    // Unclean restart: the old broker is abandoned without closing its logs, so the new one
    // recovers and replays the batches after the last snapshot.
    b.crash().await;
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let p = send(&mut c, "restart", next).await;
    assert_eq!((p.error_code, p.base_offset), (0, 12));
    assert_eq!(
        send(&mut c, "restart", batches[5].clone())
            .await
            .base_offset,
        10
    );
    assert_eq!(all_records(&mut c, "restart").await.len(), 13);
    b.stop().await;
}
