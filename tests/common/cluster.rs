//! Three in-process brokers, each a Raft voter, and the helpers the cluster tests share:
//! start, crash and restart brokers, read partition state from Metadata, create a
//! replicated topic, produce with acks=all, read a partition back below its high watermark.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::broker::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Request};
use kafka_protocol::records::Compression;
use tokio::io::AsyncWriteExt;

use super::*;

pub fn init_tracing() {
    // Quiet unless RUST_LOG is set (e.g. RUST_LOG=broker=info).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Polls `f` every 100 ms until it holds or `limit` passed.
pub async fn wait_until<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connects, or `None` when nothing listens (`Client::connect` panics on that).
pub async fn try_connect(addr: SocketAddr) -> Option<Client> {
    let probe = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    drop(probe);
    // A broker that went away between the probe and here makes the task panic: `None`.
    tokio::spawn(Client::connect(addr)).await.ok()
}

/// `Client::call` that answers `None` instead of panicking when the broker goes away (or
/// does not answer within 10 s).
pub async fn try_call<R: Request>(c: &mut Client, body: &R, version: i16) -> Option<R::Response> {
    let (cid, frame) = c.frame(body, version);
    let hv = ApiKey::try_from(R::KEY)
        .ok()?
        .response_header_version(version);
    let exchange = async {
        c.stream.write_all(&frame).await.ok()?;
        let (got, mut bytes) = c.read_frame(hv).await?;
        if got != cid {
            return None;
        }
        R::Response::decode(&mut bytes, version).ok()
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

pub async fn try_metadata(addr: SocketAddr) -> Option<MetadataResponse> {
    let mut c = try_connect(addr).await?;
    try_call(&mut c, &MetadataRequest::default().with_topics(None), 12).await
}

/// One partition as a broker's metadata (v12) reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: BTreeSet<i32>,
}

pub fn partition_in(md: &MetadataResponse, topic: &str, index: i32) -> Option<PartitionState> {
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))?;
    let p = t.partitions.iter().find(|p| p.partition_index == index)?;
    Some(PartitionState {
        leader: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
    })
}

pub async fn partition_state(addr: SocketAddr, topic: &str, index: i32) -> Option<PartitionState> {
    partition_in(&try_metadata(addr).await?, topic, index)
}

/// Three brokers, with the directories and configs to restart any of them.
pub struct Cluster {
    pub dirs: Vec<tempfile::TempDir>,
    pub extras: Vec<String>,
    pub brokers: Vec<Option<TestBroker>>,
    pub controller: i32,
}

impl Cluster {
    /// Starts three brokers together and waits until all list three brokers and agree on
    /// the controller.
    pub async fn start() -> Cluster {
        Cluster::start_with("").await
    }

