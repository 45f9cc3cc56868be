//! Log compaction over the wire.
//!
//! 1. One broker: a topic with `cleanup.policy=compact` takes many updates of few keys; the
//!    cleaner shrinks it to about its live keys, a consumer reads exactly the latest value
//!    of each key at the offset it was written at, and a restart changes nothing.
//! 2. Three brokers, replication factor 3: every replica compacts its own log to the same
//!    records at the same offsets, also after the leader fails and more updates arrive.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::*;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

const FAST_CLEANER: &str = r#", "cleaner": {"backoff": "100ms"}"#;

fn compacted_topic(name: &str, replication: i16) -> CreateTopicsRequest {
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "4096"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    create_topic_request(name, 1, replication, &configs)
}

/// Writes `rounds` updates of each of `keys` keys (10 records a batch, acks=all) through
/// `addr`; returns key -> (offset, value) of the latest write of each key, and the bytes
/// of batches sent.
async fn update_keys(
    addr: SocketAddr,
    topic: &str,
    keys: usize,
    rounds: usize,
    tag: &str,
) -> (BTreeMap<String, (i64, String)>, u64) {
    let mut sent = 0u64;
    let mut c = Client::connect(addr).await;
    let mut latest = BTreeMap::new();
    let writes: Vec<(String, String)> = (0..rounds)
        .flat_map(|r| (0..keys).map(move |k| (format!("key-{k}"), format!("{tag}-{r}-{k}"))))
        .collect();
    for chunk in writes.chunks(10) {
        let records: Vec<_> = chunk.iter().map(|(k, v)| record(k, v, 1_000)).collect();
        let bytes = batch(&records, Compression::Lz4);
        sent += bytes.len() as u64;
        let resp = produce(&mut c, topic, 0, bytes, -1).await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{p:?}");
        for (i, (k, v)) in chunk.iter().enumerate() {
            latest.insert(k.clone(), (p.base_offset + i as i64, v.clone()));
        }
    }
    (latest, sent)
}

/// Everything a consumer reads from the partition: offset -> (key, value).
async fn consume(addr: SocketAddr, topic: &str) -> BTreeMap<i64, (String, String)> {
    let mut c = Client::connect(addr).await;
    let mut out = BTreeMap::new();
    let mut next = 0;
    loop {
        let p = fetch(&mut c, topic, 0, next).await;
        assert_eq!(p.error_code, 0, "fetch at {next}");
        let records = decode_records(&p.records.clone().unwrap_or_default());
        if records.is_empty() {
            assert!(
                next >= p.high_watermark,
                "no records at {next} below the high watermark"
            );
            break;
        }
        for r in records {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            out.insert(r.offset, (key, value));
            next = r.offset + 1;
        }
        // A cleaned batch keeps its last offset although its last record may be gone.
        next = next.max(last_batch_end(&p.records.unwrap_or_default()));
    }
    out
}

fn last_batch_end(bytes: &bytes::Bytes) -> i64 {
    let mut at = 0usize;
    let mut end = 0;
    while at + 61 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let delta = i32::from_be_bytes(bytes[at + 23..at + 27].try_into().unwrap());
        end = base + i64::from(delta) + 1;
        at += 12 + len;
    }
    end
}

fn as_offsets(latest: &BTreeMap<String, (i64, String)>) -> BTreeMap<i64, (String, String)> {
    latest
        .iter()
        .map(|(k, (o, v))| (*o, (k.clone(), v.clone())))
        .collect()
}

