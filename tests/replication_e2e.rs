//! Partition replication across three in-process brokers (each a Raft voter), driven only
//! through the Kafka protocol except where a test needs to forge a crashed broker's disk:
//!
//! 1. `leader_kill_under_acks_all_load_loses_no_acknowledged_record`: a producer keeps
//!    sending acks=all records while the partition leader is killed; the new leader (in a
//!    higher leader epoch) holds every acknowledged record exactly once, at the offset it
//!    was acknowledged with, and takes acks=all writes with the two remaining in-sync
//!    replicas (min.insync.replicas 2).
//! 2. `a_follower_that_falls_behind_leaves_the_isr_and_rejoins_after_catching_up`: a killed
//!    follower leaves the ISR, acks=all still works with two in-sync replicas, the restarted
//!    follower catches up and rejoins, and after the leader is then killed the rejoined
//!    follower leads with every record.
//! 3. `a_returning_old_leader_truncates_its_divergent_tail`: batches written to a killed
//!    leader's log in its old epoch that never reached the followers are truncated when it
//!    returns (OffsetForLeaderEpoch against the new leader); once it is the preferred leader
//!    again it serves exactly the committed records.
//! 4. `min_insync_replicas_refuses_acks_all_writes_the_isr_cannot_cover`: with
//!    min.insync.replicas 3 and a dead follower out of the ISR, acks=all writes are refused
//!    with NOT_ENOUGH_REPLICAS before anything is appended, acks=1 writes still succeed,
//!    and acks=all works again once the follower is back in the ISR.
//! 5. `committed_offsets_survive_the_loss_of_the_group_coordinator`: `__consumer_offsets`
//!    has three replicas; an offset committed to a group's coordinator is served, with its
//!    metadata, by the broker that coordinates the group after the first one died, which
//!    then takes new commits.
//!
//! Placement: partition `i` of a topic gets replicas starting at broker `i + 1`, so with
//! controller `C`, the tests use the partition led by `L = C % 3 + 1`, whose replicas are
//! `[L, F, C]` with `F = L % 3 + 1`. Killing `L` never kills the controller, and the
//! election is deterministic: `F` is the first live in-sync replica.
//!
//! A killed broker is `TestBroker::crash` (server and Raft node stopped, logs left open)
//! plus stopping its replica fetchers: in one process the crashed broker's background tasks
//! keep running, and a "dead" follower would otherwise keep replicating.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::log::{validate_producer_batches, PartitionLog};
use common::cluster::*;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

// ---------------------------------------------------------------------------------------
// 1. Leader killed under acks=all load
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Ack {
    value: String,
    broker: i32,
    offset: i64,
}

/// Shared between the test and its producer task.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    /// Brokers the producer must not use (killed by the test).
    down: Mutex<HashSet<i32>>,
    acked: Mutex<Vec<Ack>>,
    /// Failed attempts: the error code, or -1 when the broker did not answer.
    failures: Mutex<Vec<(i32, i16)>>,
}

impl Load {
    fn acks_from(&self, pred: impl Fn(i32) -> bool) -> usize {
        self.acked
            .lock()
            .unwrap()
            .iter()
            .filter(|a| pred(a.broker))
            .count()
    }
}

