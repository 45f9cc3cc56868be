//! DescribeConfigs (topic and broker resources: every config with its value, source,
//! synonyms, type and documentation) and IncrementalAlterConfigs for topic configs.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    alter_configs_response, AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::str_bytes;
use crate::broker::{AdminError, Broker};
use crate::config::topic::{self as topic_config, ConfigKind, TOPIC_CONFIGS};
use crate::config::{Config, FlushPolicy};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

// Kafka's ConfigSource ids.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Where the effective value of a topic config comes from.
pub fn config_source(config: &Config, overrides: &BTreeMap<String, String>, key: &str) -> i8 {
    if overrides.contains_key(key) {
        SOURCE_DYNAMIC_TOPIC
    } else {
        broker_source(config, key)
    }
}

/// STATIC_BROKER_CONFIG when the broker config file changed the built-in default.
fn broker_source(config: &Config, key: &str) -> i8 {
    if topic_config::broker_default(config, key)
        == topic_config::broker_default(&Config::default(), key)
    {
        SOURCE_DEFAULT
    } else {
        SOURCE_STATIC_BROKER
    }
}

struct BrokerConfigEntry {
    name: &'static str,
    value: Option<String>,
    kind: ConfigKind,
    default: Option<String>,
    doc: &'static str,
}

fn broker_configs(broker: &Broker, config: &Config) -> Vec<BrokerConfigEntry> {
    let flush_messages = match config.flush {
        FlushPolicy::Always => Some("1".to_string()),
        FlushPolicy::EveryMessages(n) => Some(n.to_string()),
        _ => Some(i64::MAX.to_string()),
    };
    let flush_ms = match config.flush {
        FlushPolicy::Interval(d) => Some(d.as_millis().to_string()),
        _ => None,
    };
    let listener = format!("PLAINTEXT://{}:{}", config.server.host, config.server.port);
    let advertised = format!(
        "PLAINTEXT://{}:{}",
        config.server.advertised_host, config.server.port
    );
    let retention_ms = topic_config::broker_default(config, "retention.ms");
    let d = Config::default();
    let e = |name, value: Option<String>, kind, default: Option<String>, doc| BrokerConfigEntry {
        name,
        value,
        kind,
        default,
        doc,
    };
    vec![
        e(
            "advertised.listeners",
            Some(advertised),
            ConfigKind::String,
            None,
            "The address clients are told to use.",
        ),
        e(
            "auto.create.topics.enable",
            Some(config.auto_create_topics.to_string()),
            ConfigKind::Boolean,
            Some(d.auto_create_topics.to_string()),
            "Create unknown topics on first use (auto_create_topics).",
        ),
        e(
            "broker.id",
            Some(broker.node_id.to_string()),
            ConfigKind::Int,
            Some("1".into()),
            "This broker's id (cluster.node_id).",
        ),
        e(
            "compression.type",
            Some("producer".into()),
            ConfigKind::String,
            Some("producer".into()),
            "Batches are stored as the producer compressed them.",
        ),
        e(
            "default.replication.factor",
            Some("1".into()),
            ConfigKind::Int,
            Some("1".into()),
            "Replication factor of auto-created topics.",
        ),
        e(
            "listeners",
            Some(listener),
            ConfigKind::String,
            None,
            "The address the broker listens on (server.host, server.port).",
        ),
        e(
            "log.cleanup.policy",
            Some("delete".into()),
            ConfigKind::String,
            Some("delete".into()),
            "Old segments are deleted.",
        ),
        e(
            "log.dirs",
            Some(config.data_dir.display().to_string()),
            ConfigKind::String,
            None,
            "Partition data directory (data_dir).",
        ),
        e(
            "log.flush.interval.messages",
            flush_messages,
            ConfigKind::Long,
            Some(i64::MAX.to_string()),
            "Records between fsyncs (flush.policy).",
        ),
        e(
            "log.flush.interval.ms",
            flush_ms,
            ConfigKind::Long,
            None,
            "Milliseconds between fsyncs (flush.policy interval).",
        ),
        e(
            "log.message.timestamp.type",
            Some("CreateTime".into()),
            ConfigKind::String,
            Some("CreateTime".into()),
            "Default timestamp type of topics.",
        ),
        e(
            "log.retention.bytes",
            Some(topic_config::broker_default(config, "retention.bytes")),
            ConfigKind::Long,
            Some("-1".into()),
            "Size limit per partition (retention_bytes).",
        ),
        e(
            "log.retention.check.interval.ms",
            Some(config.retention_check_interval.as_millis().to_string()),
            ConfigKind::Long,
            Some(d.retention_check_interval.as_millis().to_string()),
            "How often retention runs (retention_check_interval).",
        ),
        e(
            "log.retention.ms",
            Some(retention_ms),
            ConfigKind::Long,
            Some(topic_config::broker_default(&d, "retention.ms")),
            "Age limit of segments (retention_time).",
        ),
        e(
            "log.segment.bytes",
            Some(config.segment_size.to_string()),
            ConfigKind::Int,
            Some(d.segment_size.to_string()),
            "Segment size (segment_size).",
        ),
        e(
            "message.max.bytes",
            Some(config.max_message_bytes.to_string()),
            ConfigKind::Int,
            Some(d.max_message_bytes.to_string()),
            "Largest record batch (max_message_bytes).",
        ),
        e(
            "min.insync.replicas",
            Some("1".into()),
            ConfigKind::Int,
            Some("1".into()),
            "Replicas that must acknowledge an acks=all write.",
        ),
        e(
            "node.id",
            Some(broker.node_id.to_string()),
            ConfigKind::Int,
            Some("1".into()),
            "This broker's id (cluster.node_id).",
        ),
        e(
            "num.partitions",
            Some(config.default_partitions.to_string()),
            ConfigKind::Int,
            Some(d.default_partitions.to_string()),
            "Partitions of auto-created topics (default_partitions).",
        ),
        e(
            "socket.request.max.bytes",
            Some(config.server.max_request_bytes.to_string()),
            ConfigKind::Int,
            Some(d.server.max_request_bytes.to_string()),
            "Largest request accepted (server.max_request_bytes).",
        ),
        e(
            "unclean.leader.election.enable",
            Some("false".into()),
            ConfigKind::Boolean,
            Some("false".into()),
            "Whether an out-of-sync replica may become leader.",
        ),
    ]
}

