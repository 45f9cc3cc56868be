//! DescribeConfigs (topic and broker resources: every config with its value, source,
//! synonyms, type and documentation) and IncrementalAlterConfigs for topic configs.
//!
//! The configs themselves, their values and sources are the tables of
//! [`crate::config::topic`] and [`crate::config::broker`]; this file only maps them to the
//! wire (resources, the configuration_keys filter, synonyms, documentation, v0 sources).

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
use crate::config::broker::broker_configs;
use crate::config::{topic, ConfigSource};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

fn wanted(keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>, name: &str) -> bool {
    keys.as_ref()
        .is_none_or(|k| k.is_empty() || k.iter().any(|k| k.as_str() == name))
}

fn synonym(name: &str, value: Option<String>, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(value.map(str_bytes))
        .with_source(source as i8)
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
    Ok(topic::describe(&broker.config, &topic.configs)
        .filter(|c| wanted(keys, c.def.name))
        .map(|c| {
            let mut synonyms = Vec::new();
            if request.include_synonyms {
                if let Some(v) = c.override_value {
                    synonyms.push(synonym(c.def.name, Some(v), c.source));
                }
                synonyms.push(synonym(
                    c.def.broker_synonym,
                    Some(c.broker_default),
                    c.broker_source,
                ));
            }
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(c.def.name))
                .with_value(Some(str_bytes(c.value)))
                .with_read_only(false)
                .with_config_source(if version == 0 { 0 } else { c.source as i8 })
                .with_synonyms(synonyms)
                .with_config_type(c.def.kind as i8)
                .with_documentation(request.include_documentation.then(|| str_bytes(c.def.doc)))
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
    Ok(broker_configs(&broker.config)
        .into_iter()
        .filter(|c| wanted(keys, c.name))
        .map(|c| {
            let synonyms = if request.include_synonyms {
                vec![synonym(c.name, c.value.clone(), c.source)]
            } else {
                Vec::new()
            };
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(c.name))
                .with_value(c.value.map(str_bytes))
                .with_read_only(true)
                .with_config_source(c.source as i8)
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
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The list `current` with the comma-separated `given` items appended (those not in it yet)
/// or subtracted, as IncrementalAlterConfigs APPEND and SUBTRACT do.
fn list_operation(current: &str, given: &str, append: bool) -> String {
    let items = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|i| i.trim().to_string())
            .filter(|i| !i.is_empty())
            .collect()
    };
    let mut list = items(current);
    for item in items(given) {
        if append && !list.contains(&item) {
            list.push(item);
        } else if !append {
            list.retain(|i| *i != item);
        }
    }
    list.join(",")
}

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
                        op @ (OP_APPEND | OP_SUBTRACT)
                            if topic::lookup(&key)
                                .is_some_and(|d| d.kind == crate::config::ConfigKind::List) =>
                        {
                            let overrides = broker
                                .metadata
                                .image()
                                .topics
                                .get(&name)
                                .map(|t| t.configs.clone())
                                .unwrap_or_default();
                            let current = topic::effective_value(&broker.config, &overrides, &key);
                            let given = c.value.as_deref().unwrap_or_default().to_string();
                            set.insert(key, list_operation(&current, &given, op == OP_APPEND));
                        }
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
