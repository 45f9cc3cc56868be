//! In-process clusters on ephemeral ports: every node is a real [`Manager`] with its own data
//! directory, talking TCP to the others. Listeners are bound on `127.0.0.1:0` before any node
//! starts, so every node's address is known; a restarted node binds its old port again.
//! Timings are short (`rtt_ms` 25: heartbeat 25 ms, election timeout 250-500 ms).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::net::TcpListener;

use super::{Manager, NodeId};
use crate::config::ClusterConfig;
use crate::metadata::{ApplyError, MetadataCommand, MetadataImage};

const RTT_MS: u64 = 25;
const WAIT: Duration = Duration::from_secs(10);

fn topic(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        topic_id: uuid::Uuid::new_v4(),
        partitions: vec![],
        configs: BTreeMap::new(),
    }
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn purged_index(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("raft-log/purged.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("index")?.as_u64()
}

struct TestCluster {
    dirs: Vec<TempDir>,
    addrs: Vec<String>,
    nodes: Vec<Option<Arc<Manager>>>,
    snapshot_entries: u64,
    compaction_overhead: u64,
}

impl TestCluster {
    async fn start(n: usize, snapshot_entries: u64, compaction_overhead: u64) -> TestCluster {
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(l.local_addr().unwrap().to_string());
            listeners.push(l);
        }
        let mut cluster = TestCluster {
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            addrs,
            nodes: vec![None; n],
            snapshot_entries,
            compaction_overhead,
        };
        // Concurrently: every pristine node bootstraps itself; one leader must come out.
        let handles: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let config = cluster.config(i);
                tokio::spawn(async move { Manager::start_with_listener(&config, Some(l)).await })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            cluster.nodes[i] = Some(h.await.unwrap().unwrap());
        }
        cluster
    }

    fn config(&self, i: usize) -> ClusterConfig {
        ClusterConfig {
            enabled: true,
            node_id: i as i32 + 1,
            raft_address: Some(self.addrs[i].clone()),
            initial_members: self.addrs.clone(),
            data_dir: Some(self.dirs[i].path().to_path_buf()),
            election_rtt: 10,
            heartbeat_rtt: 1,
            rtt_ms: RTT_MS,
            check_quorum: true,
            snapshot_entries: self.snapshot_entries,
            compaction_overhead: self.compaction_overhead,
        }
    }

    fn node(&self, i: usize) -> &Arc<Manager> {
        self.nodes[i].as_ref().expect("node is running")
    }

    fn running(&self) -> impl Iterator<Item = (usize, &Arc<Manager>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    async fn stop(&mut self, i: usize) {
        if let Some(m) = self.nodes[i].take() {
            m.shutdown().await;
        }
    }

    async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none());
        self.nodes[i] = Some(Manager::start(&self.config(i)).await.unwrap());
    }

    /// The index of the node every running node agrees is the leader.
    async fn leader(&self) -> usize {
        let mut found = None;
        eventually("one leader all running nodes agree on", WAIT, || {
            let leaders: Vec<Option<NodeId>> = self.running().map(|(_, n)| n.leader_id()).collect();
            found = match leaders.first() {
                Some(Some(l)) if leaders.iter().all(|x| *x == Some(*l)) => {
                    let i = (*l - 1) as usize;
                    self.nodes
                        .get(i)
                        .and_then(|n| n.as_ref())
                        .filter(|n| n.is_leader())
                        .map(|_| i)
                }
                _ => None,
            };
            found.is_some()
        })
        .await;
        found.unwrap_or_default()
    }

    async fn everywhere(&self, what: &str, check: impl Fn(&MetadataImage) -> bool) {
        eventually(what, WAIT, || {
            self.running().all(|(_, n)| check(&n.image()))
        })
        .await;
    }

    async fn shutdown(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_elect_a_leader_and_a_follower_proposal_reaches_all() {
    let mut c = TestCluster::start(3, 1000, 100).await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;

    let (index, result) = c.node(follower).propose(topic("a")).await.unwrap();
    assert_eq!(result, Ok(()));
    assert!(
        c.node(follower).image().topics.contains_key("a"),
        "the proposer sees its change as soon as propose returns"
    );
    c.everywhere("topic a on every node", |img| img.topics.contains_key("a"))
        .await;

    // A command that does not apply still commits, answers its error, changes nothing.
    let (index2, result) = c.node(other).propose(topic("a")).await.unwrap();
    assert!(index2 > index);
    assert_eq!(result, Err(ApplyError::TopicExists("a".into())));
    assert_eq!(c.node(other).image().topics.len(), 1);

    let q = c.node(leader).quorum();
    assert_eq!(q.leader_id, Some(leader as NodeId + 1));
    assert_eq!(
        q.voters.iter().map(|v| v.id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(q.commit_index >= Some(index2));
    eventually("every voter holding the last entry", WAIT, || {
        c.node(leader)
            .quorum()
            .voters
            .iter()
            .all(|v| v.matched_index >= Some(index2) && v.last_contact_ms.is_some())
    })
    .await;
    let fq = c.node(follower).quorum();
    assert_eq!(fq.leader_id, Some(leader as NodeId + 1));
    assert_eq!(fq.term, q.term);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_and_restarted_nodes_catch_up() {
    let mut c = TestCluster::start(3, 1000, 100).await;
    let old = c.leader().await;
    assert_eq!(
        c.node(old).propose(topic("before")).await.unwrap().1,
        Ok(())
    );

    let stopped_at = Instant::now();
    c.stop(old).await;
    let new = c.leader().await;
    let elapsed = stopped_at.elapsed();
    eprintln!(
        "failover: node {} leads {elapsed:?} after leader {} stopped",
        new + 1,
        old + 1
    );
    assert_ne!(new, old);
    assert!(
        elapsed < Duration::from_secs(5),
        "election took {elapsed:?}"
    );

    // Through the follower that is left, so the proposal is forwarded.
    let follower = (0..3).find(|i| *i != old && *i != new).unwrap_or_default();
    let (_, r) = c.node(follower).propose(topic("after")).await.unwrap();
    assert_eq!(r, Ok(()));

    // The old leader restarts from its data directory and catches up.
    c.restart(old).await;
    c.everywhere("topic after everywhere", |img| {
        img.topics.contains_key("after")
    })
    .await;

    // A follower stops, misses proposals, restarts and catches up from the log.
    let leader = c.leader().await;
    let lagging = (leader + 1) % 3;
    c.stop(lagging).await;
    for name in ["d1", "d2", "d3"] {
        let (_, r) = c.node(leader).propose(topic(name)).await.unwrap();
        assert_eq!(r, Ok(()));
    }
    c.restart(lagging).await;
    eventually("the restarted follower catching up", WAIT, || {
        let img = c.node(lagging).image();
        ["before", "after", "d1", "d2", "d3"]
            .iter()
            .all(|t| img.topics.contains_key(*t))
    })
    .await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_far_behind_receives_a_snapshot() {
    let mut c = TestCluster::start(3, 5, 2).await;
    let leader = c.leader().await;
    let lagging = (leader + 1) % 3;
    assert_eq!(c.node(leader).propose(topic("t0")).await.unwrap().1, Ok(()));
    c.everywhere("t0 everywhere", |img| img.topics.contains_key("t0"))
        .await;
    let behind = c.node(lagging).subscribe().borrow().applied_index;
    c.stop(lagging).await;

    for i in 1..=30 {
        let (_, r) = c
            .node(leader)
            .propose(topic(&format!("t{i}")))
            .await
            .unwrap();
        assert_eq!(r, Ok(()));
    }
    // The leader no longer holds the entries right after the lagging node's last one, so
    // the only way to catch up is InstallSnapshot.
    let leader_dir = c.dirs[leader].path().to_path_buf();
    eventually("the leader purging its log", WAIT, || {
        purged_index(&leader_dir).is_some_and(|p| p > behind + 1)
    })
    .await;

    c.restart(lagging).await;
    eventually("the lagging node catching up", WAIT, || {
        c.node(lagging).image().topics.len() == 31
    })
    .await;
    assert!(c.dirs[lagging].path().join("raft-sm/current.snap").exists());
    assert_eq!(*c.node(lagging).image(), *c.node(leader).image());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_restart_keeps_the_image() {
    let mut c = TestCluster::start(3, 10, 3).await;
    let leader = c.leader().await;
    for i in 0..15 {
        let (_, r) = c
            .node(leader)
            .propose(topic(&format!("t{i}")))
            .await
            .unwrap();
        assert_eq!(r, Ok(()));
    }
    c.everywhere("15 topics everywhere", |img| img.topics.len() == 15)
        .await;
    let before = c.node(leader).image();
    c.shutdown().await;

    for i in 0..3 {
        c.restart(i).await;
    }
    c.everywhere("the image after restart", |img| *img == *before)
        .await;
    let leader = c.leader().await;
    let (_, r) = c
        .node((leader + 1) % 3)
        .propose(topic("new"))
        .await
        .unwrap();
    assert_eq!(r, Ok(()));
    c.everywhere("the new topic", |img| img.topics.len() == 16)
        .await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_is_a_one_voter_cluster_that_restarts_with_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig {
        enabled: false,
        node_id: 1,
        raft_address: None,
        initial_members: vec![],
        data_dir: Some(dir.path().to_path_buf()),
        election_rtt: 10,
        heartbeat_rtt: 1,
        rtt_ms: 100,
        check_quorum: true,
        snapshot_entries: 10_000,
        compaction_overhead: 5_000,
    };
    let started = Instant::now();
    let m = Manager::start(&config).await.unwrap();
    assert!(m.raft_addr().is_none(), "no listener for a single node");
    let (_, r) = m
        .propose(MetadataCommand::InitCluster {
            cluster_id: "c1".into(),
        })
        .await
        .unwrap();
    assert_eq!(r, Ok(()));
    assert!(m.is_leader());
    eprintln!(
        "single node: first proposal applied {:?} after start",
        started.elapsed()
    );
    m.shutdown().await;
    drop(m);

    let m = Manager::start(&config).await.unwrap();
    // Replayed from the log at start (the committed-index hint), before any new election.
    assert_eq!(m.image().cluster_id, "c1");
    let (_, r) = m
        .propose(MetadataCommand::InitCluster {
            cluster_id: "c2".into(),
        })
        .await
        .unwrap();
    assert_eq!(r, Err(ApplyError::ClusterIdSet));
    m.shutdown().await;
}

#[tokio::test]
async fn a_node_missing_from_initial_members_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig {
        enabled: true,
        node_id: 4,
        raft_address: Some("127.0.0.1:0".into()),
        initial_members: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
        data_dir: Some(dir.path().to_path_buf()),
        election_rtt: 10,
        heartbeat_rtt: 1,
        rtt_ms: 100,
        check_quorum: true,
        snapshot_entries: 10_000,
        compaction_overhead: 5_000,
    };
    let err = match Manager::start(&config).await {
        Ok(_) => panic!("node 4 is not a member"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("cluster.node_id"), "{err}");
}
