//! The broker's shared state: configuration, the metadata store, and the hosted
//! partitions. Handlers get an `&Broker`; nothing here touches sockets.
//!
//! Start-up order: validate config (done by the caller) → open the metadata store →
//! initialise the cluster id once → register this broker's client address → open and
//! recover every hosted partition. Background tasks: retention and interval flushes.

pub mod partitions;
pub mod producer_ids;
pub mod topics;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cluster::{ClusterError, Manager};
use crate::config::{Config, FlushPolicy};
use crate::metadata::{Metadata, MetadataCommand, ProposeError};
pub use partitions::{Partition, PartitionRegistry};
pub use topics::AdminError;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Metadata(#[from] ProposeError),
    #[error("cannot start the Raft metadata node: {0}")]
    Cluster(#[from] ClusterError),
    #[error("cannot open partition data: {0}")]
    Partitions(String),
}

/// Everything a request handler works on.
pub struct Broker {
    pub config: Arc<Config>,
    pub node_id: i32,
    pub metadata: Metadata,
    pub partitions: PartitionRegistry,
    /// Follower fetchers and leader-side replica tracking.
    pub replication: crate::replication::ReplicaManager,
    pub groups: crate::group::GroupCoordinator,
    /// Serializes [`Broker::sync_partitions`]: a caller returns only once roles and the
    /// groups of newly led `__consumer_offsets` partitions are in place.
    sync_lock: std::sync::Mutex<()>,
    /// Background tasks, aborted on shutdown.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Producer ids for InitProducerId.
    pub producer_ids: producer_ids::ProducerIdManager,
    pub started_at: Instant,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new cluster id in Kafka's form: 22 characters of URL-safe base64 of a random UUID.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut out = Vec::with_capacity(22);
    for _ in 0..22 {
        out.push(ALPHABET[(bits >> 122) as usize & 63]);
        bits <<= 6;
    }
    String::from_utf8(out).unwrap_or_default()
}

impl Broker {
    /// Opens the broker's state from `config.data_dir`, recovering what is on disk.
    pub async fn open(config: Config) -> Result<Arc<Broker>, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let config = Arc::new(config);
        let mut cluster = config.cluster.clone();
        if cluster.data_dir.is_none() {
            cluster.data_dir = Some(config.data_dir.join("__raft"));
        }
        let metadata = Metadata::raft(Manager::start(&cluster).await?);
        if metadata.image().cluster_id.is_empty() {
            // Every node of a new cluster may try; the first one wins.
            match metadata
                .propose(MetadataCommand::InitCluster {
                    cluster_id: new_cluster_id(),
                })
                .await
            {
                Ok(_) | Err(ProposeError::Apply(crate::metadata::ApplyError::ClusterIdSet)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let node_id = config.node_id();
        // Registered at every start, as Kafka brokers do: the registration is committed
        // through Raft and applied here before anything is served, so this broker never
        // acts on a stale copy of the metadata (an old leadership, say) from before its
        // restart; it also clears the fence the controller set while it was away.
        metadata
            .propose(MetadataCommand::RegisterBroker {
                id: node_id,
                host: config.server.advertised_host.clone(),
                port: config.server.port,
            })
            .await?;
        let broker = Arc::new(Broker {
            partitions: PartitionRegistry::new(config.clone()),
            replication: crate::replication::ReplicaManager::new(node_id),
            config,
            node_id,
            metadata,
            groups: Default::default(),
            tasks: Default::default(),
            sync_lock: Default::default(),
            producer_ids: producer_ids::ProducerIdManager::new(node_id),
            started_at: Instant::now(),
        });
        broker.replication.attach(&broker);
        let image = broker.metadata.image();
        broker.partitions.remove_strays(&image);
        broker
            .partitions
            .sync(&image, node_id)
            .map_err(|e| StartError::Partitions(e.to_string()))?;
        // Groups are loaded below for every partition led here.
        let _ = broker
            .replication
            .reconcile(&broker.partitions.all(), &image);
        broker.groups.load(&broker);
        tracing::info!(
            cluster_id = %image.cluster_id,
            node_id,
            topics = image.topics.len(),
            "metadata loaded"
        );
        Ok(broker)
    }

    fn keep(&self, task: tokio::task::JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// Runs retention, interval flushes, group timers, and the partition sync that follows
    /// metadata changes, until [`Broker::shutdown`].
    pub fn spawn_background_tasks(self: &Arc<Self>) {
        let broker = self.clone();
        self.keep(tokio::spawn(async move {
            // Metadata can change without a local request (another node's proposal once the
            // cluster exists): keep the hosted partitions in line with every new image.
            let mut changes = broker.metadata.subscribe();
            while changes.changed().await.is_ok() {
                let b = broker.clone();
                let synced = tokio::task::spawn_blocking(move || b.sync_partitions()).await;
                if let Ok(Err(e)) = synced {
                    tracing::error!(error = %e.message, "cannot open the partitions of the new metadata");
                }
            }
        }));
        let broker = self.clone();
        self.keep(tokio::spawn(async move {
            let mut tick = tokio::time::interval(broker.config.retention_check_interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || b.apply_retention()).await;
            }
        }));
        let broker = self.clone();
        self.keep(tokio::spawn(
            async move { broker.watch_broker_liveness().await },
        ));
        let broker = self.clone();
        self.keep(tokio::spawn(async move {
            // Followers that stopped catching up leave the ISR (checked on the leader).
            let max_lag = broker.config.replica_lag_time_max;
            let every = (max_lag / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                broker
                    .replication
                    .check_isr(&broker.partitions.all(), max_lag);
            }
        }));
        let broker = self.clone();
        self.keep(tokio::spawn(async move {
            broker.restore_preferred_leaders().await
        }));
        let broker = self.clone();
        self.keep(tokio::spawn(async move {
            // Session expiry and rebalance deadlines, at a resolution of 100 ms.
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                broker.groups.tick(&broker);
            }
        }));
        if let FlushPolicy::Interval(every) = self.config.flush {
            let broker = self.clone();
            self.keep(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every.min(Duration::from_secs(1)));
                loop {
                    tick.tick().await;
                    let b = broker.clone();
                    let _ = tokio::task::spawn_blocking(move || b.flush_due()).await;
                }
            }));
        }
    }

    /// How long the controller waits without hearing from a broker before fencing it:
    /// three election timeouts, at least two seconds (Kafka's broker.session.timeout.ms).
    fn broker_session_timeout(&self) -> Duration {
        let c = &self.config.cluster;
        Duration::from_millis((3 * c.election_rtt * c.rtt_ms).max(2000))
    }

    /// On the controller (the Raft leader): fences brokers whose Raft node stopped
    /// answering, and unfences them when they answer again. Every broker is a Raft voter, so
    /// Raft's own heartbeats are the liveness signal. See [`liveness_changes`].
    async fn watch_broker_liveness(self: Arc<Self>) {
        let session = self.broker_session_timeout();
        let c = &self.config.cluster;
        let grace = Duration::from_millis(c.election_rtt * c.rtt_ms).min(session);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut leader_since: Option<Instant> = None;
        loop {
            tick.tick().await;
            if !self.metadata.is_controller() {
                leader_since = None;
                continue;
            }
            // A new controller gives every voter one election timeout to answer its first
            // heartbeats (live ones answer within a round trip) before judging silence.
            let since = *leader_since.get_or_insert_with(Instant::now);
            let judge_others = since.elapsed() >= grace;
            let image = self.metadata.image();
            let quorum = self.metadata.quorum();
            for command in liveness_changes(&image, &quorum, self.node_id, session, judge_others) {
                let (id, fenced) = match &command {
                    MetadataCommand::FenceBroker { id } => (*id, true),
                    MetadataCommand::UnfenceBroker { id } => (*id, false),
                    _ => continue,
                };
                if id == self.node_id {
                    tracing::info!(
                        broker = id,
                        "this controller was fenced: clearing its own fence"
                    );
                } else {
                    tracing::info!(broker = id, fenced, "broker liveness changed");
                }
                if let Err(e) = self.metadata.propose(command).await {
                    tracing::warn!(broker = id, error = %e, "cannot record broker liveness");
                    break;
                }
            }
        }
    }

    /// On the controller: gives each partition back to its preferred leader (the first
    /// replica) once that broker is live and in sync again, so leadership spreads out after
    /// a failover as it was placed.
    async fn restore_preferred_leaders(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if !self.metadata.is_controller() {
                continue;
            }
            let image = self.metadata.image();
            for t in image.topics.values() {
                for (i, p) in t.partitions.iter().enumerate() {
                    let Some(&preferred) = p.replicas.first() else {
                        continue;
                    };
                    if p.leader == preferred
                        || !p.isr.contains(&preferred)
                        || !image.is_live(preferred)
                    {
                        continue;
                    }
                    let command = MetadataCommand::ChangeLeader {
                        name: t.name.clone(),
                        partition: i as i32,
                        leader: preferred,
                        leader_epoch: p.leader_epoch + 1,
                    };
                    match self.metadata.propose(command).await {
                        Ok(_) => {
                            tracing::info!(topic = %t.name, partition = i, leader = preferred, "preferred leader restored")
                        }
                        Err(e) => {
                            tracing::debug!(topic = %t.name, partition = i, error = %e, "preferred leader not restored")
                        }
                    }
                }
            }
        }
    }

    /// Deletes expired segments of every partition; returns how many were deleted.
    pub fn apply_retention(&self) -> usize {
        let now = now_ms();
        let mut deleted = 0;
        for p in self.partitions.all() {
            match p.log().apply_retention(now) {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
        if deleted > 0 {
            tracing::info!(segments = deleted, "retention deleted segments");
        }
        deleted
    }

    fn flush_due(&self) {
        let now = now_ms();
        for p in self.partitions.all() {
            if let Err(e) = p.log().flush_if_due(now) {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
            }
        }
    }

    /// Clean shutdown: closes every partition log (see [`Broker::close_all`]), then stops
    /// the Raft node so its port and data directory are free when this returns.
    pub async fn shutdown(self: &Arc<Self>) {
        self.stop_tasks();
        let b = self.clone();
        let _ = tokio::task::spawn_blocking(move || b.close_all()).await;
        self.metadata.shutdown().await;
    }

    /// Stops the background tasks and the follower fetchers, leaving the logs as they are
    /// (also what an in-process test uses to play a crash).
    pub fn stop_tasks(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
        self.replication.stop_all();
    }

    /// Flushes and closes every partition log, leaving the clean-shutdown
    /// marker so the next start only checks the tail of the last segment. Later writes to a
    /// closed log are refused.
    pub fn close_all(&self) {
        for p in self.partitions.all() {
            if let Err(e) = p.log().shutdown() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing the log failed");
            }
        }
        self.partitions.checkpoint_watermarks();
    }
}

