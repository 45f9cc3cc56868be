//! Topic administration shared by the admin APIs and auto-creation: create, delete, add
//! partitions, alter configs, the internal offsets topic. Each validates like Apache Kafka,
//! proposes one metadata command, and waits until this broker applied the new image
//! (`reconcile`).
//!
//! Errors carry the Kafka error code the client should see and a message for it.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use std::sync::Arc;

use super::Broker;
use crate::cluster::{controller, ProposeError};
use crate::config::topic as topic_config;
use crate::group::OFFSETS_TOPIC;
use crate::metadata::{MetadataCommand, MetadataImage, PartitionAssignment, TopicImage};
use crate::txn::TRANSACTION_STATE_TOPIC;

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
            ProposeError::Cluster(c) => AdminError::new(c.kafka_error(), e.to_string()),
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
        controller::placement_brokers(&self.metadata.image(), self.node_id)
    }

    fn assign(
        &self,
        first_index: i32,
        count: i32,
        replication_factor: i32,
    ) -> Vec<PartitionAssignment> {
        controller::place(
            &self.placement_brokers(),
            first_index,
            count,
            replication_factor,
        )
    }

    /// Commits `command` and waits until this broker applied it to its partitions (opened,
    /// removed, roles set), so the caller's next request finds them.
    async fn propose_and_reconcile(
        &self,
        command: MetadataCommand,
    ) -> Result<Arc<MetadataImage>, AdminError> {
        let (index, image) = self.metadata.propose_at(command).await?;
        self.reconciler
            .wait_reconciled(index)
            .await
            .map_err(|e| AdminError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        Ok(image)
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
                Some(replicas) => controller::place_explicitly(&image, replicas).map_err(|e| {
                    AdminError::new(ResponseError::InvalidReplicaAssignment, e.to_string())
                })?,
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
        let image = self.propose_and_reconcile(command).await?;
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
            let setting = if name == TRANSACTION_STATE_TOPIC {
                "transaction_state_replication_factor"
            } else {
                "offsets_topic_replication_factor"
            };
            return Err(AdminError::new(
                ResponseError::CoordinatorNotAvailable,
                format!(
                    "{name} needs {replication_factor} live brokers ({setting}); {brokers} are live"
                ),
            ));
        }
        let command = MetadataCommand::CreateTopic {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions: self.assign(0, partitions.max(1), replication_factor.max(1) as i32),
            configs,
        };
        let image = self.propose_and_reconcile(command).await?;
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
        self.propose_and_reconcile(MetadataCommand::DeleteTopic {
            name: name.clone(),
            topic_id: id,
        })
        .await?;
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
        let rf = topic
            .partitions
            .first()
            .map(|p| p.replicas.len())
            .unwrap_or(1) as i32;
        // Kafka refuses rather than place a replica twice on one broker.
        let brokers = self.placement_brokers().len() as i32;
        if rf > brokers {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "the new partitions need {rf} replicas (the topic's replication factor); \
                     {brokers} brokers are live"
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        self.propose_and_reconcile(MetadataCommand::CreatePartitions {
            name: name.to_string(),
            new_partitions: self.assign(current, total - current, rf),
        })
        .await?;
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
        self.propose_and_reconcile(MetadataCommand::AlterTopicConfigs {
            name: name.to_string(),
            set,
            delete,
        })
        .await?;
        Ok(())
    }

    /// Creates `__consumer_offsets` if it does not exist yet (Kafka creates it on the first
    /// FindCoordinator or JoinGroup), compacted; one made before compaction existed gets
    /// `cleanup.policy=compact`.
    pub async fn ensure_offsets_topic(&self) -> Result<(), AdminError> {
        let existing = self
            .metadata
            .image()
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.configs.contains_key(topic_config::CLEANUP_POLICY));
        match existing {
            Some(true) => return Ok(()),
            Some(false) => {
                // Created by a version before compaction: compact it from now on.
                let set = BTreeMap::from([(
                    topic_config::CLEANUP_POLICY.to_string(),
                    "compact".to_string(),
                )]);
                tracing::info!("__consumer_offsets gets cleanup.policy=compact");
                return self
                    .alter_topic_configs(OFFSETS_TOPIC, set, Vec::new(), false)
                    .await;
            }
            None => {}
        }
        let mut configs = BTreeMap::new();
        configs.insert(
            topic_config::SEGMENT_BYTES.to_string(),
            "104857600".to_string(),
        );
        configs.insert(topic_config::RETENTION_MS.to_string(), "-1".to_string());
        configs.insert(
            topic_config::CLEANUP_POLICY.to_string(),
            "compact".to_string(),
        );
        let groups = &self.config.groups;
        match self
            .create_internal_topic(
                OFFSETS_TOPIC,
                groups.offsets_topic_partitions,
                groups.offsets_topic_replication_factor,
                configs,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.error == ResponseError::TopicAlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates `__transaction_state` if it does not exist yet (Kafka creates it on the first
    /// FindCoordinator for a transactional id or InitProducerId): compacted, 100 MiB
    /// segments, kept forever, and min.insync.replicas 2 when replicated (Kafka's
    /// `transaction.state.log.min.isr`).
    pub async fn ensure_transaction_state_topic(&self) -> Result<(), AdminError> {
        if self
            .metadata
            .image()
            .topics
            .contains_key(TRANSACTION_STATE_TOPIC)
        {
            return Ok(());
        }
        let txn = &self.config.transactions;
        let mut configs = BTreeMap::from([
            (
                topic_config::SEGMENT_BYTES.to_string(),
                "104857600".to_string(),
            ),
            (topic_config::RETENTION_MS.to_string(), "-1".to_string()),
            (
                topic_config::CLEANUP_POLICY.to_string(),
                "compact".to_string(),
            ),
        ]);
        if txn.state_replication_factor > 1 {
            configs.insert(
                topic_config::MIN_INSYNC_REPLICAS.to_string(),
                "2".to_string(),
            );
        }
        match self
            .create_internal_topic(
                TRANSACTION_STATE_TOPIC,
                txn.state_partitions,
                txn.state_replication_factor,
                configs,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.error == ResponseError::TopicAlreadyExists => Ok(()),
            Err(e) => Err(e),
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
}
