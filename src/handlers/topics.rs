//! CreateTopics, DeleteTopics and CreatePartitions: per-topic results with the error code
//! and message Apache Kafka would give. The work itself is in `broker::topics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use uuid::Uuid;

use super::str_bytes;
use crate::broker::{AdminError, Broker};
use crate::config::topic as topic_config;

fn names_seen_twice<'a>(names: impl Iterator<Item = &'a str>) -> HashMap<String, usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for n in names {
        *counts.entry(n.to_string()).or_default() += 1;
    }
    counts.retain(|_, c| *c > 1);
    counts
}

pub async fn create(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let duplicates = names_seen_twice(request.topics.iter().map(|t| t.name.0.as_str()));
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let outcome = async {
            if duplicates.contains_key(&name) {
                return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("topic '{name}' appears more than once in the request"),
                ));
            }
            let mut configs = BTreeMap::new();
            for c in &topic.configs {
                match &c.value {
                    Some(v) => {
                        configs.insert(c.name.to_string(), v.to_string());
                    }
                    None => {
                        return Err(AdminError::new(
                            ResponseError::InvalidConfig,
                            format!("config '{}' has a null value", c.name.as_str()),
                        ))
                    }
                }
            }
            let (mut partitions, mut rf) = (topic.num_partitions, topic.replication_factor);
            let mut assignment = None;
            if !topic.assignments.is_empty() {
                if partitions != -1 || rf != -1 {
                    return Err(AdminError::new(
                        ResponseError::InvalidRequest,
                        "both the number of partitions or replication factor and a replica assignment were set",
                    ));
                }
                let image = broker.metadata.image();
                for a in &topic.assignments {
                    if let Some(bad) = a
                        .broker_ids
                        .iter()
                        .find(|b| !image.brokers.contains_key(&b.0))
                    {
                        return Err(AdminError::new(
                            ResponseError::InvalidReplicaAssignment,
                            format!("broker {} in the replica assignment does not exist", bad.0),
                        ));
                    }
                }
                let replicas: Vec<Vec<i32>> = topic
                    .assignments
                    .iter()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect();
                let mut sorted: Vec<_> = topic.assignments.iter().map(|a| a.partition_index).collect();
                sorted.sort_unstable();
                let rf0 = replicas[0].len();
                if sorted.iter().enumerate().any(|(i, p)| *p != i as i32)
                    || replicas.iter().any(|r| {
                        r.is_empty()
                            || r.len() != rf0
                            || r.iter().collect::<std::collections::BTreeSet<_>>().len() != r.len()
                    })
                {
                    return Err(AdminError::new(
                        ResponseError::InvalidReplicaAssignment,
                        "a replica assignment must list partitions 0..n once each, with the same number of distinct brokers",
                    ));
                }
                let mut by_index = vec![Vec::new(); replicas.len()];
                for (a, r) in topic.assignments.iter().zip(replicas) {
                    by_index[a.partition_index as usize] = r;
                }
                partitions = by_index.len() as i32;
                rf = rf0 as i16;
                assignment = Some(by_index);
            }
            broker
                .create_topic_placed(&name, partitions, rf, assignment, configs, request.validate_only)
                .await
        }
        .await;
        match outcome {
            Ok(created) => {
                result = result
                    .with_topic_id(if request.validate_only {
                        Uuid::nil()
                    } else {
                        created.id
                    })
                    .with_num_partitions(created.partitions.len() as i32)
                    .with_replication_factor(
                        created
                            .partitions
                            .first()
                            .map_or(1, |p| p.replicas.len() as i16),
                    );
                if version >= 5 {
                    let configs = topic_config::describe(&broker.config, &created.configs)
                        .map(|c| {
                            CreatableTopicConfigs::default()
                                .with_name(str_bytes(c.def.name))
                                .with_value(Some(str_bytes(c.value)))
                                .with_config_source(c.source as i8)
                        })
                        .collect();
                    result = result.with_configs(Some(configs));
                }
            }
            Err(e) => {
                result = result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message)));
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete(
    broker: &Arc<Broker>,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, Uuid)> = if version >= 6 || !request.topics.is_empty() {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        responses.push({
            let by_id = (!id.is_nil()).then_some(id);
            let outcome = broker
                .delete_topic(name.as_deref().unwrap_or(""), by_id)
                .await;
            let image_name = name.clone();
            let mut r = DeletableTopicResult::default()
                .with_name(image_name.map(|n| TopicName(str_bytes(n))))
                .with_topic_id(id);
            match outcome {
                Ok(deleted_id) => r = r.with_topic_id(deleted_id),
                Err(e) => {
                    r = r
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(e.message)))
                }
            }
            r
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let duplicates = names_seen_twice(request.topics.iter().map(|t| t.name.0.as_str()));
    let mut results = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        results.push({
            let name = t.name.0.to_string();
            let outcome = if duplicates.contains_key(&name) {
                Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("topic '{name}' appears more than once in the request"),
                ))
            } else {
                broker
                    .create_partitions(&name, t.count, request.validate_only)
                    .await
            };
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
