//! The reconcile task: brings what this broker runs in line with each new metadata image,
//! in order, one image at a time: opens the logs of partitions newly placed here (recovering
//! what is on disk) and deletes those of deleted topics, sets each partition's role
//! (leader, follower, neither), points the follower fetchers at the leaders, and loads or
//! unloads the consumer groups of `__consumer_offsets` partitions and the transaction state
//! of `__transaction_state` partitions whose leadership moved.
//!
//! It is the only place that does this. The file work runs on a blocking thread, never on
//! an async worker, and never on the request path: a request for a partition this broker
//! does not host yet answers NOT_LEADER_OR_FOLLOWER and the client retries. An admin call
//! that must see its own change waits with [`Reconciler::wait_reconciled`] for the Raft
//! index its command was applied at.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::cluster::{AppliedImage, Metadata};
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::log::LogError;
use crate::metadata::MetadataImage;
use crate::replication::manager::{apply_roles, FetchTargets};
use crate::replication::{Partition, PartitionRegistry, ReplicaManager, RoleChange};
use crate::txn::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};

/// How long an admin call waits for its change to be reconciled.
const WAIT: Duration = Duration::from_secs(30);
/// A step that failed (a log could not be opened) is tried again this often.
const RETRY: Duration = Duration::from_secs(1);

/// Where reconciliation stands: the Raft index of the last image applied, and the error of
/// that step, if it failed.
#[derive(Debug, Clone, Default)]
pub struct Reconciled {
    pub index: u64,
    pub error: Option<Arc<LogError>>,
}

/// Why an admin call's change is not in place.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot open or remove the partitions of the new metadata: {0}")]
    Storage(Arc<LogError>),
    #[error("the new metadata was not applied to this broker within {0:?}")]
    TimedOut(Duration),
    #[error("the broker is shutting down")]
    Stopped,
}

/// What one reconcile step did to the hosted partitions.
pub struct PartitionsStep {
    /// The partitions whose leadership came here or left.
    pub changed: Vec<(Arc<Partition>, RoleChange)>,
    /// What the follower fetchers must fetch, by leader.
    pub targets: FetchTargets,
    /// The first log that could not be opened or removed (the rest are done all the same).
    pub synced: Result<(), LogError>,
}

/// One reconcile step, without fetchers or groups: the hosted partitions opened and closed
/// for `image`, and each one's role.
pub fn reconcile_partitions(
    partitions: &PartitionRegistry,
    image: &MetadataImage,
    me: i32,
) -> PartitionsStep {
    let synced = partitions.sync(image, me);
    let (changed, targets) = apply_roles(&partitions.all(), image, me);
    PartitionsStep {
        changed,
        targets,
        synced,
    }
}

/// Applies metadata images to the partitions, fetchers and groups of this broker.
pub struct Reconciler {
    node_id: i32,
    partitions: Arc<PartitionRegistry>,
    replication: Arc<ReplicaManager>,
    groups: Arc<GroupCoordinator>,
    txn: Arc<TransactionCoordinator>,
    done: watch::Sender<Reconciled>,
}

impl Reconciler {
    pub fn new(
        node_id: i32,
        partitions: Arc<PartitionRegistry>,
        replication: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinator>,
        txn: Arc<TransactionCoordinator>,
    ) -> Reconciler {
        Reconciler {
            node_id,
            partitions,
            replication,
            groups,
            txn,
            done: watch::Sender::new(Reconciled::default()),
        }
    }

    /// Applies `applied` (blocking file work: call it on a blocking thread) and publishes
    /// its index.
    pub fn step(&self, applied: &AppliedImage) -> Result<(), Arc<LogError>> {
        let PartitionsStep {
            changed,
            targets,
            synced,
        } = reconcile_partitions(&self.partitions, &applied.image, self.node_id);
        self.replication.set_fetch_targets(targets);
        for (p, change) in changed {
            match (p.topic.as_str(), change) {
                (OFFSETS_TOPIC, RoleChange::BecameLeader) => self.groups.load_partition(p.index),
                (OFFSETS_TOPIC, RoleChange::LostLeadership) => {
                    self.groups.unload_partition(p.index)
                }
                (TRANSACTION_STATE_TOPIC, RoleChange::BecameLeader) => {
                    // The coordinator epoch is the leader epoch just taken.
                    match p.watermark().leader_epoch {
                        Some(epoch) => self.txn.load_partition(p.index, epoch),
                        None => self.txn.unload_partition(p.index),
                    }
                }
                (TRANSACTION_STATE_TOPIC, RoleChange::LostLeadership) => {
                    self.txn.unload_partition(p.index)
                }
                _ => {}
            }
        }
        let error = synced.err().map(Arc::new);
        if let Some(e) = &error {
            tracing::error!(error = %e, "cannot open the partitions of the new metadata");
        }
        self.done.send_replace(Reconciled {
            index: applied.applied_index,
            error: error.clone(),
        });
        error.map_or(Ok(()), Err)
    }

