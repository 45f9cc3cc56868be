//! Produce: validate each partition's batch at the header level (magic, CRC, counts, size),
//! append it to the partition log with offsets and the leader epoch assigned in place, and
//! answer per partition. acks=0 gets no response at all.
//!
//! Three steps per request: [`validate`] each partition's data (no lock taken), [`append`]
//! it through `Partition::append_as_leader` (one synchronous call), then for acks=all
//! [`wait`] for every write's commit under one deadline. No lock is held across `.await`.
//!
//! Per-record work happens only where the topic asks for it (`log::validate`, Kafka's
//! `LogValidator`): on a compacted topic every record must have a key (a keyless one refuses
//! the partition's batch with INVALID_RECORD and `record_errors`), and a topic whose
//! `compression.type` is a codec stores a batch in another codec recompressed to it. Any
//! other batch goes from the request buffer to the log untouched.
//!
//! Idempotent producers: the log checks epochs and sequences under its lock. A retry of a
//! batch it already holds is answered NONE with the original base offset (and append time),
//! as Kafka does, and is not written again; OUT_OF_ORDER_SEQUENCE_NUMBER and
//! INVALID_PRODUCER_EPOCH are set on the partition like any other log error.
//!
//! Transactional producers (KIP-98): a request with transactional batches must name its
//! `transactional_id` (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for the whole request, as
//! Kafka's KafkaApis answers); a transactional batch must carry a producer id and a client
//! may not send control batches (INVALID_RECORD, from the batch checks). Before a
//! transactional batch is appended, [`verify_transactional`] asks whether the partition is
//! in the producer's transaction (KIP-890 part 1). The log opens the transaction at the
//! batch and refuses a plain batch inside an open one (INVALID_TXN_STATE).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{led_here, str_bytes};
use crate::broker::{now_ms, Broker};
use crate::config::topic::TopicSettings;
use crate::log::batch::{parse_header, validate_producer_batches};
use crate::log::validate::{self, RecordRules};
use crate::log::BatchHeader;
use crate::metadata::MetadataImage;
use crate::replication::{AppendError, CommitHandle, Partition};

/// The zstd codec id in a batch's attributes.
const ZSTD: u8 = 4;

fn partition_error(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(str_bytes))
}

/// A partition's data that passed validation, ready to append.
struct Checked {
    partition: Arc<Partition>,
    records: Bytes,
    headers: Vec<BatchHeader>,
}

/// An acks=all write waiting for its commit, and where its answer goes.
struct PendingCommit {
    topic: usize,
    slot: usize,
    commit: CommitHandle,
}

pub async fn handle(
    broker: &Arc<Broker>,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let image = broker.metadata.image();
    let refuse_all = refusal(&request);
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut commits: Vec<PendingCommit> = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.as_str();
        let settings = image
            .topics
            .get(name)
            .map(|t| TopicSettings::resolve(&broker.config, &t.configs));
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            if let Some((code, message)) = &refuse_all {
                partitions.push(partition_error(index, *code, Some(message.clone())));
                continue;
            }
            let records = data.records.unwrap_or_default();
            let checked = match validate(
                broker,
                &image,
                name,
                index,
                settings.as_ref(),
                records,
                version,
            ) {
                Ok(c) => c,
                Err(r) => {
                    partitions.push(*r);
                    continue;
                }
            };
            if let Some(id) = &transactional_id {
                if checked.headers.iter().any(|h| h.is_transactional()) {
                    if let Err((error, message)) = verify_transactional(
                        broker,
                        id,
                        name,
                        &checked.partition,
                        &checked.headers,
                        version,
                    )
                    .await
                    {
                        partitions.push(partition_error(index, error.code(), message));
                        continue;
                    }
                }
            }
            let min_insync = settings.as_ref().map_or(1, |s| s.min_insync_replicas);
            match append(name, index, checked, (acks == -1).then_some(min_insync)) {
                Ok((response, commit)) => {
                    if acks == -1 {
                        commits.push(PendingCommit {
                            topic: responses.len(),
                            slot: partitions.len(),
                            commit,
                        });
                    }
                    partitions.push(response);
                }
                Err(r) => partitions.push(*r),
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return None;
    }
    wait(commits, &mut responses, deadline).await;
    Some(ProduceResponse::default().with_responses(responses))
}