/// Sends acks=all single-record batches with fresh values ("v1", "v2", ...) to whichever
/// broker the metadata names leader. A value is never sent twice: after an error the
/// producer looks the leader up again and goes on with a new value.
async fn producer(load: Arc<Load>, addrs: HashMap<i32, SocketAddr>, topic: String, partition: i32) {
    let mut n = 0u64;
    let mut leader: Option<(i32, Client)> = None;
    while !load.stop.load(Ordering::SeqCst) {
        if leader.is_none() {
            let down = load.down.lock().unwrap().clone();
            for id in 1..=3 {
                if down.contains(&id) {
                    continue;
                }
                let Some(p) = partition_state(addrs[&id], &topic, partition).await else {
                    continue;
                };
                if p.leader > 0 && !down.contains(&p.leader) {
                    if let Some(c) = try_connect(addrs[&p.leader]).await {
                        leader = Some((p.leader, c));
                    }
                    break;
                }
            }
            if leader.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let (id, c) = leader.as_mut().unwrap();
        let id = *id;
        n += 1;
        let value = format!("v{n}");
        match produce_once(c, &topic, partition, &value).await {
            Some((0, offset)) => load.acked.lock().unwrap().push(Ack {
                value,
                broker: id,
                offset,
            }),
            other => {
                let code = other.map_or(-1, |(code, _)| code);
                load.failures.lock().unwrap().push((id, code));
                leader = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_under_acks_all_load_loses_no_acknowledged_record() {
    let mut cluster = Cluster::start().await;
    let topic = "load";
    let roles = replicated_topic(&cluster, topic, 2, "v0").await;
    let (l, f, p) = (roles.leader, roles.follower, roles.partition);
    let before = cluster.state(topic, p).await.unwrap();
    assert_eq!(before.leader, l);

    let load = Arc::new(Load::default());
    let addrs: HashMap<i32, SocketAddr> = (1..=3).map(|id| (id, cluster.addr(id))).collect();
    let task = tokio::spawn(producer(load.clone(), addrs, topic.to_string(), p));

    // At least a hundred acknowledged records on the first leader (polled, so usually
    // many more)...
    let warmed = wait_until(Duration::from_secs(20), || {
        let load = load.clone();
        async move { load.acks_from(|_| true) >= 100 }
    })
    .await;
    assert!(warmed, "100 acks=all records acknowledged by the leader");

    // ...then the leader dies while the producer keeps going, until the new leader has
    // acknowledged at least a hundred more.
    load.down.lock().unwrap().insert(l);
    let acked_before_kill = load.acks_from(|_| true);
    let _abandoned = cluster.crash(l).await;
    let moved = wait_until(Duration::from_secs(30), || {
        let load = load.clone();
        async move { load.acks_from(|b| b != l) >= 100 }
    })
    .await;
    load.stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the producer stops")
        .expect("the producer did not panic");
    let acked = load.acked.lock().unwrap().clone();
    let failures = load.failures.lock().unwrap().clone();
    assert!(
        moved,
        "100 acks=all records acknowledged after the leader died; {} acks, failures {failures:?}",
        acked.len()
    );

    // The first live in-sync replica took over in a higher epoch, without the dead broker
    // in its ISR, and two in-sync replicas satisfied min.insync.replicas 2.
    let after = cluster.state(topic, p).await.unwrap();
    assert_eq!(after.leader, f, "the next in-sync replica leads: {after:?}");
    assert!(
        after.leader_epoch > before.leader_epoch,
        "{before:?} -> {after:?}"
    );
    assert!(!after.isr.contains(&l), "{after:?}");
    assert!(acked.iter().all(|a| a.broker == l || a.broker == f));
    assert!(acked_before_kill >= 100);

    // Every acknowledged record is on the new leader exactly once, at its acknowledged
    // offset; no value appears twice (none was ever sent twice).
    let last = acked.iter().map(|a| a.offset).max().unwrap();
    let log = read_partition(cluster.addr(f), topic, p, last + 1).await;
    assert_consecutive_from_zero(&log);
    let mut at: HashMap<&str, Vec<i64>> = HashMap::new();
    for (offset, value) in &log {
        at.entry(value.as_str()).or_default().push(*offset);
    }
    let duplicated: Vec<_> = at.iter().filter(|(_, o)| o.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "values written twice: {duplicated:?}"
    );
    for a in &acked {
        assert_eq!(
            at.get(a.value.as_str()),
            Some(&vec![a.offset]),
            "acknowledged {a:?} is on the new leader once, at its offset"
        );
    }
    cluster.stop().await;
}

// ---------------------------------------------------------------------------------------
// 2. A follower leaves the ISR and rejoins
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_falls_behind_leaves_the_isr_and_rejoins_after_catching_up() {
    let mut cluster = Cluster::start().await;
    let topic = "isr";
    let roles = replicated_topic(&cluster, topic, 2, "warm-up").await;
    let (l, f, c, p) = (
        roles.leader,
        roles.follower,
        roles.controller,
        roles.partition,
    );

    // The follower dies: the controller fences it and it leaves the ISR.
    let abandoned = cluster.crash(f).await;
    let shrunk = cluster
        .wait_state(topic, p, Duration::from_secs(15), |s| {
            s.leader == l && s.isr == [l, c].into()
        })
        .await;
    assert!(
        shrunk.is_ok(),
        "the dead follower leaves the ISR: {shrunk:?}"
    );
    let epoch = shrunk.unwrap().leader_epoch;

    // acks=all works with two in-sync replicas (min.insync.replicas 2).
    let mut to_leader = Client::connect(cluster.addr(l)).await;
    for i in 0..50 {
        let value = format!("r{i}");
        let answer = produce_once(&mut to_leader, topic, p, &value).await;
        assert_eq!(answer, Some((0, 1 + i)), "acks=all produce of {value}");
    }
    // The dead follower really fell behind: it has at most the warm-up record.
    let behind = abandoned
        .partitions
        .get(topic, p)
        .unwrap()
        .log_reader()
        .log_end_offset();
    assert!(behind <= 1, "the dead follower's log ends at {behind}");

    // Restarted, it catches up and rejoins the ISR.
    cluster.restart(f).await;
    let rejoined = cluster
        .wait_state(topic, p, Duration::from_secs(30), |s| {
            s.leader == l && s.isr == [1, 2, 3].into()
        })
        .await;
    assert!(
        rejoined.is_ok(),
        "the follower rejoins the ISR: {rejoined:?}"
    );
    let rejoined = rejoined.unwrap();
    assert_eq!(
        rejoined.leader_epoch, epoch,
        "ISR changes keep the leader epoch"
    );
    let follower_end = cluster
        .broker(f)
        .broker
        .partitions
        .get(topic, p)
        .unwrap()
        .log_reader()
        .log_end_offset();
    assert_eq!(follower_end, 51, "the rejoined follower holds every record");

    // The proof: the leader dies, the rejoined follower (first in line) leads, and serves
    // every record.
    cluster.crash(l).await;
    let failover = cluster
        .wait_state(topic, p, Duration::from_secs(15), |s| {
            s.leader == f && s.leader_epoch > epoch
        })
        .await;
    assert!(
        failover.is_ok(),
        "the rejoined follower leads: {failover:?}"
    );
    assert_eq!(failover.unwrap().isr, [f, c].into());
    let log = read_partition(cluster.addr(f), topic, p, 51).await;
    assert_consecutive_from_zero(&log);
    let expected: Vec<String> = std::iter::once("warm-up".to_string())
        .chain((0..50).map(|i| format!("r{i}")))
        .collect();
    let values: Vec<String> = log.into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, expected);
    // And it takes acks=all writes with the controller as the other in-sync replica.
    let next = produce_acked(cluster.addr(f), topic, p, "after").await;
    assert_eq!(next, 51);
    cluster.stop().await;
}

// ---------------------------------------------------------------------------------------
// 3. A returning leader truncates what it wrote alone
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_returning_old_leader_truncates_its_divergent_tail() {
    let mut cluster = Cluster::start().await;
    let topic = "diverge";
    let roles = replicated_topic(&cluster, topic, 1, "old-0").await;
    let (l, n, c, p) = (
        roles.leader,
        roles.follower,
        roles.controller,
        roles.partition,
    );

    // Ten committed records, replicated everywhere.
    let mut to_leader = Client::connect(cluster.addr(l)).await;
    for i in 1..10 {
        let answer = produce_once(&mut to_leader, topic, p, &format!("old-{i}")).await;
        assert_eq!(answer, Some((0, i)));
    }
    drop(to_leader);
    let old = cluster.state(topic, p).await.unwrap();
    assert_eq!((old.leader, old.isr.len()), (l, 3), "{old:?}");

    // The leader dies. Forge what a leader that died mid-write leaves behind: batches in
    // its epoch, on its disk only.
    let abandoned = cluster.crash(l).await;
    let config = abandoned
        .partitions
        .get(topic, p)
        .unwrap()
        .log_reader()
        .config()
        .clone();
    let dir = cluster.dirs[l as usize - 1]
        .path()
        .join(format!("{topic}-{p}"));
    let mut log = PartitionLog::open(&dir, config).expect("the dead leader's log opens");
    assert_eq!(log.log_end_offset(), 10);
    for i in 0..5 {
        let bytes = batch(&[record("k", &format!("stale-{i}"), 1)], Compression::None);
        let headers = validate_producer_batches(&bytes, 1 << 20).unwrap();
        log.append(&bytes, &headers, old.leader_epoch, broker::broker::now_ms())
            .unwrap();
    }
    assert_eq!(log.log_end_offset(), 15);
    log.close().unwrap();

    // The next in-sync replica leads in the next epoch and takes three new records.
    let new = cluster
        .wait_state(topic, p, Duration::from_secs(15), |s| s.leader == n)
        .await;
    assert!(new.is_ok(), "a new leader is elected: {new:?}");
    let new = new.unwrap();
    assert_eq!(new.leader_epoch, old.leader_epoch + 1);
    assert_eq!(new.isr, [n, c].into());
    for i in 0..3 {
        let offset = produce_acked(cluster.addr(n), topic, p, &format!("new-{i}")).await;
        assert_eq!(offset, 10 + i);
    }

    // The old leader returns: it truncates to where its epoch ended on the new leader,
    // catches up, rejoins the ISR, and gets its preferred leadership back.
    cluster.restart(l).await;
    let rejoined = cluster
        .wait_state(topic, p, Duration::from_secs(30), |s| {
            s.isr == [1, 2, 3].into()
        })
        .await;
    assert!(
        rejoined.is_ok(),
        "the old leader rejoins the ISR: {rejoined:?}"
    );
    let restored = cluster
        .wait_state(topic, p, Duration::from_secs(20), |s| s.leader == l)
        .await;
    assert!(
        restored.is_ok(),
        "the preferred leader is restored: {restored:?}"
    );
    assert!(restored.unwrap().leader_epoch > new.leader_epoch);
    let end = cluster
        .broker(l)
        .broker
        .partitions
        .get(topic, p)
        .unwrap()
        .log_reader()
        .log_end_offset();
    assert_eq!(
        end, 13,
        "the divergent tail is gone from the old leader's log"
    );

    let log = read_partition(cluster.addr(l), topic, p, 13).await;
    assert_consecutive_from_zero(&log);
    let values: Vec<String> = log.into_iter().map(|(_, v)| v).collect();
    let expected: Vec<String> = (0..10)
        .map(|i| format!("old-{i}"))
        .chain((0..3).map(|i| format!("new-{i}")))
        .collect();
    assert_eq!(values, expected);
    assert!(values.iter().all(|v| !v.starts_with("stale-")));
    cluster.stop().await;
}

// ---------------------------------------------------------------------------------------
// 4. min.insync.replicas refuses acks=all writes the ISR cannot cover
// ---------------------------------------------------------------------------------------

/// ListOffsets (v7) for the latest offset of the partition, asked to `addr`: the error code
/// and the offset (the high watermark, for a consumer).
async fn latest_offset(addr: SocketAddr, topic: &str, partition: i32) -> (i16, i64) {
    let mut c = Client::connect(addr).await;
    let req = list_offsets_request(topic, partition, -1);
    let resp = c.call(&req, 7).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset)
}

/// The log end offset of broker `id`'s replica of the partition.
fn log_end(cluster: &Cluster, id: i32, topic: &str, partition: i32) -> i64 {
    cluster
        .broker(id)
        .broker
        .partitions
        .get(topic, partition)
        .unwrap()
        .log_reader()
        .log_end_offset()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn min_insync_replicas_refuses_acks_all_writes_the_isr_cannot_cover() {
    let mut cluster = Cluster::start().await;
    let topic = "mir";
    // min.insync.replicas 3: "all-0" at offset 0 was acknowledged with acks=all by all three.
    let roles = replicated_topic(&cluster, topic, 3, "all-0").await;
    let (l, f, c, p) = (
        roles.leader,
        roles.follower,
        roles.controller,
        roles.partition,
    );
    let leader_addr = cluster.addr(l);
    let mut to_leader = Client::connect(leader_addr).await;
    let answer = produce_once(&mut to_leader, topic, p, "all-1").await;
    assert_eq!(answer, Some((0, 1)), "acks=all with three in-sync replicas");

    // The follower (neither leader nor controller) dies; the controller fences it and it
    // leaves the ISR, as the controller and then the leader itself report.
    cluster.crash(f).await;
    let two: BTreeSet<i32> = [l, c].into();
    let shrunk = cluster
        .wait_state(topic, p, Duration::from_secs(15), |s| {
            s.leader == l && s.isr == two
        })
        .await;
    assert!(
        shrunk.is_ok(),
        "the dead follower leaves the ISR: {shrunk:?}"
    );
    let epoch = shrunk.unwrap().leader_epoch;
    let two = &two;
    let leader_sees = wait_until(Duration::from_secs(10), || async move {
        partition_state(leader_addr, topic, p)
            .await
            .is_some_and(|s| s.leader == l && s.isr == *two)
    })
    .await;
    assert!(leader_sees, "the leader's metadata shows the shrunk ISR");
    // The leader brings its replica state in line with a new image in a background sync
    // just after the image is published: give that a moment (if it had not run, the write
    // below would be appended and answered NOT_ENOUGH_REPLICAS_AFTER_APPEND, code 20).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Everything so far is committed: log end, high watermark and latest offset are 2.
    assert_eq!(log_end(&cluster, l, topic, p), 2);
    assert_eq!(fetch(&mut to_leader, topic, p, 0).await.high_watermark, 2);
    assert_eq!(latest_offset(leader_addr, topic, p).await, (0, 2));

    // acks=all: refused before the append.
    let refused = produce_with_acks(&mut to_leader, topic, p, "refused-0", -1).await;
    assert_eq!(
        refused.map(|(code, _)| code),
        Some(ResponseError::NotEnoughReplicas.code()),
        "acks=all with two in-sync replicas and min.insync.replicas 3: {refused:?}"
    );
    assert_eq!(
        log_end(&cluster, l, topic, p),
        2,
        "a refused write is not appended"
    );
    let hw = fetch(&mut to_leader, topic, p, 0).await;
    assert_eq!((hw.error_code, hw.high_watermark), (0, 2));
    assert_eq!(latest_offset(leader_addr, topic, p).await, (0, 2));

    // acks=1: min.insync.replicas does not apply; the record is appended and, with the
    // controller's replica in sync, committed.
    let one = produce_with_acks(&mut to_leader, topic, p, "one", 1).await;
    assert_eq!(one, Some((0, 2)), "acks=1 with two in-sync replicas");
    // acks=all is still refused, and appends nothing after "one".
    let refused = produce_with_acks(&mut to_leader, topic, p, "refused-1", -1).await;
    assert_eq!(
        refused.map(|(code, _)| code),
        Some(ResponseError::NotEnoughReplicas.code()),
        "{refused:?}"
    );
    assert_eq!(log_end(&cluster, l, topic, p), 3);
    let log = read_partition(leader_addr, topic, p, 3).await;
    assert_consecutive_from_zero(&log);
    let values: Vec<String> = log.into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["all-0", "all-1", "one"]);
    assert_eq!(latest_offset(leader_addr, topic, p).await, (0, 3));

    // The follower returns, catches up and rejoins the ISR (same leader epoch).
    cluster.restart(f).await;
    let rejoined = cluster
        .wait_state(topic, p, Duration::from_secs(30), |s| {
            s.leader == l && s.isr == [1, 2, 3].into()
        })
        .await;
    assert!(
        rejoined.is_ok(),
        "the follower rejoins the ISR: {rejoined:?}"
    );
    assert_eq!(rejoined.unwrap().leader_epoch, epoch);
    // acks=all works again (NOT_ENOUGH_REPLICAS, retried, until the leader applied the ISR).
    let offset = produce_acked(leader_addr, topic, p, "all-again").await;
    assert_eq!(offset, 3);
    assert_eq!(
        log_end(&cluster, f, topic, p),
        4,
        "the acknowledged acks=all record is on the returned follower"
    );
    let log = read_partition(leader_addr, topic, p, 4).await;
    assert_consecutive_from_zero(&log);
    let values: Vec<String> = log.into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["all-0", "all-1", "one", "all-again"]);
    assert_eq!(latest_offset(leader_addr, topic, p).await, (0, 4));
    cluster.stop().await;
}

// ---------------------------------------------------------------------------------------
// 5. Committed offsets survive the loss of the group coordinator
// ---------------------------------------------------------------------------------------

/// `__consumer_offsets` with three replicas (and three partitions, to keep it small), and
/// no initial rebalance delay.
const REPLICATED_OFFSETS: &str = r#", "offsets_topic_replication_factor": 3, "offsets_topic_partitions": 3, "group_initial_rebalance_delay": "0s""#;

/// Errors a client answers by finding the coordinator again and retrying:
/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
fn coordinator_retriable(code: i16) -> bool {
    [
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::CoordinatorNotAvailable.code(),
        ResponseError::NotCoordinator.code(),
    ]
    .contains(&code)
}

/// FindCoordinator (v4) for `group`, asked to `addr`: the coordinator's node id and
/// address, or the error code; `None` when the broker did not answer.
async fn find_coordinator(addr: SocketAddr, group: &str) -> Option<Result<(i32, SocketAddr), i16>> {
    let mut c = try_connect(addr).await?;
    let req = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s(group)]);
    let resp = try_call(&mut c, &req, 4).await?;
    let found = resp.coordinators.first()?;
    if found.error_code != 0 {
        return Some(Err(found.error_code));
    }
    let at: SocketAddr = format!("{}:{}", found.host.as_str(), found.port)
        .parse()
        .ok()?;
    Some(Ok((found.node_id.0, at)))
}

