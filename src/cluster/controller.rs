//! Controller duties, run on the Raft leader (the controller, in Kafka's terms): broker
//! liveness (fencing silent brokers, unfencing answering ones), giving partitions back to
//! their preferred leader, and placing the replicas of new partitions.
//!
//! The decisions are pure functions of the metadata image and the Raft quorum view
//! ([`liveness_changes`], [`preferred_leader_changes`], [`place`], [`place_explicitly`]);
//! the [`Controller`] loops only propose what they return. Every election a command makes
//! happens in the image itself when the command is applied, on every node alike.

use std::time::{Duration, Instant};

use super::{Metadata, QuorumInfo};
use crate::config::ClusterConfig;
use crate::metadata::{MetadataCommand, MetadataImage, PartitionAssignment};

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
    image: &MetadataImage,
    quorum: &QuorumInfo,
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

/// The leadership moves that give each partition back to its preferred leader (the first
/// replica) once that broker is live and in sync again, so leadership spreads out after a
/// failover as it was placed.
pub fn preferred_leader_changes(image: &MetadataImage) -> Vec<MetadataCommand> {
    let mut changes = Vec::new();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            if p.leader == preferred || !p.isr.contains(&preferred) || !image.is_live(preferred) {
                continue;
            }
            changes.push(MetadataCommand::ChangeLeader {
                name: t.name.clone(),
                partition: i as i32,
                leader: preferred,
                leader_epoch: p.leader_epoch + 1,
            });
        }
    }
    changes
}

/// The brokers new replicas may go to: the live ones in id order (`me` alone before any
/// broker is registered).
pub fn placement_brokers(image: &MetadataImage, me: i32) -> Vec<i32> {
    let mut ids: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
    if ids.is_empty() {
        ids.push(me);
    }
    ids
}

/// Places `count` partitions numbered from `first_index` with `replication_factor`
/// replicas each over `brokers`, round robin: partition i starts at broker i mod n and
/// takes the next ones; the first replica leads and every replica starts in sync. The
/// replication factor is kept within 1 and the number of brokers (callers refuse more), so
/// no broker holds two replicas of one partition.
pub fn place(
    brokers: &[i32],
    first_index: i32,
    count: i32,
    replication_factor: i32,
) -> Vec<PartitionAssignment> {
    if brokers.is_empty() {
        return Vec::new();
    }
    let replication_factor = usize::try_from(replication_factor)
        .unwrap_or(1)
        .clamp(1, brokers.len());
    (0..count)
        .map(|i| {
            let start = (first_index + i) as usize % brokers.len();
            let replicas: Vec<i32> = (0..replication_factor)
                .map(|r| brokers[(start + r) % brokers.len()])
                .collect();
            PartitionAssignment {
                leader: replicas[0],
                isr: Some(replicas.clone()),
                replicas,
            }
        })
        .collect()
}

/// A client's replica assignment that cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "all brokers of the replica assignment {replicas:?} of partition {partition} are fenced; \
     assign live brokers"
)]
pub struct AllReplicasFenced {
    pub partition: usize,
    pub replicas: Vec<i32>,
}

/// The client's replica assignment (CreateTopics `assignments`): each partition starts
/// with its live replicas in sync, led by the first of them, as in Kafka; a partition
/// whose replicas are all fenced is refused.
pub fn place_explicitly(
    image: &MetadataImage,
    assignment: Vec<Vec<i32>>,
) -> Result<Vec<PartitionAssignment>, AllReplicasFenced> {
    assignment
        .into_iter()
        .enumerate()
        .map(|(partition, replicas)| {
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|r| image.is_live(*r))
                .collect();
            let Some(&leader) = isr.first() else {
                return Err(AllReplicasFenced {
                    partition,
                    replicas,
                });
            };
            Ok(PartitionAssignment {
                leader,
                replicas,
                isr: Some(isr),
            })
        })
        .collect()
}

/// The controller loops of one node; each acts only while this node is the Raft leader.
pub struct Controller {
    metadata: Metadata,
    me: i32,
    /// Silence after which a broker is fenced (Kafka's broker.session.timeout.ms).
    session: Duration,
    /// What a new controller waits before judging silence.
    grace: Duration,
}

impl Controller {
    /// The controller of node `me`, with the timings of its cluster config: the session is
    /// three election timeouts, at least two seconds; a new controller gives every voter
    /// one election timeout to answer its first heartbeats.
    pub fn new(metadata: Metadata, me: i32, cluster: &ClusterConfig) -> Controller {
        let election = Duration::from_millis(cluster.election_rtt * cluster.rtt_ms);
        let session = (election * 3).max(Duration::from_secs(2));
        Controller {
            metadata,
            me,
            session,
            grace: election.min(session),
        }
    }

