//! The replica manager: brings every hosted partition's role in line with each new
//! metadata image, starts and stops the follower fetchers (one per leader broker), takes
//! the followers' fetches on the leader side, and proposes the ISR changes that follow.
//!
//! It gets what it works on at construction (the partition registry, the metadata handle,
//! the runtime its tasks run on); proposals run as tasks and their effect arrives, like any
//! other metadata change, through the next image.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;

use super::fetcher::FetcherHandle;
use super::partition::{IsrProposal, Partition, RoleChange};
use super::registry::PartitionRegistry;
use super::Key;
use crate::cluster::Metadata;
use crate::metadata::MetadataImage;

/// Roles, fetchers and ISR changes of the partitions hosted here.
pub struct ReplicaManager {
    node_id: i32,
    partitions: Arc<PartitionRegistry>,
    metadata: Metadata,
    runtime: tokio::runtime::Handle,
    fetchers: Mutex<HashMap<i32, FetcherHandle>>,
}

/// What a new image asks of the follower side: for each leader broker, the partitions to
/// fetch from it with their leader epochs.
pub type FetchTargets = HashMap<i32, HashMap<Key, i32>>;

impl ReplicaManager {
    pub fn new(
        node_id: i32,
        partitions: Arc<PartitionRegistry>,
        metadata: Metadata,
        runtime: tokio::runtime::Handle,
    ) -> ReplicaManager {
        ReplicaManager {
            node_id,
            partitions,
            metadata,
            runtime,
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Runs one fetcher per leader in `targets` with exactly its partitions (and epochs),
    /// stopping the fetchers of leaders no longer followed.
    pub fn set_fetch_targets(&self, targets: FetchTargets) {
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        fetchers.retain(|leader, f| {
            let keep = targets.contains_key(leader);
            if !keep {
                f.stop();
            }
            keep
        });
        for (leader, wanted) in targets {
            let f = fetchers.entry(leader).or_insert_with(|| {
                FetcherHandle::spawn(
                    &self.runtime,
                    self.partitions.clone(),
                    self.metadata.clone(),
                    self.node_id,
                    leader,
                )
            });
            f.assign(wanted);
        }
    }

    /// Stops every fetcher (shutdown, or a test playing a crash).
    pub fn stop_all(&self) {
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        for (_, f) in fetchers.drain() {
            f.stop();
        }
    }

    /// On the leader: records a follower's fetch from `fetch_offset`, advances the high
    /// watermark, and proposes that the follower rejoin the ISR once it has caught up.
    /// NOT_LEADER_OR_FOLLOWER when this broker does not lead the partition or `replica` is
    /// not one of its replicas.
    pub fn record_follower_fetch(
        &self,
        p: &Partition,
        replica: i32,
        fetch_offset: i64,
        log_start_offset: i64,
    ) -> Result<(), ResponseError> {
        let image = self.metadata.image();
        let proposal = p.record_follower_fetch(
            replica,
            fetch_offset,
            log_start_offset,
            |id| image.is_live(id),
            Instant::now(),
        )?;
        if let Some(proposal) = proposal {
            self.propose_isr(p, proposal);
        }
        Ok(())
    }

    /// On the leader, every tick: drops out-of-sync followers from the ISR, and forgets ISR
    /// proposals that got no answer (so they are made again).
    pub fn check_isr(&self, max_lag: Duration) {
        let now = Instant::now();
        for p in self.partitions.all() {
            if let Some(proposal) = p.check_isr(now, max_lag) {
                self.propose_isr(&p, proposal);
            }
        }
    }

    fn propose_isr(&self, p: &Partition, proposal: IsrProposal) {
        let metadata = self.metadata.clone();
        let (topic, index) = (p.topic.clone(), p.index);
        self.runtime.spawn(async move {
            let IsrProposal { command, from, to } = proposal;
            match metadata.propose(command).await {
                Ok(_) => {
                    tracing::info!(topic, partition = index, from = ?from, to = ?to, "ISR changed")
                }
                Err(e) => {
                    tracing::info!(topic, partition = index, error = %e, "ISR change not taken")
                }
            }
        });
    }
}

/// The role step of a new image, without fetchers or I/O beyond the epoch history: each
/// partition's role for `me`, the role changes, and what the fetchers must fetch.
pub fn apply_roles(
    partitions: &[Arc<Partition>],
    image: &MetadataImage,
    me: i32,
) -> (Vec<(Arc<Partition>, RoleChange)>, FetchTargets) {
    let now = Instant::now();
    let mut changed = Vec::new();
    let mut targets: FetchTargets = HashMap::new();
    for p in partitions {
        let Ok(ip) = image.partition(&p.topic, p.index) else {
            continue;
        };
        let change = p.apply_image(ip, me, now);
        if ip.leader != me && ip.leader >= 0 {
            targets
                .entry(ip.leader)
                .or_default()
                .insert((p.topic.clone(), p.index), ip.leader_epoch);
        }
        if change != RoleChange::Unchanged {
            changed.push((p.clone(), change));
        }
    }
    (changed, targets)
}