/// Why every partition of the request is refused, if one is.
fn refusal(request: &ProduceRequest) -> Option<(i16, String)> {
    if !matches!(request.acks, -1..=1) {
        Some((
            ResponseError::InvalidRequiredAcks.code(),
            "acks must be -1 (all), 0 or 1".to_string(),
        ))
    } else if request.transactional_id.is_none() && has_transactional_records(request) {
        // Kafka's KafkaApis: transactional records need an (authorized) transactional id.
        Some((
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            "the request carries transactional batches but no transactional id; a \
             transactional producer must send its transactional.id"
                .to_string(),
        ))
    } else {
        None
    }
}

/// Whether any partition's first batch is transactional (Kafka's
/// `ProduceRequest.hasTransactionalRecords`, which looks at the first batch too).
fn has_transactional_records(request: &ProduceRequest) -> bool {
    request.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|p| {
            p.records
                .as_deref()
                .and_then(|r| parse_header(r).ok())
                .is_some_and(|h| h.is_transactional())
        })
    })
}

/// KIP-890 part 1: before a transactional batch of `transactional_id` is appended to
/// `partition` of `topic` (led here), check with the transaction coordinator that the
/// partition is in the producer's ongoing transaction; refuse with the error (and message)
/// to put on the partition, INVALID_TXN_STATE when it is not. `headers` are the validated
/// batches (producer id and epoch in them). Only called for requests with a transactional id
/// and transactional batches.
///
/// The producer's open transaction in the partition (Kafka's `hasOngoingTransaction`)
/// skips the question: its first batch here was verified already. Nothing is cached.
async fn verify_transactional(
    broker: &Arc<Broker>,
    transactional_id: &str,
    topic: &str,
    partition: &Arc<Partition>,
    headers: &[BatchHeader],
    version: i16,
) -> Result<(), (ResponseError, Option<String>)> {
    let batch = crate::txn::verify::Batch {
        transactional_id,
        topic,
        partition: partition.index,
        headers,
        version,
    };
    crate::txn::verify::verify_batch(
        &broker.markers,
        &batch,
        |pid, epoch| {
            partition
                .log_reader()
                .producer_state()
                .entry(pid)
                .is_some_and(|e| e.epoch == epoch && e.current_txn_first_offset.is_some())
        },
        |pid, epoch, partitions| {
            broker
                .txn
                .verify_partitions(transactional_id, pid, epoch, partitions)
        },
    )
    .await
}

