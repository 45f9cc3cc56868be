//! The metadata image: the state built by applying [`MetadataCommand`]s in order.
//!
//! Invariants: topic names and topic ids are unique and map to each other; every partition
//! leader epoch only grows; `next_producer_id` only grows (every id below it was given to a
//! broker); applying a command either changes the image completely or
//! leaves it untouched (validation happens before any change). `apply` is deterministic, so
//! every node that applies the same commands holds the same image.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::topic::UNCLEAN_LEADER_ELECTION_ENABLE;

use super::command::{MetadataCommand, PartitionAssignment};

/// A broker clients can connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
    /// Set by the controller when the broker stops answering.
    #[serde(default)]
    pub fenced: bool,
}

/// One partition's placement and leadership.
///
/// `leader` is -1 while no in-sync replica is live (the partition is offline). Every change
/// of leader bumps `leader_epoch`; every change of leader or ISR bumps `partition_epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    #[serde(default)]
    pub partition_epoch: i32,
}

/// The leader value of a partition without a live in-sync replica.
pub const NO_LEADER: i32 = -1;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionImage>,
    /// Config overrides; defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

/// The whole metadata state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicImage>,
    /// The first producer id not yet given to a broker (`AllocateProducerIds`). Images
    /// written before producer ids existed read as 0.
    #[serde(default)]
    pub next_producer_id: i64,
    /// The latest block of producer ids given to each broker, `[start, end)`, so a broker
    /// learns its block from the image whichever commands were applied after its own.
    #[serde(default)]
    pub producer_id_blocks: BTreeMap<i32, (i64, i64)>,
    #[serde(skip)]
    topic_names_by_id: HashMap<Uuid, String>,
}

/// Why a command cannot apply to the current image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("topic id {0} is already used")]
    TopicIdExists(Uuid),
    #[error("partition {1} of topic '{0}' does not exist")]
    UnknownPartition(String, i32),
    #[error("leader epoch {new} of {topic}-{partition} is not above the current {current}")]
    StaleEpoch {
        topic: String,
        partition: i32,
        current: i32,
        new: i32,
    },
    #[error(
        "the change of {topic}-{partition} was made for leader {leader} in leader epoch \
         {leader_epoch} and partition epoch {partition_epoch}, which are no longer current"
    )]
    StalePartitionState {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    #[error("invalid ISR {isr:?} for {topic}-{partition}: {reason}")]
    InvalidIsr {
        topic: String,
        partition: i32,
        isr: Vec<i32>,
        reason: String,
    },
    #[error("the cluster id is already set")]
    ClusterIdSet,
    #[error(
        "cannot allocate {count} producer ids after {next}: the count must be positive and \
         the ids must stay below i64::MAX"
    )]
    InvalidProducerIdBlock { next: i64, count: i64 },
}

fn partition_of(a: &PartitionAssignment) -> PartitionImage {
    PartitionImage {
        leader: a.leader,
        leader_epoch: 0,
        replicas: a.replicas.clone(),
        isr: a.isr.clone().unwrap_or_else(|| a.replicas.clone()),
        partition_epoch: 0,
    }
}

impl PartitionImage {
    /// A new leader (or none), in a new leader epoch.
    fn set_leader(&mut self, leader: i32) {
        self.leader = leader;
        self.leader_epoch += 1;
        self.partition_epoch += 1;
    }
}