/// An admin OffsetCommit (v8: no generation, no member) of `offset` with `metadata` for
/// `data` partition 0, sent to `addr`: `Ok` or the partition's error code.
async fn commit_offset(
    addr: SocketAddr,
    group: &str,
    offset: i64,
    metadata: &str,
) -> Option<Result<(), i16>> {
    let mut c = try_connect(addr).await?;
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(tn("data"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(s(metadata))),
                ]),
        ]);
    let resp = try_call(&mut c, &req, 8).await?;
    let code = resp.topics.first()?.partitions.first()?.error_code;
    Some(if code == 0 { Ok(()) } else { Err(code) })
}

/// OffsetFetch (v8) of `data` partition 0 for `group`, sent to `addr`: the committed offset
/// and metadata, or the group's (or partition's) error code.
async fn fetch_offset(addr: SocketAddr, group: &str) -> Option<Result<(i64, Option<String>), i16>> {
    let mut c = try_connect(addr).await?;
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(tn("data"))
                    .with_partition_indexes(vec![0]),
            ])),
    ]);
    let resp = try_call(&mut c, &req, 8).await?;
    let g = resp.groups.first()?;
    if g.error_code != 0 {
        return Some(Err(g.error_code));
    }
    let p = g.topics.first()?.partitions.first()?;
    if p.error_code != 0 {
        return Some(Err(p.error_code));
    }
    Some(Ok((
        p.committed_offset,
        p.metadata.as_ref().map(|m| m.to_string()),
    )))
}