/// Step 1: the partition is led here and its batches pass the header-level checks (magic,
/// CRC, counts, size, codec for the request version, no control batch, a producer id on a
/// transactional batch), then the topic's record rules (keys on a compacted topic; rebuilt
/// in the topic's codec).
fn validate(
    broker: &Broker,
    image: &MetadataImage,
    topic: &str,
    index: i32,
    settings: Option<&TopicSettings>,
    records: Bytes,
    version: i16,
) -> Result<Checked, Box<PartitionProduceResponse>> {
    let refuse =
        |code: i16, message: Option<String>| Box::new(partition_error(index, code, message));
    let Some(settings) = settings else {
        return Err(refuse(ResponseError::UnknownTopicOrPartition.code(), None));
    };
    let (_, partition) =
        led_here(broker, image, topic, index).map_err(|e| refuse(e.code(), None))?;
    let headers = match validate_producer_batches(&records, settings.max_message_bytes) {
        Ok(h) => h,
        Err(e) => {
            let code = e.kafka_error_code();
            let mut r = partition_error(index, code, Some(e.to_string()));
            if code == ResponseError::InvalidRecord.code() && version >= 8 {
                r = r.with_record_errors(vec![BatchIndexAndErrorMessage::default()
                    .with_batch_index(0)
                    .with_batch_index_error_message(Some(str_bytes(e.to_string())))]);
            }
            return Err(Box::new(r));
        }
    };
    if version < 7 && headers.iter().any(|h| h.compression() == ZSTD) {
        // Kafka: zstd needs Produce v7+ (KIP-110).
        return Err(refuse(
            ResponseError::UnsupportedCompressionType.code(),
            Some("zstd compression needs Produce v7 or later".into()),
        ));
    }
    let rules = RecordRules::new(
        settings.compact,
        &settings.compression_type,
        settings.max_message_bytes,
    );
    let (records, headers) = match validate::check_all(&records, &headers, &rules, topic, index) {
        Ok(None) => (records, headers),
        Ok(Some(rebuilt)) => (Bytes::from(rebuilt.records), rebuilt.headers),
        Err(refused) => return Err(Box::new(record_refusal(index, &partition, &refused))),
    };
    Ok(Checked {
        partition,
        records,
        headers,
    })
}

/// The answer to a batch the record pass refused, as Kafka's ReplicaManager builds it: the
/// refused records as `record_errors` (sent from v8) with Kafka's summary as the error
/// message; INVALID_RECORD also carries the log start offset (`processFailedRecord`).
fn record_refusal(
    index: i32,
    partition: &Partition,
    refused: &validate::Refused,
) -> PartitionProduceResponse {
    let error = refused.error();
    let mut r = partition_error(index, error.code(), Some(refused.to_string())).with_record_errors(
        refused
            .record_errors()
            .iter()
            .map(|e| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(e.batch_index)
                    .with_batch_index_error_message(Some(str_bytes(e.message.clone())))
            })
            .collect(),
    );
    if matches!(
        error,
        ResponseError::InvalidRecord | ResponseError::UnknownServerError
    ) {
        r = r.with_log_start_offset(partition.log_reader().log_start_offset());
    }
    r
}

/// Step 2: appends as leader. Record bytes go from the request buffer to the segment file:
/// the log patches copies of the batch headers and writes both with one vectored write.
fn append(
    topic: &str,
    index: i32,
    checked: Checked,
    min_insync_replicas: Option<i32>,
) -> Result<(PartitionProduceResponse, CommitHandle), Box<PartitionProduceResponse>> {
    let Checked {
        partition,
        records,
        headers,
    } = checked;
    match partition.append_as_leader(&records, &headers, min_insync_replicas, now_ms()) {
        Ok(appended) => {
            let info = appended.info;
            if info.duplicate {
                tracing::debug!(
                    topic,
                    partition = index,
                    base_offset = info.base_offset,
                    "answered a retried idempotent batch with its original offsets"
                );
            }
            let response = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time)
                .with_log_start_offset(info.log_start_offset);
            Ok((response, appended.commit))
        }
        Err(e) => {
            match &e {
                AppendError::Log(log) if log.is_storage_failure() => {
                    tracing::error!(topic, partition = index, error = %e, "append failed")
                }
                _ => tracing::debug!(topic, partition = index, error = %e, "append refused"),
            }
            let message = match &e {
                AppendError::NotLeader => None,
                _ => Some(e.to_string()),
            };
            Err(Box::new(partition_error(index, e.error().code(), message)))
        }
    }
}

/// Step 3 (acks=all): waits for every write's commit, with one deadline for the request;
/// a write not committed gets its error in place of its answer.
async fn wait(
    commits: Vec<PendingCommit>,
    responses: &mut [TopicProduceResponse],
    deadline: tokio::time::Instant,
) {
    for c in commits {
        if let Err(e) = c.commit.wait(deadline).await {
            let slot = &mut responses[c.topic].partition_responses[c.slot];
            *slot = partition_error(slot.index, e.code(), None);
        }
    }
}