fn wanted(keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>, name: &str) -> bool {
    keys.as_ref()
        .is_none_or(|k| k.is_empty() || k.iter().any(|k| k.as_str() == name))
}

fn describe_topic(
    broker: &Broker,
    request: &DescribeConfigsRequest,
    name: &str,
    keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>,
    version: i16,
) -> Result<Vec<DescribeConfigsResourceResult>, AdminError> {
    let image = broker.metadata.image();
    let topic = image.topics.get(name).ok_or_else(|| {
        AdminError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let config = &broker.config;
    Ok(TOPIC_CONFIGS
        .iter()
        .filter(|d| wanted(keys, d.name))
        .map(|d| {
            let value = topic_config::effective_value(config, &topic.configs, d.name);
            let source = config_source(config, &topic.configs, d.name);
            let mut synonyms = Vec::new();
            if request.include_synonyms {
                if let Some(v) = topic.configs.get(d.name) {
                    synonyms.push(
                        DescribeConfigsSynonym::default()
                            .with_name(str_bytes(d.name))
                            .with_value(Some(str_bytes(v.clone())))
                            .with_source(SOURCE_DYNAMIC_TOPIC),
                    );
                }
                synonyms.push(
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(d.broker_synonym))
                        .with_value(Some(str_bytes(topic_config::broker_default(
                            config, d.name,
                        ))))
                        .with_source(broker_source(config, d.name)),
                );
            }
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(d.name))
                .with_value(Some(str_bytes(value)))
                .with_read_only(false)
                .with_config_source(if version == 0 { 0 } else { source })
                .with_synonyms(synonyms)
                .with_config_type(d.kind as i8)
                .with_documentation(request.include_documentation.then(|| str_bytes(d.doc)))
        })
        .collect())
}