/// Calls `f` until it answers something other than nothing or a retriable coordinator
/// error, or `limit` passed; its last answer.
async fn until_coordinated<T, F, Fut>(limit: Duration, mut f: F) -> Option<Result<T, i16>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Result<T, i16>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let got = f().await;
        let retry = match &got {
            None => true,
            Some(Err(code)) => coordinator_retriable(*code),
            Some(Ok(_)) => false,
        };
        if !retry || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_offsets_survive_the_loss_of_the_group_coordinator() {
    let mut cluster = Cluster::start_with(REPLICATED_OFFSETS).await;
    let c = cluster.controller;
    let offsets_topic = broker::group::OFFSETS_TOPIC;

    // The topic whose offsets the group commits, seen by every broker.
    let req = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(tn("data"))
            .with_num_partitions(3)
            .with_replication_factor(3)])
        .with_timeout_ms(5000);
    let created = Client::connect(cluster.addr(c)).await.call(&req, 7).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    for id in 1..=3 {
        let addr = cluster.addr(id);
        let seen = wait_until(Duration::from_secs(10), || async move {
            partition_state(addr, "data", 0)
                .await
                .is_some_and(|p| p.leader > 0 && p.replicas.len() == 3)
        })
        .await;
        assert!(seen, "broker {id} sees data-0");
    }

    // A group whose coordinator is not the controller (the first FindCoordinator creates
    // `__consumer_offsets`).
    let mut chosen = None;
    for n in 0..20 {
        let group = format!("g{n}");
        let g = group.as_str();
        let addr = cluster.addr(c);
        let found =
            until_coordinated(Duration::from_secs(15), move || find_coordinator(addr, g)).await;
        match found {
            Some(Ok((id, at))) if id != c => {
                chosen = Some((group, id, at));
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("FindCoordinator for {group}: {other:?}"),
        }
    }
    let (group, old, old_addr) = chosen.expect("a group coordinated outside the controller");
    let g = group.as_str();
    assert_eq!(old_addr, cluster.addr(old), "the coordinator's address");
    let index = broker::group::offsets::partition_for(g, 3);
    let before = cluster.state(offsets_topic, index).await;
    let before = before.expect("__consumer_offsets is in the metadata");
    assert_eq!(before.leader, old, "{before:?}");
    assert_eq!(before.replicas.len(), 3, "{before:?}");

    // The admin commit on the coordinator; it is answered once replicated to the ISR.
    let committed = until_coordinated(Duration::from_secs(15), move || {
        commit_offset(old_addr, g, 42, "m")
    })
    .await;
    assert_eq!(committed, Some(Ok(())), "commit of 42 to broker {old}");
    let fetched =
        until_coordinated(Duration::from_secs(10), move || fetch_offset(old_addr, g)).await;
    assert_eq!(fetched, Some(Ok((42, Some("m".to_string())))));

    // The coordinator dies. A surviving broker names another, live coordinator, which
    // loaded the group's offsets from its replica of `__consumer_offsets`.
    let _abandoned = cluster.crash(old).await;
    let survivors: Vec<i32> = (1..=3).filter(|id| *id != old).collect();
    let addrs: HashMap<i32, SocketAddr> = survivors
        .iter()
        .map(|id| (*id, cluster.addr(*id)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let (new, new_addr) = 'found: loop {
        for &asked in &survivors {
            let answer = find_coordinator(addrs[&asked], g).await;
            let Some(Ok((id, at))) = answer else {
                if let Some(Err(code)) = answer {
                    assert!(coordinator_retriable(code), "FindCoordinator error {code}");
                }
                seen.push(format!("{asked}: {answer:?}"));
                continue;
            };
            if id == old || !addrs.contains_key(&id) || addrs[&id] != at {
                seen.push(format!("{asked}: coordinator {id} at {at}"));
                continue;
            }
            let offset = fetch_offset(at, g).await;
            match &offset {
                Some(Ok(_)) => {
                    assert_eq!(
                        offset,
                        Some(Ok((42, Some("m".to_string())))),
                        "the new coordinator {id} serves the committed offset"
                    );
                    break 'found (id, at);
                }
                Some(Err(code)) => {
                    assert!(coordinator_retriable(*code), "OffsetFetch error {code}")
                }
                None => {}
            }
            seen.push(format!("{asked}: coordinator {id}, OffsetFetch {offset:?}"));
        }
        assert!(
            Instant::now() < deadline,
            "a live broker coordinates {g} and serves its offset; last answers: {:?}",
            &seen[seen.len().saturating_sub(6)..]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(new, old);
    let after = cluster.state(offsets_topic, index).await.unwrap();
    assert_eq!(after.leader, new, "{after:?}");
    assert!(
        after.leader_epoch > before.leader_epoch,
        "{before:?} -> {after:?}"
    );
    assert!(!after.isr.contains(&old), "{after:?}");
    // Both survivors agree on the coordinator.
    for &asked in &survivors {
        let answer = find_coordinator(addrs[&asked], g).await;
        assert_eq!(answer, Some(Ok((new, new_addr))), "asked to broker {asked}");
    }

    // The new coordinator takes commits.
    let committed = until_coordinated(Duration::from_secs(15), move || {
        commit_offset(new_addr, g, 43, "m2")
    })
    .await;
    assert_eq!(committed, Some(Ok(())), "commit of 43 to broker {new}");
    let fetched =
        until_coordinated(Duration::from_secs(10), move || fetch_offset(new_addr, g)).await;
    assert_eq!(fetched, Some(Ok((43, Some("m2".to_string())))));
    cluster.stop().await;
}