/// What controller `me` records about broker liveness, in order.
///
/// First its own fence: a controller serving an image in which it is fenced (it was fenced
/// by an earlier controller while it was paused or cut off, then won an election) clears it
/// before anything else, since every election it makes picks only live replicas and it is
/// alive; until that is applied it judges nobody else. Then, once `judge_others` (the new
/// controller's grace passed), each other broker whose Raft node has not answered this
/// leader for longer than `session` is fenced, and each fenced one that answers again is
/// unfenced (which also gives it back the offline partitions whose last in-sync replica it
/// is).
pub fn liveness_changes(
    image: &crate::metadata::MetadataImage,
    quorum: &crate::cluster::QuorumInfo,
    me: i32,
    session: Duration,
    judge_others: bool,
) -> Vec<MetadataCommand> {
    if image.brokers.get(&me).is_some_and(|b| b.fenced) {
        return vec![MetadataCommand::UnfenceBroker { id: me }];
    }
    if !judge_others {
        return Vec::new();
    }
    let session_ms = u64::try_from(session.as_millis()).unwrap_or(u64::MAX);
    image
        .brokers
        .values()
        .filter(|b| b.id != me)
        .filter_map(|b| {
            let contact = quorum
                .voters
                .iter()
                .find(|v| i64::try_from(v.id).is_ok_and(|id| id == i64::from(b.id)))
                .and_then(|v| v.last_contact_ms);
            let silent = contact.is_none_or(|ms| ms > session_ms);
            match (silent, b.fenced) {
                (true, false) => Some(MetadataCommand::FenceBroker { id: b.id }),
                (false, true) => Some(MetadataCommand::UnfenceBroker { id: b.id }),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cluster::{QuorumInfo, VoterInfo};
    use crate::metadata::MetadataImage;

    fn image_with(fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::with_brokers(1..=3);
        for id in fenced {
            image
                .apply(&MetadataCommand::FenceBroker { id: *id })
                .unwrap();
        }
        image
    }

    fn quorum(contacts: &[(u64, Option<u64>)]) -> QuorumInfo {
        QuorumInfo {
            leader_id: Some(1),
            term: 4,
            commit_index: Some(10),
            voters: contacts
                .iter()
                .map(|&(id, last_contact_ms)| VoterInfo {
                    id,
                    matched_index: Some(10),
                    last_contact_ms,
                })
                .collect(),
        }
    }

    #[test]
    fn a_fenced_controller_clears_its_own_fence_before_judging_anyone() {
        let session = Duration::from_secs(3);
        // Broker 2 has been silent for 9 s, but this controller (1) is itself fenced.
        let image = image_with(&[1]);
        let q = quorum(&[(1, Some(0)), (2, Some(9_000)), (3, Some(50))]);
        assert_eq!(
            liveness_changes(&image, &q, 1, session, true),
            vec![MetadataCommand::UnfenceBroker { id: 1 }]
        );
        // Also during the new controller's grace.
        assert_eq!(
            liveness_changes(&image, &q, 1, session, false),
            vec![MetadataCommand::UnfenceBroker { id: 1 }]
        );
        // Once its fence is cleared, the silent broker is fenced.
        let image = image_with(&[]);
        assert_eq!(
            liveness_changes(&image, &q, 1, session, true),
            vec![MetadataCommand::FenceBroker { id: 2 }]
        );
        assert!(liveness_changes(&image, &q, 1, session, false).is_empty());
    }

    #[test]
    fn silent_brokers_are_fenced_and_answering_ones_unfenced() {
        let session = Duration::from_secs(3);
        let image = image_with(&[3]);
        // 2 never answered this leader; 3 (fenced) answers again.
        let q = quorum(&[(1, Some(0)), (2, None), (3, Some(20))]);
        assert_eq!(
            liveness_changes(&image, &q, 1, session, true),
            vec![
                MetadataCommand::FenceBroker { id: 2 },
                MetadataCommand::UnfenceBroker { id: 3 }
            ]
        );
        // Silence up to the session timeout is not a reason to fence.
        let q = quorum(&[(1, Some(0)), (2, Some(3_000)), (3, Some(3_001))]);
        assert!(liveness_changes(&image_with(&[]), &q, 1, session, true)
            .contains(&MetadataCommand::FenceBroker { id: 3 }));
        assert_eq!(
            liveness_changes(&image_with(&[]), &q, 1, session, true).len(),
            1
        );
    }

    #[test]
    fn an_offline_partition_returns_when_the_fenced_controller_clears_its_fence() {
        use crate::metadata::image::NO_LEADER;
        use crate::metadata::PartitionAssignment;
        // Replicas [3, 1, 2]: 2 left the ISR earlier, 3 (fenced while paused as controller)
        // is the last in-sync replica once 1 is fenced.
        let mut image = image_with(&[]);
        image
            .apply(&MetadataCommand::CreateTopic {
                name: "t".into(),
                topic_id: uuid::Uuid::new_v4(),
                partitions: vec![PartitionAssignment {
                    leader: 1,
                    replicas: vec![1, 3, 2],
                    isr: None,
                }],
                configs: Default::default(),
            })
            .unwrap();
        image
            .apply(&MetadataCommand::FenceBroker { id: 2 })
            .unwrap();
        image
            .apply(&MetadataCommand::FenceBroker { id: 3 })
            .unwrap();
        image
            .apply(&MetadataCommand::FenceBroker { id: 1 })
            .unwrap();
        image
            .apply(&MetadataCommand::UnfenceBroker { id: 2 })
            .unwrap();
        let p = &image.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
        // Broker 1 wins the next election while fenced: its first command clears its fence,
        // and the partition whose last in-sync replica it is comes back under it.
        let q = quorum(&[(1, Some(0)), (2, Some(10)), (3, Some(10))]);
        for command in liveness_changes(&image.clone(), &q, 1, Duration::from_secs(3), true) {
            image.apply(&command).unwrap();
        }
        let p = &image.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
        assert!(image.is_live(1));
    }

    #[test]
    fn cluster_ids_look_like_kafka_ones() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert_ne!(id, new_cluster_id());
    }
}