    /// [`Cluster::start`] with `extra` (", \"k\": v" pairs) added to every broker's
    /// top-level config.
    pub async fn start_with(extra: &str) -> Cluster {
        init_tracing();
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let raft_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let extras: Vec<String> = (1..=3)
            .map(|n| format!("{}{extra}", cluster_extra(n, &raft_ports)))
            .collect();
        let (b1, b2, b3) = tokio::join!(
            TestBroker::start_with(dirs[0].path(), &extras[0]),
            TestBroker::start_with(dirs[1].path(), &extras[1]),
            TestBroker::start_with(dirs[2].path(), &extras[2]),
        );
        let mut cluster = Cluster {
            dirs,
            extras,
            brokers: vec![Some(b1), Some(b2), Some(b3)],
            controller: -1,
        };
        let addrs: Vec<SocketAddr> = (1..=3).map(|id| cluster.addr(id)).collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        let controller = loop {
            let mut ids = HashSet::new();
            for a in &addrs {
                match try_metadata(*a).await {
                    Some(md) if md.brokers.len() == 3 && md.controller_id.0 > 0 => {
                        ids.insert(md.controller_id.0);
                    }
                    _ => {
                        ids.insert(-1);
                    }
                }
            }
            if ids.len() == 1 && !ids.contains(&-1) {
                break *ids.iter().next().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "three brokers agree on one controller"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        cluster.controller = controller;
        cluster
    }

    pub fn broker(&self, id: i32) -> &TestBroker {
        self.brokers[id as usize - 1]
            .as_ref()
            .unwrap_or_else(|| panic!("broker {id} is down"))
    }

    /// The client address of a running broker (it changes when the broker restarts).
    pub fn addr(&self, id: i32) -> SocketAddr {
        self.broker(id).addr
    }

    /// Kills broker `id`; returns the abandoned in-process broker (its logs stay open).
    pub async fn crash(&mut self, id: i32) -> Arc<Broker> {
        let b = self.brokers[id as usize - 1].take().expect("broker is up");
        let abandoned = b.broker.clone();
        b.crash().await;
        // The abandoned broker's background tasks still run in this process: stop its
        // follower fetchers, which a real crash would have stopped too.
        abandoned.replication.stop_all();
        abandoned
    }

    /// Starts broker `id` again from its data directory.
    pub async fn restart(&mut self, id: i32) {
        assert!(self.brokers[id as usize - 1].is_none(), "broker {id} is up");
        let i = id as usize - 1;
        let b = TestBroker::start_with(self.dirs[i].path(), &self.extras[i]).await;
        self.brokers[i] = Some(b);
    }

    pub async fn stop(mut self) {
        for b in self.brokers.iter_mut().filter_map(Option::take) {
            b.stop().await;
        }
    }

    /// The partition state as the controller sees it.
    pub async fn state(&self, topic: &str, index: i32) -> Option<PartitionState> {
        partition_state(self.addr(self.controller), topic, index).await
    }

    /// Waits (bounded) until the controller's view of the partition satisfies `pred`.
    pub async fn wait_state(
        &self,
        topic: &str,
        index: i32,
        limit: Duration,
        pred: impl Fn(&PartitionState) -> bool,
    ) -> Result<PartitionState, Option<PartitionState>> {
        let deadline = Instant::now() + limit;
        loop {
            let last = self.state(topic, index).await;
            if last.as_ref().is_some_and(&pred) {
                return Ok(last.unwrap());
            }
            if Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The brokers of the partition the tests use: leader `L` (not the controller), the
/// follower `F` first in line to replace it, and the controller `C`; and its index.
pub struct Roles {
    pub leader: i32,
    pub follower: i32,
    pub controller: i32,
    pub partition: i32,
}

/// Creates `topic` with three partitions of replication factor 3 through the controller,
/// and waits until the partition led by `L = C % 3 + 1` has all three replicas in sync and
/// its leader takes acks=all writes: the record `first` is at offset 0.
pub async fn replicated_topic(
    cluster: &Cluster,
    topic: &str,
    min_insync: i32,
    first: &str,
) -> Roles {
    let c = cluster.controller;
    let l = c % 3 + 1;
    let f = l % 3 + 1;
    let roles = Roles {
        leader: l,
        follower: f,
        controller: c,
        partition: l - 1,
    };
    let req = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(tn(topic))
            .with_num_partitions(3)
            .with_replication_factor(3)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(s("min.insync.replicas"))
                    .with_value(Some(s(&min_insync.to_string()))),
            ])])
        .with_timeout_ms(5000);
    let mut client = Client::connect(cluster.addr(c)).await;
    let created = client.call(&req, 7).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");

    // Every broker (the leader in particular) sees the placement.
    let all: BTreeSet<i32> = [1, 2, 3].into();
    let (all, partition) = (&all, roles.partition);
    for id in 1..=3 {
        let addr = cluster.addr(id);
        let seen = wait_until(Duration::from_secs(10), || async move {
            partition_state(addr, topic, partition)
                .await
                .is_some_and(|p| p.leader == l && p.isr == *all)
        })
        .await;
        assert!(
            seen,
            "broker {id} sees partition {} led by {l}",
            roles.partition
        );
    }
    let state = cluster.state(topic, roles.partition).await.unwrap();
    assert_eq!(state.replicas, vec![l, f, c], "placement");
    let offset = produce_acked(cluster.addr(l), topic, roles.partition, first).await;
    assert_eq!(offset, 0);
    roles
}

/// One acks=all single-record produce; the partition's error code and base offset, or
/// `None` when the broker did not answer.
pub async fn produce_once(
    c: &mut Client,
    topic: &str,
    partition: i32,
    value: &str,
) -> Option<(i16, i64)> {
    produce_with_acks(c, topic, partition, value, -1).await
}

/// [`produce_once`] with the given `acks`.
pub async fn produce_with_acks(
    c: &mut Client,
    topic: &str,
    partition: i32,
    value: &str,
    acks: i16,
) -> Option<(i16, i64)> {
    let records = batch(&[record("k", value, 1)], Compression::None);
    let req = produce_request(topic, partition, records, acks);
    let resp = try_call(c, &req, 9).await?;
    let p = &resp.responses[0].partition_responses[0];
    Some((p.error_code, p.base_offset))
}

/// Produces `value` with acks=all until acknowledged, retrying only answers that mean the
/// record was not appended (the leader has not taken over yet); the offset it got.
pub async fn produce_acked(addr: SocketAddr, topic: &str, partition: i32, value: &str) -> i64 {
    let retriable = [
        ResponseError::NotLeaderOrFollower.code(),
        ResponseError::UnknownTopicOrPartition.code(),
        ResponseError::LeaderNotAvailable.code(),
        ResponseError::NotEnoughReplicas.code(),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = Client::connect(addr).await;
    loop {
        let answer = produce_once(&mut c, topic, partition, value).await;
        match answer {
            Some((0, offset)) => return offset,
            Some((code, _)) if retriable.contains(&code) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("produce of {value} to {addr} failed: {other:?}"),
        }
    }
}

/// Reads the partition from `addr` (a consumer fetch, which only sees records below the
/// high watermark) once its high watermark reached `at_least`: every (offset, value) from
/// offset 0 up to the high watermark.
pub async fn read_partition(
    addr: SocketAddr,
    topic: &str,
    partition: i32,
    at_least: i64,
) -> Vec<(i64, String)> {
    let mut c = Client::connect(addr).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let hw = loop {
        let p = fetch(&mut c, topic, partition, 0).await;
        if p.error_code == 0 && p.high_watermark >= at_least {
            break p.high_watermark;
        }
        assert!(
            Instant::now() < deadline,
            "high watermark of {topic}-{partition} on {addr} reaches {at_least} (error {}, high watermark {})",
            p.error_code,
            p.high_watermark
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut out = Vec::new();
    let mut next = 0;
    while next < hw {
        let p = fetch(&mut c, topic, partition, next).await;
        assert_eq!(p.error_code, 0, "fetch at {next}");
        let records = decode_records(&p.records.unwrap_or_default());
        assert!(
            !records.is_empty(),
            "records at {next} below the high watermark {hw}"
        );
        for r in records {
            assert!(
                r.offset < p.high_watermark,
                "a consumer fetch returned offset {} at or above the high watermark {}",
                r.offset,
                p.high_watermark
            );
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            out.push((r.offset, value));
            next = r.offset + 1;
        }
    }
    out
}

pub fn assert_consecutive_from_zero(log: &[(i64, String)]) {
    for (i, (offset, value)) in log.iter().enumerate() {
        assert_eq!(*offset, i as i64, "offsets are consecutive (at {value})");
    }
}