fn partition_dir_size(data: &std::path::Path, topic: &str) -> u64 {
    std::fs::read_dir(data.join(format!("{topic}-0")))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_shrinks_to_its_latest_values() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), FAST_CLEANER).await;
    let mut c = b.client().await;
    let created = c.call(&compacted_topic("state", 1), 5).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let (latest, written) = update_keys(b.addr, "state", 40, 50, "a").await;

    // The cleaner runs on its own; everything but the active segment ends with one record
    // per key.
    let want = as_offsets(&latest);
    let compacted = wait_until(Duration::from_secs(20), || async {
        let got = consume(b.addr, "state").await;
        let stale = got.iter().filter(|(o, _)| !want.contains_key(o)).count();
        stale < 60 // at most the active segment's records
    })
    .await;
    assert!(compacted, "the cleaner compacted the topic");
    let got = consume(b.addr, "state").await;
    for (offset, kv) in &want {
        assert_eq!(
            got.get(offset),
            Some(kv),
            "the latest value of a key at {offset}"
        );
    }
    let after = partition_dir_size(dir.path(), "state");
    assert!(after * 4 < written, "{written} bytes fell to {after}");

    b.stop().await;
    let b = TestBroker::start_with(dir.path(), FAST_CLEANER).await;
    let again = consume(b.addr, "state").await;
    for (offset, kv) in &want {
        assert_eq!(again.get(offset), Some(kv), "after a restart, at {offset}");
    }
    b.stop().await;
}

/// offset -> (key, value) of the partition's whole log on broker `id`, from its files, and
/// the base offset of its active segment (which the cleaner never touches).
fn replica_records(
    cluster: &Cluster,
    id: i32,
    topic: &str,
) -> (BTreeMap<i64, (String, String)>, i64) {
    let partition = cluster.broker(id).broker.partitions.get(topic, 0).unwrap();
    let log = partition.log_reader();
    let active_base = *log.segment_base_offsets().last().unwrap();
    let mut out = BTreeMap::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let bytes = log.read(next, 1 << 20).unwrap().bytes;
        if bytes.is_empty() {
            break;
        }
        for r in decode_records(&bytes) {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            out.insert(r.offset, (key, value));
        }
        next = last_batch_end(&bytes);
    }
    (out, active_base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_compacts_to_the_same_records_at_the_same_offsets() {
    let mut cluster = Cluster::start_with(FAST_CLEANER).await;
    let controller = cluster.controller;
    let mut c = Client::connect(cluster.addr(controller)).await;
    let created = c.call(&compacted_topic("shared", 3), 5).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let leader = cluster
        .wait_state("shared", 0, Duration::from_secs(20), |s| {
            s.leader > 0 && s.isr.len() == 3
        })
        .await
        .expect("three replicas in sync")
        .leader;
    let (mut latest, _) = update_keys(cluster.addr(leader), "shared", 30, 40, "a").await;

    let same_everywhere =
        |cluster: &Cluster, ids: &[i32], want: &BTreeMap<i64, (String, String)>| {
            let logs: Vec<_> = ids
                .iter()
                .map(|id| replica_records(cluster, *id, "shared"))
                .collect();
            // Every latest value is there; older values only near the active segment (which
            // the cleaner never touches, and the high watermark's segment before it).
            let compacted = logs.iter().all(|(l, active_base)| {
                want.iter().all(|(o, kv)| l.get(o) == Some(kv))
                    && l.keys()
                        .filter(|o| !want.contains_key(o))
                        .all(|o| *o >= active_base - 60)
            });
            // Below that, the replicas hold the same records at the same offsets.
            let cut = logs.iter().map(|(_, a)| *a).min().unwrap_or(0) - 60;
            let below: Vec<Vec<_>> = logs.iter().map(|(l, _)| l.range(..cut).collect()).collect();
            compacted && below.windows(2).all(|w| w[0] == w[1])
        };
    let want = as_offsets(&latest);
    let ok = wait_until(Duration::from_secs(30), || async {
        same_everywhere(&cluster, &[1, 2, 3], &want)
    })
    .await;
    assert!(ok, "the three replicas compact to the same records");

    // The leader fails; a follower takes over, more updates arrive, and the two live
    // replicas again agree.
    cluster.crash(leader).await;
    let live: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let watcher = cluster.addr(live[0]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let new_leader = loop {
        let l = partition_state(watcher, "shared", 0)
            .await
            .map_or(-1, |s| s.leader);
        if l > 0 && l != leader {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a follower leads after the leader failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (more, _) = update_keys(cluster.addr(new_leader), "shared", 30, 10, "b").await;
    latest.extend(more);
    let want = as_offsets(&latest);
    let ok = wait_until(Duration::from_secs(30), || async {
        same_everywhere(&cluster, &live, &want)
    })
    .await;
    assert!(
        ok,
        "after a failover the live replicas compact to the same records"
    );
    cluster.stop().await;
}