    /// Where reconciliation stands.
    pub fn reconciled(&self) -> Reconciled {
        self.done.borrow().clone()
    }

    /// Waits until an image at Raft index `index` or later has been applied here; the error
    /// of that step if it could not open or remove a partition's data.
    pub async fn wait_reconciled(&self, index: u64) -> Result<(), ReconcileError> {
        let mut rx = self.done.subscribe();
        let reached = tokio::time::timeout(WAIT, async {
            rx.wait_for(|r| r.index >= index)
                .await
                .map(|r| r.error.clone())
        })
        .await;
        match reached {
            Err(_) => Err(ReconcileError::TimedOut(WAIT)),
            Ok(Err(_)) => Err(ReconcileError::Stopped),
            Ok(Ok(error)) => error.map_or(Ok(()), |e| Err(ReconcileError::Storage(e))),
        }
    }

    /// Follows `metadata` until aborted: every image newer than the last one applied is
    /// applied, in order (a burst of changes is applied as its latest image, which holds
    /// them all); a failed step is tried again after a second.
    pub async fn run(self: Arc<Self>, metadata: Metadata) {
        let mut images = metadata.subscribe();
        loop {
            let applied = images.borrow_and_update().clone();
            let last = self.reconciled();
            if applied.applied_index > last.index || last.error.is_some() {
                let me = self.clone();
                let failed = match tokio::task::spawn_blocking(move || me.step(&applied)).await {
                    Ok(result) => result.is_err(),
                    Err(_) => true, // the step panicked: try again
                };
                if failed {
                    tokio::select! {
                        changed = images.changed() => if changed.is_err() { return },
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                    continue;
                }
            }
            if images.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::Config;
    use crate::metadata::{MetadataCommand, PartitionAssignment};
    use crate::replication::ReplicaRole;

    fn registry(dir: &std::path::Path) -> PartitionRegistry {
        let config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        PartitionRegistry::new(Arc::new(config))
    }

    fn topic(image: &mut MetadataImage, name: &str, partitions: Vec<Vec<i32>>) {
        image
            .apply(&MetadataCommand::CreateTopic {
                name: name.into(),
                topic_id: uuid::Uuid::new_v4(),
                partitions: partitions
                    .into_iter()
                    .map(|replicas| PartitionAssignment {
                        leader: replicas[0],
                        replicas,
                        isr: None,
                    })
                    .collect(),
                configs: Default::default(),
            })
            .unwrap();
    }

    #[test]
    fn an_image_in_gives_the_hosted_partitions_their_roles_and_the_fetchers_their_leaders() {
        let dir = tempfile::tempdir().unwrap();
        let partitions = registry(dir.path());
        let mut image = MetadataImage::with_brokers(1..=3);
        // Broker 2's view: it leads t-1, follows 1 for t-0 and 3 for t-2, hosts no u-0.
        topic(&mut image, "t", vec![vec![1, 2], vec![2, 3], vec![3, 2]]);
        topic(&mut image, "u", vec![vec![1, 3]]);
        let PartitionsStep {
            changed,
            targets,
            synced,
        } = reconcile_partitions(&partitions, &image, 2);
        synced.unwrap();
        assert_eq!(partitions.all().len(), 3);
        assert!(partitions.get("u", 0).is_none());
        assert!(dir.path().join("t-0").is_dir());
        let roles = |index| partitions.get("t", index).unwrap().role_snapshot();
        assert!(matches!(
            roles(0),
            ReplicaRole::Follower {
                leader: 1,
                leader_epoch: 0
            }
        ));
        assert!(matches!(roles(1), ReplicaRole::Leader(_)));
        assert!(matches!(roles(2), ReplicaRole::Follower { leader: 3, .. }));
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].0.index, changed[0].1),
            (1, RoleChange::BecameLeader)
        );
        let mut leaders: Vec<i32> = targets.keys().copied().collect();
        leaders.sort_unstable();
        assert_eq!(leaders, vec![1, 3]);
        assert_eq!(targets[&1][&("t".to_string(), 0)], 0);

        // Broker 1 is fenced: broker 2 takes t-0 over; then t is deleted and its data goes.
        image
            .apply(&MetadataCommand::FenceBroker { id: 1 })
            .unwrap();
        let step = reconcile_partitions(&partitions, &image, 2);
        let (changed, targets) = (step.changed, step.targets);
        assert_eq!(
            (changed[0].0.index, changed[0].1),
            (0, RoleChange::BecameLeader)
        );
        assert!(
            !targets.contains_key(&1),
            "no fetcher for a fenced leader's partitions"
        );
        let id = image.topics["t"].id;
        image
            .apply(&MetadataCommand::DeleteTopic {
                name: "t".into(),
                topic_id: id,
            })
            .unwrap();
        let step = reconcile_partitions(&partitions, &image, 2);
        step.synced.unwrap();
        assert!(partitions.all().is_empty());
        assert!(step.targets.is_empty());
        assert!(!dir.path().join("t-0").exists());
    }
}
