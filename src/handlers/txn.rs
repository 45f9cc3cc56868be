//! The transaction coordinator's APIs: AddPartitionsToTxn (v0-5), AddOffsetsToTxn (v0-4),
//! EndTxn (v0-5), DescribeTransactions (v0), ListTransactions (v0-2). Each translates the
//! request for [`crate::txn::TransactionCoordinator`] and places its errors as Apache
//! Kafka's `KafkaApis` does:
//!
//! - PRODUCER_FENCED is INVALID_PRODUCER_EPOCH for clients older than KIP-588
//!   (AddPartitionsToTxn / AddOffsetsToTxn / EndTxn below v2).
//! - AddPartitionsToTxn v0-3 is the client form (one transaction); v4+ is the brokers'
//!   batched form, where `verify_only` asks whether the partitions are in the transaction
//!   (KIP-890). A partition unknown here fails its transaction: UNKNOWN_TOPIC_OR_PARTITION
//!   for it, OPERATION_NOT_ATTEMPTED for the others; any other error is the same for
//!   every partition of the transaction.
//! - EndTxn v5+ is Transactions V2: the epoch is bumped at the end of each transaction and
//!   the response carries the producer id and epoch to continue with.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    describe_transactions_response, list_transactions_response, AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};

use super::str_bytes;
use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::txn::state::TxnState;
use crate::txn::ListFilter;

/// KIP-588: clients before these versions know INVALID_PRODUCER_EPOCH, not PRODUCER_FENCED.
fn fenced_for(version: i16, first_version_with_fenced: i16, e: ResponseError) -> ResponseError {
    if e == ResponseError::ProducerFenced && version < first_version_with_fenced {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

fn code(result: &Result<(), ResponseError>) -> i16 {
    result.as_ref().err().map_or(0, |e| e.code())
}

/// The partitions of a request, in order.
fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect()
}

/// One transaction of AddPartitionsToTxn: a result per partition, in request order.
async fn add_one(
    broker: &Arc<Broker>,
    version: i16,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    partitions: &[(String, i32)],
) -> Vec<Result<(), ResponseError>> {
    let image = broker.metadata.image();
    let known: Vec<bool> = partitions
        .iter()
        .map(|(t, p)| {
            image
                .topics
                .get(t)
                .is_some_and(|t| *p >= 0 && (*p as usize) < t.partitions.len())
        })
        .collect();
    if known.contains(&false) {
        return known
            .into_iter()
            .map(|k| {
                Err(if k {
                    ResponseError::OperationNotAttempted
                } else {
                    ResponseError::UnknownTopicOrPartition
                })
            })
            .collect();
    }
    if verify_only {
        return broker.txn.verify_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
        );
    }
    let result = broker
        .txn
        .add_partitions(transactional_id, producer_id, producer_epoch, partitions)
        .await
        .map_err(|e| fenced_for(version, 2, e));
    vec![result; partitions.len()]
}

/// Groups per-partition results back into topics, in request order.
fn topic_results(
    topics: &[AddPartitionsToTxnTopic],
    results: &[Result<(), ResponseError>],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut results = results.iter();
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(results.next().map_or(0, code))
                        })
                        .collect(),
                )
        })
        .collect()
}

pub async fn add_partitions_to_txn(
    broker: &Arc<Broker>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version < 4 {
        let partitions = flatten(&request.v3_and_below_topics);
        let results = add_one(
            broker,
            version,
            &request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            false,
            &partitions,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
            topic_results(&request.v3_and_below_topics, &results),
        );
    }
    let mut out = Vec::with_capacity(request.transactions.len());
    for t in &request.transactions {
        let partitions = flatten(&t.topics);
        let results = add_one(
            broker,
            version,
            &t.transactional_id,
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &partitions,
        )
        .await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results(&t.topics, &results)),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

pub async fn add_offsets_to_txn(
    broker: &Arc<Broker>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    // The group's offsets partition joins the transaction, so that its TxnOffsetCommit
    // records get the transaction's marker.
    let offsets_partitions = broker
        .metadata
        .image()
        .topics
        .get(OFFSETS_TOPIC)
        .map_or(broker.config.groups.offsets_topic_partitions, |t| {
            t.partitions.len() as i32
        });
    let partition = crate::group::offsets::partition_for(&request.group_id, offsets_partitions);
    let result = broker
        .txn
        .add_partitions(
            &request.transactional_id,
            request.producer_id.0,
            request.producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), partition)],
        )
        .await
        .map_err(|e| fenced_for(version, 2, e));
    AddOffsetsToTxnResponse::default().with_error_code(code(&result))
}

pub async fn end_txn(broker: &Arc<Broker>, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let ended = broker
        .txn
        .end_txn(
            &request.transactional_id,
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
            version >= 5,
        )
        .await;
    match ended {
        Ok((producer_id, producer_epoch)) => EndTxnResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch),
        Err(e) => EndTxnResponse::default()
            .with_error_code(fenced_for(version, 2, e).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub fn describe_transactions(
    broker: &Arc<Broker>,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    use describe_transactions_response::{TopicData, TransactionState};
    let states = request
        .transactional_ids
        .iter()
        .map(|id| {
            let base = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            match broker.txn.describe(id) {
                Err(e) => base.with_error_code(e.code()),
                Ok(d) => {
                    let m = &d.meta;
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, partition) in &m.partitions {
                        match topics.last_mut() {
                            Some(t) if t.topic.as_str() == topic => t.partitions.push(*partition),
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(topic.clone())))
                                    .with_partitions(vec![*partition]),
                            ),
                        }
                    }
                    base.with_transaction_state(str_bytes(m.state.name()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list_transactions(
    broker: &Arc<Broker>,
    request: ListTransactionsRequest,
    _version: i16,
) -> ListTransactionsResponse {
    let mut filter = ListFilter {
        producer_ids: request.producer_id_filters.iter().map(|p| p.0).collect(),
        min_duration_ms: request.duration_filter,
        ..ListFilter::default()
    };
    let mut unknown = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name) {
            Some(s) => filter.states.push(s),
            None => unknown.push(name.clone()),
        }
    }
    if let Some(pattern) = request
        .transactional_id_pattern
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        // Kafka matches the whole id (RE2J `matches`).
        match regex::Regex::new(&format!("^(?:{})$", pattern.as_str())) {
            Ok(re) => filter.pattern = Some(re),
            Err(_) => {
                return ListTransactionsResponse::default()
                    .with_error_code(ResponseError::InvalidRegularExpression.code())
            }
        }
    }
    let response = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    match broker.txn.list(&filter) {
        Err(e) => response.with_error_code(e.code()),
        Ok(found) => response.with_transaction_states(
            found
                .into_iter()
                .map(|d| {
                    list_transactions_response::TransactionState::default()
                        .with_transactional_id(TransactionalId(str_bytes(d.transactional_id)))
                        .with_producer_id(ProducerId(d.meta.producer_id))
                        .with_transaction_state(str_bytes(d.meta.state.name()))
                })
                .collect(),
        ),
    }
}