impl MetadataImage {
    /// Brokers that are registered and not fenced, in id order.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether `id` is a registered, unfenced broker.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// The topic with this id, if any.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
    }

    /// Rebuilds derived indexes after deserializing a snapshot.
    pub fn reindex(&mut self) {
        self.topic_names_by_id = self
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
    }

    /// One partition, or the error naming what is missing.
    pub fn partition(&self, name: &str, partition: i32) -> Result<&PartitionImage, ApplyError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| ApplyError::UnknownTopic(name.to_string()))?;
        usize::try_from(partition)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or_else(|| ApplyError::UnknownPartition(name.to_string(), partition))
    }

    /// Broker `id` stopped answering: it leaves every ISR it is in (unless it is the last
    /// member, which Kafka keeps so the partition can come back clean), and every partition
    /// it led gets the first live in-sync replica, in replica order, as leader. With no such
    /// replica the partition goes offline (leader -1), unless the topic allows unclean
    /// election, which takes any live replica and loses what the ISR had beyond it.
    fn fence(&mut self, id: i32) {
        let live: std::collections::BTreeSet<i32> = self.live_brokers().map(|b| b.id).collect();
        for topic in self.topics.values_mut() {
            let unclean = topic
                .configs
                .get(UNCLEAN_LEADER_ELECTION_ENABLE)
                .is_some_and(|v| v == "true");
            for p in &mut topic.partitions {
                if p.isr.len() > 1 && p.isr.contains(&id) {
                    p.isr.retain(|r| *r != id);
                    p.partition_epoch += 1;
                }
                if p.leader != id {
                    continue;
                }
                let clean = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| p.isr.contains(r) && live.contains(r));
                match clean {
                    Some(r) => p.set_leader(r),
                    None => match p.replicas.iter().copied().find(|r| live.contains(r)) {
                        Some(r) if unclean => {
                            p.isr = vec![r];
                            p.set_leader(r);
                        }
                        _ => p.set_leader(NO_LEADER),
                    },
                }
            }
        }
    }

    /// Broker `id` answers again: offline partitions whose ISR it is in get it as leader.
    fn unfence(&mut self, id: i32) {
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if p.leader == NO_LEADER && p.isr.contains(&id) {
                    p.set_leader(id);
                }
            }
        }
    }

    /// Test support: an image with brokers `ids` registered (host "h", port 9091 + id).
    #[cfg(test)]
    pub(crate) fn with_brokers(ids: impl IntoIterator<Item = i32>) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in ids {
            image
                .apply(&MetadataCommand::RegisterBroker {
                    id,
                    host: "h".into(),
                    port: 9091 + id as u16,
                })
                .expect("registering a broker always applies");
        }
        image
    }

    /// Checks whether `command` would apply, without changing anything.
    pub fn check(&self, command: &MetadataCommand) -> Result<(), ApplyError> {
        match command {
            MetadataCommand::InitCluster { .. } if !self.cluster_id.is_empty() => {
                Err(ApplyError::ClusterIdSet)
            }
            MetadataCommand::CreateTopic { name, topic_id, .. } => {
                if self.topics.contains_key(name) {
                    Err(ApplyError::TopicExists(name.clone()))
                } else if self.topic_names_by_id.contains_key(topic_id) {
                    Err(ApplyError::TopicIdExists(*topic_id))
                } else {
                    Ok(())
                }
            }
            MetadataCommand::DeleteTopic { name, topic_id } => match self.topics.get(name) {
                Some(t) if t.id == *topic_id => Ok(()),
                _ => Err(ApplyError::UnknownTopic(name.clone())),
            },
            MetadataCommand::CreatePartitions { name, .. }
            | MetadataCommand::AlterTopicConfigs { name, .. } => self
                .topics
                .get(name)
                .map(|_| ())
                .ok_or_else(|| ApplyError::UnknownTopic(name.clone())),
            MetadataCommand::ChangeLeader {
                name,
                partition,
                leader,
                leader_epoch,
            } => {
                let p = self.partition(name, *partition)?;
                if *leader_epoch <= p.leader_epoch {
                    return Err(ApplyError::StaleEpoch {
                        topic: name.clone(),
                        partition: *partition,
                        current: p.leader_epoch,
                        new: *leader_epoch,
                    });
                }
                if !p.isr.contains(leader) || !self.is_live(*leader) {
                    return Err(ApplyError::InvalidIsr {
                        topic: name.clone(),
                        partition: *partition,
                        isr: p.isr.clone(),
                        reason: format!("the new leader {leader} is not a live in-sync replica"),
                    });
                }
                Ok(())
            }
            MetadataCommand::AlterPartition {
                name,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let p = self.partition(name, *partition)?;
                if p.leader != *leader
                    || p.leader_epoch != *leader_epoch
                    || p.partition_epoch != *partition_epoch
                {
                    return Err(ApplyError::StalePartitionState {
                        topic: name.clone(),
                        partition: *partition,
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        partition_epoch: *partition_epoch,
                    });
                }
                let invalid = |reason: String| ApplyError::InvalidIsr {
                    topic: name.clone(),
                    partition: *partition,
                    isr: isr.clone(),
                    reason,
                };
                if !isr.contains(leader) {
                    return Err(invalid("the ISR must contain the leader".into()));
                }
                let mut seen = std::collections::BTreeSet::new();
                for r in isr {
                    if !p.replicas.contains(r) || !seen.insert(*r) {
                        return Err(invalid(format!("{r} is not a replica, or is listed twice")));
                    }
                    if !p.isr.contains(r) && !self.is_live(*r) {
                        return Err(invalid(format!("broker {r} is fenced and cannot join")));
                    }
                }
                Ok(())
            }
            MetadataCommand::AllocateProducerIds { count, .. } => {
                if *count <= 0 || self.next_producer_id.checked_add(*count).is_none() {
                    return Err(ApplyError::InvalidProducerIdBlock {
                        next: self.next_producer_id,
                        count: *count,
                    });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Applies `command`, or returns why it cannot apply and leaves the image unchanged.
    pub fn apply(&mut self, command: &MetadataCommand) -> Result<(), ApplyError> {
        self.check(command)?;
        match command {
            MetadataCommand::InitCluster { cluster_id } => self.cluster_id = cluster_id.clone(),
            MetadataCommand::RegisterBroker { id, host, port } => {
                self.brokers.insert(
                    *id,
                    BrokerInfo {
                        id: *id,
                        host: host.clone(),
                        port: *port,
                        fenced: false,
                    },
                );
                self.unfence(*id);
            }
            MetadataCommand::FenceBroker { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = true;
                }
                self.fence(*id);
            }
            MetadataCommand::UnfenceBroker { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = false;
                }
                self.unfence(*id);
            }
            MetadataCommand::CreateTopic {
                name,
                topic_id,
                partitions,
                configs,
            } => {
                self.topic_names_by_id.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: partitions.iter().map(partition_of).collect(),
                        configs: configs.clone(),
                    },
                );
            }
            MetadataCommand::DeleteTopic { name, topic_id } => {
                self.topics.remove(name);
                self.topic_names_by_id.remove(topic_id);
            }
            MetadataCommand::CreatePartitions {
                name,
                new_partitions,
            } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions.extend(new_partitions.iter().map(partition_of));
                }
            }
            MetadataCommand::AlterTopicConfigs { name, set, delete } => {
                if let Some(t) = self.topics.get_mut(name) {
                    for key in delete {
                        t.configs.remove(key);
                    }
                    for (k, v) in set {
                        t.configs.insert(k.clone(), v.clone());
                    }
                }
            }
            MetadataCommand::ChangeLeader {
                name,
                partition,
                leader,
                leader_epoch,
            } => {
                if let Some(p) = self
                    .topics
                    .get_mut(name)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                {
                    p.leader = *leader;
                    p.leader_epoch = *leader_epoch;
                    p.partition_epoch += 1;
                }
            }
            MetadataCommand::AlterPartition {
                name,
                partition,
                isr,
                ..
            } => {
                if let Some(p) = self
                    .topics
                    .get_mut(name)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                {
                    p.isr = isr.clone();
                    p.partition_epoch += 1;
                }
            }
            MetadataCommand::AllocateProducerIds { broker_id, count } => {
                // `check` proved the sum fits.
                let start = self.next_producer_id;
                self.next_producer_id = start.saturating_add(*count);
                self.producer_id_blocks
                    .insert(*broker_id, (start, self.next_producer_id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, n: usize) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            name: name.into(),
            topic_id: Uuid::new_v4(),
            partitions: vec![
                PartitionAssignment {
                    leader: 1,
                    replicas: vec![1],
                    isr: None,
                };
                n
            ],
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn create_delete_and_recreate_gets_a_new_id() {
        let mut image = MetadataImage::default();
        image.apply(&create("t", 3)).unwrap();
        let id = image.topics["t"].id;
        assert_eq!(image.topic_by_id(&id).unwrap().partitions.len(), 3);
        assert_eq!(
            image.apply(&create("t", 1)),
            Err(ApplyError::TopicExists("t".into()))
        );
        image
            .apply(&MetadataCommand::DeleteTopic {
                name: "t".into(),
                topic_id: id,
            })
            .unwrap();
        assert!(image.topic_by_id(&id).is_none());
        image.apply(&create("t", 1)).unwrap();
        assert_ne!(image.topics["t"].id, id);
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut image = MetadataImage::default();
        let alloc = |count| MetadataCommand::AllocateProducerIds {
            broker_id: 1,
            count,
        };
        image.apply(&alloc(1000)).unwrap();
        assert_eq!(image.next_producer_id, 1000);
        image.apply(&alloc(5)).unwrap();
        assert_eq!(image.next_producer_id, 1005);
        assert!(matches!(
            image.apply(&alloc(0)),
            Err(ApplyError::InvalidProducerIdBlock { .. })
        ));
        image.next_producer_id = i64::MAX - 1;
        assert!(image.apply(&alloc(2)).is_err());
        assert_eq!(image.next_producer_id, i64::MAX - 1);
        // Images from before producer ids read as 0.
        let old: MetadataImage =
            serde_json::from_str(r#"{"cluster_id": "c", "brokers": {}, "topics": {}}"#).unwrap();
        assert_eq!(old.next_producer_id, 0);
    }

    #[test]
    fn leader_epochs_never_go_backwards() {
        let mut image = MetadataImage::default();
        image
            .apply(&MetadataCommand::RegisterBroker {
                id: 1,
                host: "h".into(),
                port: 9092,
            })
            .unwrap();
        image.apply(&create("t", 1)).unwrap();
        let change = |epoch| MetadataCommand::ChangeLeader {
            name: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: epoch,
        };
        image.apply(&change(2)).unwrap();
        assert!(matches!(
            image.apply(&change(2)),
            Err(ApplyError::StaleEpoch { .. })
        ));
        assert_eq!(image.topics["t"].partitions[0].leader_epoch, 2);
    }

    fn three_brokers_and_rf3_topic(configs: BTreeMap<String, String>) -> MetadataImage {
        let mut image = MetadataImage::with_brokers(1..=3);
        image
            .apply(&MetadataCommand::CreateTopic {
                name: "t".into(),
                topic_id: Uuid::new_v4(),
                partitions: vec![PartitionAssignment {
                    leader: 1,
                    replicas: vec![1, 2, 3],
                    isr: None,
                }],
                configs,
            })
            .unwrap();
        image
    }

    fn fence(image: &mut MetadataImage, id: i32, fenced: bool) {
        let command = if fenced {
            MetadataCommand::FenceBroker { id }
        } else {
            MetadataCommand::UnfenceBroker { id }
        };
        image.apply(&command).unwrap();
    }

    #[test]
    fn fencing_the_leader_elects_the_next_in_sync_replica() {
        let mut image = three_brokers_and_rf3_topic(BTreeMap::new());
        fence(&mut image, 1, true);
        let p = &image.topics["t"].partitions[0];
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (2, 1, vec![2, 3])
        );
        fence(&mut image, 2, true);
        let p = &image.topics["t"].partitions[0];
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (3, 2, vec![3]));
        // The last in-sync replica dies: offline, and it stays in the ISR.
        fence(&mut image, 3, true);
        let p = &image.topics["t"].partitions[0];
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (NO_LEADER, 3, vec![3])
        );
        // A replica outside the ISR coming back does not lead (no unclean election) ...
        fence(&mut image, 1, false);
        assert_eq!(image.topics["t"].partitions[0].leader, NO_LEADER);
        // ... the last in-sync one does.
        fence(&mut image, 3, false);
        let p = &image.topics["t"].partitions[0];
        assert_eq!((p.leader, p.leader_epoch), (3, 4));
        assert!(p.partition_epoch >= 4);
    }

    #[test]
    fn unclean_election_takes_any_live_replica_when_the_topic_allows_it() {
        let configs = BTreeMap::from([(
            UNCLEAN_LEADER_ELECTION_ENABLE.to_string(),
            "true".to_string(),
        )]);
        let mut image = three_brokers_and_rf3_topic(configs);
        fence(&mut image, 2, true);
        fence(&mut image, 3, true);
        fence(&mut image, 2, false);
        fence(&mut image, 1, true);
        let p = &image.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn isr_changes_from_a_stale_view_are_rejected() {
        let mut image = three_brokers_and_rf3_topic(BTreeMap::new());
        let alter =
            |leader_epoch, partition_epoch, isr: Vec<i32>| MetadataCommand::AlterPartition {
                name: "t".into(),
                partition: 0,
                leader: 1,
                leader_epoch,
                partition_epoch,
                isr,
            };
        image.apply(&alter(0, 0, vec![1, 2])).unwrap();
        assert_eq!(image.topics["t"].partitions[0].isr, vec![1, 2]);
        assert!(matches!(
            image.apply(&alter(0, 0, vec![1])),
            Err(ApplyError::StalePartitionState { .. })
        ));
        assert!(matches!(
            image.apply(&alter(0, 1, vec![2])),
            Err(ApplyError::InvalidIsr { .. })
        ));
        assert!(matches!(
            image.apply(&alter(0, 1, vec![1, 4])),
            Err(ApplyError::InvalidIsr { .. })
        ));
        // A fenced broker cannot join.
        fence(&mut image, 3, true);
        let epoch = image.topics["t"].partitions[0].partition_epoch;
        assert!(matches!(
            image.apply(&alter(0, epoch, vec![1, 2, 3])),
            Err(ApplyError::InvalidIsr { .. })
        ));
        // Preferred leader election moves only to a live in-sync replica.
        let change = |leader| MetadataCommand::ChangeLeader {
            name: "t".into(),
            partition: 0,
            leader,
            leader_epoch: 5,
        };
        assert!(image.apply(&change(3)).is_err());
        image.apply(&change(2)).unwrap();
        assert_eq!(image.topics["t"].partitions[0].leader, 2);
    }
}
