//! The broker: the composition root that owns every component and the tasks that run
//! them. Handlers get an `&Broker`; nothing here touches sockets.
//!
//! Start-up order: validate config (done by the caller) → open the metadata store →
//! initialise the cluster id once → register this broker's client address → open and
//! recover every hosted partition and give each its role (the first reconcile step) →
//! load the groups of the `__consumer_offsets` partitions and the transaction state of the
//! `__transaction_state` partitions led here. Background tasks: the reconcile task, the
//! controller loops, ISR checks, group timers, the transaction timeout / expiration tick,
//! retention and interval flushes.
//!
//! Components get what they need at construction (the partition registry, the metadata
//! handle); none of them holds a reference back to the broker.

pub mod cleaner;
pub mod producer_ids;
pub mod reconcile;
pub mod topics;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::clock::now_ms;
use crate::cluster::controller::Controller;
use crate::cluster::{ClusterError, Manager, Metadata, ProposeError};
use crate::config::{Config, FlushPolicy};
use crate::group::GroupCoordinator;
use crate::metadata::MetadataCommand;
use crate::replication::{PartitionRegistry, ReplicaManager};
use crate::txn::markers::MarkerSender;
use crate::txn::TransactionCoordinator;
use reconcile::Reconciler;
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
    Partitions(Arc<crate::log::LogError>),
}

/// Everything a request handler works on.
pub struct Broker {
    pub config: Arc<Config>,
    pub node_id: i32,
    pub metadata: Metadata,
    /// The partitions hosted here.
    pub partitions: Arc<PartitionRegistry>,
    /// Roles, follower fetchers and leader-side replica tracking.
    pub replication: Arc<ReplicaManager>,
    pub groups: Arc<GroupCoordinator>,
    /// The transaction coordinator of the `__transaction_state` partitions led here.
    pub txn: Arc<TransactionCoordinator>,
    /// Writes transaction markers (for the coordinator, and for WriteTxnMarkers).
    pub markers: Arc<MarkerSender>,
    /// Applies each new metadata image to the components above.
    pub reconciler: Arc<Reconciler>,
    /// Background tasks, aborted on shutdown.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Producer ids for InitProducerId (shared with the transaction coordinator).
    pub producer_ids: Arc<producer_ids::ProducerIdManager>,
    pub started_at: Instant,
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
        let partitions = Arc::new(PartitionRegistry::new(config.clone()));
        let replication = Arc::new(ReplicaManager::new(
            node_id,
            partitions.clone(),
            metadata.clone(),
            tokio::runtime::Handle::current(),
        ));
        let groups = Arc::new(GroupCoordinator::new(
            node_id,
            config.groups.clone(),
            metadata.clone(),
            partitions.clone(),
        ));
        let producer_ids = Arc::new(producer_ids::ProducerIdManager::new(node_id));
        let markers = Arc::new(MarkerSender::new(
            node_id,
            metadata.clone(),
            partitions.clone(),
            groups.clone(),
            config.clone(),
        ));
        let txn = Arc::new(TransactionCoordinator::new(
            config.clone(),
            metadata.clone(),
            partitions.clone(),
            producer_ids.clone(),
            markers.clone(),
        ));
        let reconciler = Arc::new(Reconciler::new(
            node_id,
            partitions.clone(),
            replication.clone(),
            groups.clone(),
            txn.clone(),
        ));
        // The first step, before anything is served: every hosted partition open, with its
        // role, and the groups of the `__consumer_offsets` partitions led here loaded.
        let applied = metadata.subscribe().borrow().clone();
        let image = applied.image.clone();
        let first = {
            let (partitions, reconciler) = (partitions.clone(), reconciler.clone());
            tokio::task::spawn_blocking(move || {
                partitions.remove_strays(&applied.image);
                reconciler.step(&applied)
            })
            .await
        };
        match first {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StartError::Partitions(e)),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
        let broker = Arc::new(Broker {
            partitions,
            replication,
            groups,
            txn,
            markers,
            reconciler,
            config,
            node_id,
            metadata,
            tasks: Default::default(),
            producer_ids,
            started_at: Instant::now(),
        });
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

    /// Runs the reconcile task, the controller loops, ISR checks, group timers, retention,
    /// the log cleaner and interval flushes, until [`Broker::shutdown`].
    pub fn spawn_background_tasks(self: &Arc<Self>) {
        // Metadata changes without a local request too (another node's proposal): every
        // new image is applied to the hosted partitions, fetchers and groups.
        self.keep(tokio::spawn(
            self.reconciler.clone().run(self.metadata.clone()),
        ));
        let controller =
            || Controller::new(self.metadata.clone(), self.node_id, &self.config.cluster);
        self.keep(tokio::spawn(controller().watch_liveness()));
        self.keep(tokio::spawn(controller().restore_preferred_leaders()));
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
        if self.config.cleaner.enabled {
            self.keep(tokio::spawn(cleaner::run(
                self.partitions.clone(),
                self.config.cleaner.clone(),
            )));
        }
        let replication = self.replication.clone();
        let max_lag = self.config.replica_lag_time_max;
        self.keep(tokio::spawn(async move {
            // Followers that stopped catching up leave the ISR (checked on the leader).
            let every = (max_lag / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                replication.check_isr(max_lag);
            }
        }));
        let groups = self.groups.clone();
        self.keep(tokio::spawn(async move {
            // Session expiry and rebalance deadlines, at a resolution of 100 ms.
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                groups.tick();
            }
        }));
        let txn = self.txn.clone();
        let every = self.config.transactions.abort_timed_out_interval;
        self.keep(tokio::spawn(async move {
            // Timed-out transactions are aborted, idle transactional ids expired.
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                txn.tick();
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

    /// Deletes expired segments of every partition; returns how many were deleted.
    pub fn apply_retention(&self) -> usize {
        let now = now_ms();
        let mut deleted = 0;
        for p in self.partitions.all() {
            match p.apply_retention(now) {
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
            if let Err(e) = p.flush_if_due(now) {
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
        self.txn.stop();
        self.replication.stop_all();
    }

    /// Flushes and closes every partition log, leaving the clean-shutdown
    /// marker so the next start only checks the tail of the last segment. Later writes to a
    /// closed log are refused.
    pub fn close_all(&self) {
        for p in self.partitions.all() {
            if let Err(e) = p.shutdown_log() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing the log failed");
            }
        }
        self.partitions.checkpoint_watermarks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafka_ones() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert_ne!(id, new_cluster_id());
    }
}
