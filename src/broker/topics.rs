//! Topic administration shared by the admin APIs and auto-creation: create, delete, add
//! partitions, alter configs. Each validates like Apache Kafka, then proposes one metadata
//! command and brings the hosted partitions in line with the new image.
//!
//! Errors carry the Kafka error code the client should see and a message for it.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::Broker;
use crate::config::topic as topic_config;
use crate::metadata::{MetadataCommand, PartitionAssignment, ProposeError, TopicImage};

/// A refused admin operation: the Kafka error and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub error: ResponseError,
    pub message: String,
}

impl AdminError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        AdminError {
            error,
            message: message.into(),
        }
    }

    pub fn code(&self) -> i16 {
        self.error.code()
    }
}

impl From<ProposeError> for AdminError {
    fn from(e: ProposeError) -> Self {
        use crate::metadata::ApplyError;
        match &e {
            ProposeError::Apply(ApplyError::TopicExists(_)) => {
                AdminError::new(ResponseError::TopicAlreadyExists, e.to_string())
            }
            ProposeError::Apply(ApplyError::UnknownTopic(_)) => {
                AdminError::new(ResponseError::UnknownTopicOrPartition, e.to_string())
            }
            ProposeError::Cluster(c) => AdminError::new(
                ResponseError::try_from_code(c.kafka_error_code())
                    .unwrap_or(ResponseError::UnknownServerError),
                e.to_string(),
            ),
            _ => AdminError::new(ResponseError::InvalidRequest, e.to_string()),
        }
    }
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), AdminError> {
    let bad = |why: &str| {
        Err(AdminError::new(
            ResponseError::InvalidTopicException,
            format!("topic name '{name}' is illegal: {why}"),
        ))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > 249 {
        return bad("it is longer than 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return bad("it may only contain ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Checks a set of topic config overrides.
pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), AdminError> {
    for (k, v) in configs {
        topic_config::validate(k, v)
            .map_err(|m| AdminError::new(ResponseError::InvalidConfig, m))?;
    }
    Ok(())
}

impl Broker {
    /// Live brokers, in id order, for placing partitions.
    fn placement_brokers(&self) -> Vec<i32> {
        let image = self.metadata.image();
        let mut ids: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
        if ids.is_empty() {
            ids.push(self.node_id);
        }
        ids
    }

    fn assign(
        &self,
        first_index: i32,
        count: i32,
        replication_factor: i32,
    ) -> Vec<PartitionAssignment> {
        let brokers = self.placement_brokers();
        (0..count)
            .map(|i| {
                let start = (first_index + i) as usize % brokers.len();
                let replicas: Vec<i32> = (0..replication_factor as usize)
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

    /// The client's replica assignment (CreateTopics `assignments`): each partition starts
    /// with its live replicas in sync, led by the first of them, as in Kafka; a partition
    /// whose replicas are all fenced is refused.
    fn assign_explicitly(
        image: &crate::metadata::MetadataImage,
        assignment: Vec<Vec<i32>>,
    ) -> Result<Vec<PartitionAssignment>, AdminError> {
        assignment
            .into_iter()
            .enumerate()
            .map(|(i, replicas)| {
                let isr: Vec<i32> = replicas
                    .iter()
                    .copied()
                    .filter(|r| image.is_live(*r))
                    .collect();
                let Some(&leader) = isr.first() else {
                    return Err(AdminError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "all brokers of the replica assignment {replicas:?} of partition {i} \
                             are fenced; assign live brokers"
                        ),
                    ));
                };
                Ok(PartitionAssignment {
                    leader,
                    replicas,
                    isr: Some(isr),
                })
            })
            .collect()
    }

    /// Creates a topic; `partitions` / `replication_factor` of -1 take the broker defaults.
    /// With `validate_only`, checks everything and changes nothing.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicImage, AdminError> {
        self.create_topic_placed(
            name,
            partitions,
            replication_factor,
            None,
            configs,
            validate_only,
        )
        .await
    }

    /// [`create_topic`](Self::create_topic), with the replicas of each partition given by
    /// the client (CreateTopics `assignments`, `kafka-topics --replica-assignment`) when
    /// `assignment` is set: the first live replica leads.
    pub async fn create_topic_placed(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        assignment: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicImage, AdminError> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            self.config.default_partitions
        } else {
            partitions
        };
        if partitions <= 0 {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("number of partitions must be larger than 0, not {partitions}"),
            ));
        }
        if partitions > self.config.max_topic_partitions {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "{partitions} partitions is more than max_topic_partitions ({})",
                    self.config.max_topic_partitions
                ),
            ));
        }
        let brokers = self.placement_brokers().len() as i16;
        let replication_factor = if replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        if replication_factor <= 0 || replication_factor > brokers {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!("replication factor {replication_factor} is not between 1 and the {brokers} available brokers"),
            ));
        }
        validate_configs(&configs)?;
        let image = self.metadata.image();
        if image.topics.contains_key(name) {
            return Err(AdminError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        let command = MetadataCommand::CreateTopic {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions: match assignment {
                Some(replicas) => Self::assign_explicitly(&image, replicas)?,
                None => self.assign(0, partitions, replication_factor as i32),
            },
            configs,
        };
        if validate_only {
            image
                .check(&command)
                .map_err(|e| AdminError::from(ProposeError::Apply(e)))?;
            let MetadataCommand::CreateTopic {
                topic_id,
                partitions,
                configs,
                ..
            } = command
            else {
                unreachable!("built above")
            };
            let mut preview = crate::metadata::MetadataImage::default();
            let _ = preview.apply(&MetadataCommand::CreateTopic {
                name: name.to_string(),
                topic_id,
                partitions,
                configs,
            });
            return preview.topics.remove(name).ok_or_else(|| {
                AdminError::new(ResponseError::UnknownServerError, "preview failed")
            });
        }
        let image = self.metadata.propose(command).await?;
        self.sync_partitions()?;
        tracing::info!(topic = name, partitions, "created topic");
        image.topics.get(name).cloned().ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownServerError,
                "topic vanished after creation",
            )
        })
    }

    /// Creates an internal topic (such as `__consumer_offsets`): the partition limit for
    /// user topics does not apply.
    /// Like Kafka, it waits for `replication_factor` live brokers rather than creating a
    /// topic with fewer replicas (the caller answers COORDINATOR_NOT_AVAILABLE meanwhile).
    pub async fn create_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicImage, AdminError> {
        validate_configs(&configs)?;
        let brokers = self.placement_brokers().len();
        if replication_factor as usize > brokers {
            return Err(AdminError::new(
                ResponseError::CoordinatorNotAvailable,
                format!(
                    "{name} needs {replication_factor} live brokers (offsets_topic_replication_factor); {brokers} are live"
                ),
            ));
        }
        let command = MetadataCommand::CreateTopic {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions: self.assign(0, partitions.max(1), replication_factor.max(1) as i32),
            configs,
        };
        let image = self.metadata.propose(command).await?;
        self.sync_partitions()?;
        tracing::info!(topic = name, partitions, "created internal topic");
        image.topics.get(name).cloned().ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownServerError,
                "topic vanished after creation",
            )
        })
    }

    /// Deletes a topic by name (and, when given, checks its id), removing its data.
    pub async fn delete_topic(
        &self,
        name: &str,
        topic_id: Option<Uuid>,
    ) -> Result<Uuid, AdminError> {
        let image = self.metadata.image();
        let topic = match topic_id {
            Some(id) => image.topic_by_id(&id).ok_or_else(|| {
                AdminError::new(
                    ResponseError::UnknownTopicId,
                    format!("no topic has id {id}"),
                )
            })?,
            None => image.topics.get(name).ok_or_else(|| {
                AdminError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist"),
                )
            })?,
        };
        let (name, id) = (topic.name.clone(), topic.id);
        self.metadata
            .propose(MetadataCommand::DeleteTopic {
                name: name.clone(),
                topic_id: id,
            })
            .await?;
        self.sync_partitions()?;
        tracing::info!(topic = %name, "deleted topic");
        Ok(id)
    }

    /// Grows a topic to `total` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let image = self.metadata.image();
        let topic = image.topics.get(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })?;
        let current = topic.partitions.len() as i32;
        if total <= current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "topic currently has {current} partitions, {total} would not be an increase"
                ),
            ));
        }
        if total > self.config.max_topic_partitions {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "{total} partitions is more than max_topic_partitions ({})",
                    self.config.max_topic_partitions
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let rf = topic
            .partitions
            .first()
            .map(|p| p.replicas.len())
            .unwrap_or(1) as i32;
        self.metadata
            .propose(MetadataCommand::CreatePartitions {
                name: name.to_string(),
                new_partitions: self.assign(current, total - current, rf),
            })
            .await?;
        self.sync_partitions()?;
        Ok(())
    }

    /// Sets and deletes topic config overrides.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if !self.metadata.image().topics.contains_key(name) {
            return Err(AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            ));
        }
        validate_configs(&set)?;
        for key in &delete {
            if topic_config::lookup(key).is_none() {
                return Err(AdminError::new(
                    ResponseError::InvalidConfig,
                    format!("unknown topic config '{key}'"),
                ));
            }
        }
        if validate_only {
            return Ok(());
        }
        self.metadata
            .propose(MetadataCommand::AlterTopicConfigs {
                name: name.to_string(),
                set,
                delete,
            })
            .await?;
        self.sync_partitions()?;
        Ok(())
    }

    /// Applies the current image to the hosted partitions: opens and removes logs, then
    /// brings each partition's replica role (leader, follower) in line.
    pub fn sync_partitions(&self) -> Result<(), AdminError> {
        let _serial = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        let image = self.metadata.image();
        let synced = self
            .partitions
            .sync(&image, self.node_id)
            .map_err(|e| AdminError::new(ResponseError::KafkaStorageError, e.to_string()));
        let moved = self.replication.reconcile(&self.partitions.all(), &image);
        for (p, leading) in moved {
            if p.topic == crate::group::OFFSETS_TOPIC {
                if leading {
                    self.groups.load_partition(self, p.index);
                } else {
                    self.groups.unload_partition(self, p.index);
                }
            }
        }
        synced
    }

    /// [`sync_partitions`](Self::sync_partitions), logging a failure instead of returning it.
    pub fn sync_partitions_quietly(&self) {
        if let Err(e) = self.sync_partitions() {
            tracing::error!(error = %e.message, "cannot open the partitions of the new metadata");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn an_explicit_assignment_starts_with_its_live_replicas_in_sync() {
        let mut image = crate::metadata::MetadataImage::with_brokers(1..=3);
        image
            .apply(&MetadataCommand::FenceBroker { id: 1 })
            .unwrap();
        let placed = Broker::assign_explicitly(&image, vec![vec![1, 2, 3], vec![3, 1]]).unwrap();
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
        let refused = Broker::assign_explicitly(&image, vec![vec![3, 1]]).unwrap_err();
        assert_eq!(refused.error, ResponseError::InvalidReplicaAssignment);
    }
}