    /// Fences brokers whose Raft node stopped answering and unfences them when they answer
    /// again (every broker is a Raft voter, so Raft's own heartbeats are the liveness
    /// signal). Runs until the task is aborted.
    pub async fn watch_liveness(self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut leader_since: Option<Instant> = None;
        loop {
            tick.tick().await;
            if !self.metadata.is_controller() {
                leader_since = None;
                continue;
            }
            let since = *leader_since.get_or_insert_with(Instant::now);
            let judge_others = since.elapsed() >= self.grace;
            let image = self.metadata.image();
            let quorum = self.metadata.quorum();
            for command in liveness_changes(&image, &quorum, self.me, self.session, judge_others) {
                let (id, fenced) = match &command {
                    MetadataCommand::FenceBroker { id } => (*id, true),
                    MetadataCommand::UnfenceBroker { id } => (*id, false),
                    _ => continue,
                };
                if id == self.me {
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

    /// Every 5 s, gives partitions back to their preferred leaders. Runs until aborted.
    pub async fn restore_preferred_leaders(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if !self.metadata.is_controller() {
                continue;
            }
            for command in preferred_leader_changes(&self.metadata.image()) {
                let MetadataCommand::ChangeLeader {
                    name,
                    partition,
                    leader,
                    ..
                } = &command
                else {
                    continue;
                };
                let (topic, partition, leader) = (name.clone(), *partition, *leader);
                match self.metadata.propose(command).await {
                    Ok(_) => {
                        tracing::info!(topic, partition, leader, "preferred leader restored")
                    }
                    Err(e) => {
                        tracing::debug!(topic, partition, error = %e, "preferred leader not restored")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cluster::VoterInfo;
    use crate::metadata::image::NO_LEADER;

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

    fn create(image: &mut MetadataImage, replicas: Vec<i32>) {
        image
            .apply(&MetadataCommand::CreateTopic {
                name: "t".into(),
                topic_id: uuid::Uuid::new_v4(),
                partitions: vec![PartitionAssignment {
                    leader: replicas[0],
                    replicas,
                    isr: None,
                }],
                configs: Default::default(),
            })
            .unwrap();
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
        // Replicas [1, 3, 2]: 2 left the ISR earlier, 3 (fenced while paused as controller)
        // is the last in-sync replica once 1 is fenced.
        let mut image = image_with(&[]);
        create(&mut image, vec![1, 3, 2]);
        for command in [
            MetadataCommand::FenceBroker { id: 2 },
            MetadataCommand::FenceBroker { id: 3 },
            MetadataCommand::FenceBroker { id: 1 },
            MetadataCommand::UnfenceBroker { id: 2 },
        ] {
            image.apply(&command).unwrap();
        }
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
    fn leadership_goes_back_to_a_live_in_sync_preferred_replica() {
        let mut image = image_with(&[]);
        create(&mut image, vec![1, 2, 3]);
        assert!(preferred_leader_changes(&image).is_empty());
        image
            .apply(&MetadataCommand::FenceBroker { id: 1 })
            .unwrap();
        let led = image.topics["t"].partitions[0].clone();
        assert_eq!(led.leader, 2);
        // Fenced, and then out of the ISR: not given back.
        assert!(preferred_leader_changes(&image).is_empty());
        image
            .apply(&MetadataCommand::UnfenceBroker { id: 1 })
            .unwrap();
        assert!(
            preferred_leader_changes(&image).is_empty(),
            "live, not in sync yet"
        );
        // The leader takes it back into the ISR: now it is given its leadership back.
        image
            .apply(&MetadataCommand::AlterPartition {
                name: "t".into(),
                partition: 0,
                leader: 2,
                leader_epoch: led.leader_epoch,
                partition_epoch: led.partition_epoch,
                isr: vec![2, 3, 1],
            })
            .unwrap();
        assert_eq!(
            preferred_leader_changes(&image),
            vec![MetadataCommand::ChangeLeader {
                name: "t".into(),
                partition: 0,
                leader: 1,
                leader_epoch: led.leader_epoch + 1,
            }]
        );
    }

    #[test]
    fn partitions_are_placed_round_robin_over_live_brokers() {
        let mut image = image_with(&[]);
        image
            .apply(&MetadataCommand::FenceBroker { id: 2 })
            .unwrap();
        let brokers = placement_brokers(&image, 1);
        assert_eq!(brokers, vec![1, 3]);
        let placed = place(&brokers, 0, 3, 2);
        let replicas: Vec<Vec<i32>> = placed.iter().map(|p| p.replicas.clone()).collect();
        assert_eq!(replicas, vec![vec![1, 3], vec![3, 1], vec![1, 3]]);
        assert!(placed
            .iter()
            .all(|p| p.leader == p.replicas[0] && p.isr.as_ref() == Some(&p.replicas)));
        // Added partitions continue the rotation.
        assert_eq!(place(&brokers, 3, 1, 2)[0].replicas, vec![3, 1]);
        assert_eq!(placement_brokers(&MetadataImage::default(), 7), vec![7]);
        // Never a broker twice, never an empty replica list.
        assert_eq!(place(&brokers, 0, 1, 3)[0].replicas, vec![1, 3]);
        assert_eq!(place(&brokers, 0, 1, 0)[0].replicas, vec![1]);
        assert_eq!(place(&brokers, 0, 1, -4)[0].replicas, vec![1]);
    }

    #[test]
    fn an_explicit_assignment_starts_with_its_live_replicas_in_sync() {
        let mut image = image_with(&[1]);
        let placed = place_explicitly(&image, vec![vec![1, 2, 3], vec![3, 1]]).unwrap();
        assert_eq!(
            (placed[0].leader, placed[0].isr.clone()),
            (2, Some(vec![2, 3]))
        );
        assert_eq!(
            (placed[1].leader, placed[1].isr.clone()),
            (3, Some(vec![3]))
        );
        image
            .apply(&MetadataCommand::FenceBroker { id: 3 })
            .unwrap();
        let refused = place_explicitly(&image, vec![vec![3, 1]]).unwrap_err();
        assert_eq!(refused.replicas, vec![3, 1]);
    }
}