fn describe_broker(
    broker: &Broker,
    request: &DescribeConfigsRequest,
    name: &str,
    keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>,
) -> Result<Vec<DescribeConfigsResourceResult>, AdminError> {
    if !name.is_empty() && name.parse::<i32>().ok() != Some(broker.node_id) {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("broker '{name}' is not this broker ({})", broker.node_id),
        ));
    }
    Ok(broker_configs(broker, &broker.config)
        .into_iter()
        .filter(|c| wanted(keys, c.name))
        .map(|c| {
            let source = if c.value.is_some() && c.value == c.default {
                SOURCE_DEFAULT
            } else {
                SOURCE_STATIC_BROKER
            };
            let synonyms = if request.include_synonyms {
                vec![DescribeConfigsSynonym::default()
                    .with_name(str_bytes(c.name))
                    .with_value(c.value.clone().map(str_bytes))
                    .with_source(source)]
            } else {
                Vec::new()
            };
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(c.name))
                .with_value(c.value.map(str_bytes))
                .with_read_only(true)
                .with_config_source(source)
                .with_synonyms(synonyms)
                .with_config_type(c.kind as i8)
                .with_documentation(request.include_documentation.then(|| str_bytes(c.doc)))
        })
        .collect())
}

pub fn describe(
    broker: &Arc<Broker>,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let outcome = match r.resource_type {
                RESOURCE_TOPIC => {
                    describe_topic(broker, &request, &name, &r.configuration_keys, version)
                }
                RESOURCE_BROKER => describe_broker(broker, &request, &name, &r.configuration_keys),
                other => Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not supported"),
                )),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(configs) => result.with_configs(configs),
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub async fn incremental_alter(
    broker: &Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        responses.push({
            let name = r.resource_name.to_string();
            let outcome = async {
                match r.resource_type {
                    RESOURCE_TOPIC => {}
                    RESOURCE_BROKER => {
                        return Err(AdminError::new(
                            ResponseError::InvalidRequest,
                            "broker configs are static: change the broker's JSON config file and restart",
                        ))
                    }
                    other => {
                        return Err(AdminError::new(
                            ResponseError::InvalidRequest,
                            format!("resource type {other} is not supported"),
                        ))
                    }
                }
                let mut seen = HashSet::new();
                let mut set = BTreeMap::new();
                let mut delete = Vec::new();
                for c in &r.configs {
                    let key = c.name.to_string();
                    if !seen.insert(key.clone()) {
                        return Err(AdminError::new(
                            ResponseError::InvalidRequest,
                            format!("config '{key}' appears more than once"),
                        ));
                    }
                    match c.config_operation {
                        OP_SET => match &c.value {
                            Some(v) => {
                                set.insert(key, v.to_string());
                            }
                            None => {
                                return Err(AdminError::new(
                                    ResponseError::InvalidRequest,
                                    format!("config '{key}' is set to null"),
                                ))
                            }
                        },
                        OP_DELETE => delete.push(key),
                        op => {
                            return Err(AdminError::new(
                                ResponseError::InvalidConfig,
                                format!("operation {op} (APPEND/SUBTRACT) is only valid for list configs; '{key}' is not one here"),
                            ))
                        }
                    }
                }
                broker
                    .alter_topic_configs(&name, set, delete, request.validate_only)
                    .await
            }
            .await;
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The legacy AlterConfigs (sarama's `AlterConfig`, kafka-go's `AlterConfigs`): the given
/// configs REPLACE every override of the resource; an override not named is removed.
pub async fn alter(
    broker: &Arc<Broker>,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        let name = r.resource_name.to_string();
        let outcome = async {
            match r.resource_type {
                RESOURCE_TOPIC => {}
                RESOURCE_BROKER => return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    "broker configs are static: change the broker's JSON config file and restart",
                )),
                other => {
                    return Err(AdminError::new(
                        ResponseError::InvalidRequest,
                        format!("resource type {other} is not supported"),
                    ))
                }
            }
            let mut set = BTreeMap::new();
            for c in &r.configs {
                let key = c.name.to_string();
                let Some(value) = &c.value else {
                    return Err(AdminError::new(
                        ResponseError::InvalidRequest,
                        format!("config '{key}' is set to null"),
                    ));
                };
                if set.insert(key.clone(), value.to_string()).is_some() {
                    return Err(AdminError::new(
                        ResponseError::InvalidRequest,
                        format!("config '{key}' appears more than once"),
                    ));
                }
            }
            let current = broker
                .metadata
                .image()
                .topics
                .get(&name)
                .map(|t| t.configs.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            let delete = current
                .into_iter()
                .filter(|k| !set.contains_key(k))
                .collect();
            broker
                .alter_topic_configs(&name, set, delete, request.validate_only)
                .await
        }
        .await;
        let response = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        responses.push(match outcome {
            Ok(()) => response,
            Err(e) => response
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.message))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}
