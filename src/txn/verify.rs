//! KIP-890 part 1: before a partition leader appends a transactional batch of a producer
//! that has no open transaction in that partition, it asks the transaction coordinator of
//! the request's `transactional.id` whether the partition is in the producer's ongoing
//! transaction, and refuses the batch when it is not. A late or retried produce from a
//! transaction that already ended can then no longer open a "hanging" transaction that no
//! marker will ever close (Kafka's `AddPartitionsToTxnManager` and the verification in
//! `ReplicaManager.appendRecords`).
//!
//! The coordinator is the leader of partition `abs(javaHash(id)) % N` of
//! `__transaction_state`. When that is this broker, the caller's local check answers (the
//! transaction coordinator's `verify_partitions`); otherwise this broker sends
//! AddPartitionsToTxn v5 with `verify_only` to it, on the pooled inter-broker connections.
//!
//! The answers become produce errors as Kafka's do, by Produce version:
//! - not in the transaction: INVALID_TXN_STATE "Partition was not added to the transaction"
//!   (TRANSACTION_ABORTABLE from a coordinator is kept for Produce v11, which knows it);
//! - PRODUCER_FENCED: INVALID_PRODUCER_EPOCH (what producers expect here);
//! - the coordinator unreachable, moving or loading (NETWORK_EXCEPTION,
//!   COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) and
//!   CONCURRENT_TRANSACTIONS: NOT_ENOUGH_REPLICAS "Unable to verify ...", which every client
//!   retries without a metadata refresh;
//! - anything else as the coordinator gave it.
//!
//! Nothing is cached: every verification asks the coordinator.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::markers::MarkerSender;
use super::peers::Peers;
use super::TRANSACTION_STATE_TOPIC;
use crate::log::BatchHeader;
use crate::metadata::image::NO_LEADER;
use crate::metadata::MetadataImage;
use crate::replication::client::ClientError;

/// The AddPartitionsToTxn version sent (Kafka's brokers send the latest, 5).
const ADD_PARTITIONS_VERSION: i16 = 5;
/// Kafka's `request.timeout.ms` default, which its verification requests use.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Produce versions above this know TRANSACTION_ABORTABLE (Kafka's
/// GENERIC_ERROR_SUPPORTED); older ones get INVALID_TXN_STATE in its place.
const LAST_DEFAULT_ERROR_PRODUCE_VERSION: i16 = 10;

/// Why a partition's transactional batch is refused: the produce response's error code and
/// message for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: ResponseError,
    pub message: Option<String>,
}

/// The transactional produce to verify.
#[derive(Debug, Clone, Copy)]
pub struct Produced<'a> {
    pub transactional_id: &'a str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The Produce request's version (it decides which errors the client understands).
    pub version: i16,
}

/// Where the coordinator of a transactional id is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Coordinator {
    Here,
    Remote { id: i32, addr: String },
    Unavailable,
}

/// The leader of the `__transaction_state` partition of `transactional_id` (Kafka's
/// `getTransactionCoordinator`: none without the topic, a leader, or its registration).
fn coordinator_of(image: &MetadataImage, node_id: i32, transactional_id: &str) -> Coordinator {
    let Some(topic) = image.topics.get(TRANSACTION_STATE_TOPIC) else {
        return Coordinator::Unavailable;
    };
    let n = topic.partitions.len() as i32;
    let index = crate::group::offsets::partition_for(transactional_id, n);
    let Some(p) = topic.partitions.get(index as usize) else {
        return Coordinator::Unavailable;
    };
    if p.leader == NO_LEADER {
        return Coordinator::Unavailable;
    }
    if p.leader == node_id {
        return Coordinator::Here;
    }
    match image.brokers.get(&p.leader) {
        Some(b) if !b.fenced => Coordinator::Remote {
            id: b.id,
            addr: format!("{}:{}", b.host, b.port),
        },
        _ => Coordinator::Unavailable,
    }
}

/// Verifies that each of `partitions` is in the ongoing transaction of `produced`'s
/// producer; per partition, in order, `Ok` or the produce error to answer it with.
///
/// Pass the partitions of the request whose transactional batch comes from a producer with
/// no open transaction there (Kafka verifies only those); passing every transactional
/// partition is correct too, at the price of a question per request. `local` is the
/// transaction coordinator's own check, used when this broker coordinates the id: it gets
/// the partitions and answers each (TRANSACTION_ABORTABLE or INVALID_TXN_STATE when not in
/// the transaction), as AddPartitionsToTxn `verify_only` would.
pub async fn verify_transactional(
    sender: &MarkerSender,
    produced: &Produced<'_>,
    partitions: &[(String, i32)],
    local: impl FnOnce(&[(String, i32)]) -> Vec<Result<(), ResponseError>>,
) -> Vec<Result<(), Refusal>> {
    if partitions.is_empty() {
        return Vec::new();
    }
    let image = sender.metadata().image();
    let codes: Vec<i16> = match coordinator_of(&image, sender.node_id(), produced.transactional_id)
    {
        Coordinator::Unavailable => {
            vec![ResponseError::CoordinatorNotAvailable.code(); partitions.len()]
        }
        Coordinator::Here => {
            let mut answers: Vec<i16> = local(partitions)
                .into_iter()
                .map(|r| r.err().map_or(0, |e| e.code()))
                .collect();
            // A short answer is a bug in the check; never let it pass unverified.
            answers.resize(partitions.len(), ResponseError::UnknownServerError.code());
            answers
        }
        Coordinator::Remote { id, addr } => {
            ask(sender.peers(), id, &addr, produced, partitions).await
        }
    };
    codes
        .into_iter()
        .map(|code| match refusal(code, produced.version) {
            None => Ok(()),
            Some(r) => Err(r),
        })
        .collect()
}

/// One partition's data of a transactional produce, as the produce path has it.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub transactional_id: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    /// The partition's validated batch headers (producer id and epoch in them).
    pub headers: &'a [BatchHeader],
    /// The Produce request's version.
    pub version: i16,
}

/// The produce path's check (the body of `handlers::produce::verify_transactional`): when
/// the partition's batch is transactional and its producer has no open transaction in the
/// partition (`open_here(producer_id, producer_epoch)` false: Kafka's
/// `hasOngoingTransaction`), asks the coordinator through [`verify_transactional`] (with
/// `local(producer_id, producer_epoch, partitions)` as the coordinator's own check when it
/// is this broker); the error and message to refuse the partition with, if any.
pub async fn verify_batch(
    sender: &MarkerSender,
    batch: &Batch<'_>,
    open_here: impl FnOnce(i64, i16) -> bool,
    local: impl FnOnce(i64, i16, &[(String, i32)]) -> Vec<Result<(), ResponseError>>,
) -> Result<(), (ResponseError, Option<String>)> {
    let Some(h) = batch.headers.iter().find(|h| h.is_transactional()) else {
        return Ok(());
    };
    let (producer_id, producer_epoch) = (h.producer_id, h.producer_epoch);
    if open_here(producer_id, producer_epoch) {
        return Ok(());
    }
    let produced = Produced {
        transactional_id: batch.transactional_id,
        producer_id,
        producer_epoch,
        version: batch.version,
    };
    let partitions = [(batch.topic.to_string(), batch.partition)];
    let verdict = verify_transactional(sender, &produced, &partitions, |ps| {
        local(producer_id, producer_epoch, ps)
    })
    .await;
    match verdict.into_iter().next() {
        Some(Err(r)) => {
            tracing::debug!(
                transactional_id = batch.transactional_id,
                producer_id,
                topic = batch.topic,
                partition = batch.partition,
                error = ?r.error,
                "transactional batch refused: not verified in the transaction"
            );
            Err((r.error, r.message))
        }
        _ => Ok(()),
    }
}

/// Asks the coordinator `id` at `addr` with AddPartitionsToTxn `verify_only`; each
/// partition's error code (0: verified).
async fn ask(
    peers: &Peers,
    id: i32,
    addr: &str,
    produced: &Produced<'_>,
    partitions: &[(String, i32)],
) -> Vec<i16> {
    let request = request_for(produced, partitions);
    let answer = peers
        .exchange(id, addr, &request, ADD_PARTITIONS_VERSION, VERIFY_TIMEOUT)
        .await;
    answer_codes(id, produced.transactional_id, partitions, answer)
}

/// The AddPartitionsToTxn (v4+, broker form) asking only to verify `partitions`.
fn request_for(produced: &Produced<'_>, partitions: &[(String, i32)]) -> AddPartitionsToTxnRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        topics.entry(t.as_str()).or_default().push(*p);
    }
    let topics = topics
        .into_iter()
        .map(|(name, indexes)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(indexes)
        })
        .collect();
    AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                produced.transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(produced.producer_id))
            .with_producer_epoch(produced.producer_epoch)
            .with_verify_only(true)
            .with_topics(topics),
    ])
}

/// Each partition's error code from the coordinator's answer, after Kafka's
/// `AddPartitionsToTxnManager`: a failed exchange is NETWORK_EXCEPTION for all; a top-level
/// error applies to all (CLUSTER_AUTHORIZATION_FAILED as INVALID_TXN_STATE). The
/// coordinator answers every partition; one the answer leaves out is NETWORK_EXCEPTION
/// (retried), where Kafka would count it verified: an unverified batch is never appended.
fn answer_codes(
    coordinator: i32,
    transactional_id: &str,
    partitions: &[(String, i32)],
    answer: Result<AddPartitionsToTxnResponse, ClientError>,
) -> Vec<i16> {
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(coordinator, error = %e, "transaction verification request failed");
            return vec![ResponseError::NetworkException.code(); partitions.len()];
        }
    };
    if response.error_code != 0 {
        let code = if response.error_code == ResponseError::ClusterAuthorizationFailed.code() {
            ResponseError::InvalidTxnState.code()
        } else {
            response.error_code
        };
        return vec![code; partitions.len()];
    }
    let Some(result) = response
        .results_by_transaction
        .iter()
        .find(|r| r.transactional_id.0.as_str() == transactional_id)
    else {
        tracing::warn!(
            coordinator,
            transactional_id,
            "the transaction coordinator's verification answer misses the transaction"
        );
        return vec![ResponseError::NetworkException.code(); partitions.len()];
    };
    let mut codes: BTreeMap<(&str, i32), i16> = BTreeMap::new();
    for t in &result.topic_results {
        for p in &t.results_by_partition {
            codes.insert(
                (t.name.0.as_str(), p.partition_index),
                p.partition_error_code,
            );
        }
    }
    partitions
        .iter()
        .map(|(t, p)| {
            codes
                .get(&(t.as_str(), *p))
                .copied()
                .unwrap_or(ResponseError::NetworkException.code())
        })
        .collect()
}

/// The produce error for a coordinator's verification code (0: verified), as Kafka's
/// `AddPartitionsToTxnManager` and `ReplicaManager` translate them for Produce `version`
/// (at most 11 here: no Transactions V2 implicit add).
fn refusal(code: i16, version: i16) -> Option<Refusal> {
    use ResponseError::*;
    let error = ResponseError::try_from_code(code)?;
    let error = match error {
        ProducerFenced => InvalidProducerEpoch,
        TransactionAbortable if version <= LAST_DEFAULT_ERROR_PRODUCE_VERSION => InvalidTxnState,
        other => other,
    };
    let unverified = |underlying: &str| {
        Refusal {
        error: NotEnoughReplicas,
        message: Some(format!(
            "Unable to verify the partition has been added to the transaction. Underlying error: {underlying}"
        )),
    }
    };
    Some(match error {
        InvalidTxnState => Refusal {
            error,
            message: Some("Partition was not added to the transaction".into()),
        },
        NetworkException => unverified("NETWORK_EXCEPTION"),
        CoordinatorLoadInProgress => unverified("COORDINATOR_LOAD_IN_PROGRESS"),
        CoordinatorNotAvailable => unverified("COORDINATOR_NOT_AVAILABLE"),
        NotCoordinator => unverified("NOT_COORDINATOR"),
        ConcurrentTransactions => unverified("CONCURRENT_TRANSACTIONS"),
        other => Refusal {
            error: other,
            message: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerInfo, PartitionImage, TopicImage};
    use kafka_protocol::messages::add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
    };

    /// A coordinator on a socket answering one AddPartitionsToTxn: `pending` fails, every
    /// other partition is verified; what it was asked comes back through the handle.
    async fn fake_coordinator(
        pending: (String, i32),
    ) -> (
        std::net::SocketAddr,
        tokio::task::JoinHandle<AddPartitionsToTxnRequest>,
    ) {
        use bytes::{Buf, BufMut, BytesMut};
        use kafka_protocol::messages::{RequestHeader, ResponseHeader};
        use kafka_protocol::protocol::{Decodable, Encodable};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let len = s.read_i32().await.unwrap();
            let mut buf = vec![0u8; len as usize];
            s.read_exact(&mut buf).await.unwrap();
            let mut b = bytes::Bytes::from(buf);
            let header = RequestHeader::decode(&mut b, 2).unwrap();
            assert_eq!(header.request_api_version, ADD_PARTITIONS_VERSION);
            let request = AddPartitionsToTxnRequest::decode(&mut b, 5).unwrap();
            assert_eq!(b.remaining(), 0);
            let t = &request.transactions[0];
            let topic_results = t
                .topics
                .iter()
                .map(|topic| {
                    let results = topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let failed = (topic.name.0.to_string(), *p) == pending;
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(if failed {
                                    ResponseError::TransactionAbortable.code()
                                } else {
                                    0
                                })
                        })
                        .collect();
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_results_by_partition(results)
                })
                .collect();
            let response = AddPartitionsToTxnResponse::default().with_results_by_transaction(vec![
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(t.transactional_id.clone())
                    .with_topic_results(topic_results),
            ]);
            let mut out = BytesMut::new();
            out.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, 1)
                .unwrap();
            response.encode(&mut out, 5).unwrap();
            let n = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&n.to_be_bytes());
            s.write_all(&out).await.unwrap();
            request
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_remote_coordinator_is_asked_with_verify_only_over_the_socket() {
        let (addr, asked) = fake_coordinator(("t".into(), 1)).await;
        let peers = Peers::new("test".into());
        let produced = Produced {
            transactional_id: "tx",
            producer_id: 9,
            producer_epoch: 1,
            version: 9,
        };
        let tps = vec![("t".to_string(), 0), ("t".to_string(), 1)];
        let codes = ask(&peers, 2, &addr.to_string(), &produced, &tps).await;
        assert_eq!(codes, vec![0, ResponseError::TransactionAbortable.code()]);
        let request = asked.await.unwrap();
        let t = &request.transactions[0];
        assert!(t.verify_only);
        assert_eq!((t.producer_id.0, t.producer_epoch), (9, 1));
        // Produce v9 does not know TRANSACTION_ABORTABLE: the batch is refused as not in
        // the transaction.
        assert_eq!(
            refusal(codes[1], produced.version).unwrap().error,
            ResponseError::InvalidTxnState
        );
        // Nothing listens any more: a network error, which the producer retries.
        let codes = ask(&peers, 3, "127.0.0.1:1", &produced, &tps).await;
        assert_eq!(codes, vec![ResponseError::NetworkException.code(); 2]);
    }

    #[test]
    fn coordinator_errors_become_produce_errors_as_kafka_translates_them() {
        use ResponseError::*;
        assert_eq!(refusal(0, 9), None);
        let code = |c: ResponseError, v| refusal(c.code(), v).unwrap().error;
        assert_eq!(code(InvalidTxnState, 9), InvalidTxnState);
        assert_eq!(
            refusal(InvalidTxnState.code(), 9)
                .unwrap()
                .message
                .as_deref(),
            Some("Partition was not added to the transaction")
        );
        // TRANSACTION_ABORTABLE only for clients that know it (Produce v11).
        assert_eq!(code(TransactionAbortable, 10), InvalidTxnState);
        assert_eq!(code(TransactionAbortable, 11), TransactionAbortable);
        assert_eq!(code(ProducerFenced, 11), InvalidProducerEpoch);
        for e in [
            NetworkException,
            CoordinatorLoadInProgress,
            CoordinatorNotAvailable,
            NotCoordinator,
            ConcurrentTransactions,
        ] {
            let r = refusal(e.code(), 11).unwrap();
            assert_eq!(r.error, NotEnoughReplicas, "{e:?}");
            assert!(r.message.unwrap().starts_with("Unable to verify"), "{e:?}");
        }
        assert_eq!(code(InvalidProducerIdMapping, 9), InvalidProducerIdMapping);
    }

    fn image(leader: i32, with_topic: bool) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in [1, 2] {
            image.brokers.insert(
                id,
                BrokerInfo {
                    id,
                    host: "h".into(),
                    port: 9000 + id as u16,
                    fenced: false,
                },
            );
        }
        if with_topic {
            image.topics.insert(
                TRANSACTION_STATE_TOPIC.into(),
                TopicImage {
                    name: TRANSACTION_STATE_TOPIC.into(),
                    id: uuid::Uuid::new_v4(),
                    partitions: vec![PartitionImage {
                        leader,
                        leader_epoch: 0,
                        replicas: vec![1, 2],
                        isr: vec![1, 2],
                        partition_epoch: 0,
                    }],
                    configs: Default::default(),
                },
            );
        }
        image
    }

    #[test]
    fn the_coordinator_is_the_leader_of_the_ids_transaction_state_partition() {
        assert_eq!(coordinator_of(&image(1, true), 1, "tx"), Coordinator::Here);
        assert_eq!(
            coordinator_of(&image(2, true), 1, "tx"),
            Coordinator::Remote {
                id: 2,
                addr: "h:9002".into()
            }
        );
        assert_eq!(
            coordinator_of(&image(NO_LEADER, true), 1, "tx"),
            Coordinator::Unavailable
        );
        assert_eq!(
            coordinator_of(&image(7, true), 1, "tx"),
            Coordinator::Unavailable
        );
        assert_eq!(
            coordinator_of(&image(1, false), 1, "tx"),
            Coordinator::Unavailable
        );
    }

    #[test]
    fn the_request_only_verifies() {
        let produced = Produced {
            transactional_id: "tx",
            producer_id: 5,
            producer_epoch: 2,
            version: 9,
        };
        let r = request_for(
            &produced,
            &[("b".into(), 1), ("a".into(), 0), ("b".into(), 0)],
        );
        assert_eq!(r.transactions.len(), 1);
        let t = &r.transactions[0];
        assert!(t.verify_only);
        assert_eq!(
            (
                t.transactional_id.0.as_str(),
                t.producer_id.0,
                t.producer_epoch
            ),
            ("tx", 5, 2)
        );
        let topics: Vec<(&str, Vec<i32>)> = t
            .topics
            .iter()
            .map(|x| (x.name.0.as_str(), x.partitions.clone()))
            .collect();
        assert_eq!(topics, vec![("a", vec![0]), ("b", vec![1, 0])]);
    }

    #[test]
    fn answers_map_per_partition_with_top_level_and_network_errors_for_all() {
        let tps = vec![("a".to_string(), 0), ("a".to_string(), 1)];
        let response = AddPartitionsToTxnResponse::default().with_results_by_transaction(vec![
            AddPartitionsToTxnResult::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                .with_topic_results(vec![AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(StrBytes::from_static_str("a")))
                    .with_results_by_partition(vec![
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(0)
                            .with_partition_error_code(0),
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(1)
                            .with_partition_error_code(ResponseError::TransactionAbortable.code()),
                    ])]),
        ]);
        assert_eq!(
            answer_codes(2, "tx", &tps, Ok(response.clone())),
            vec![0, ResponseError::TransactionAbortable.code()]
        );
        let network = ResponseError::NetworkException.code();
        let three = [tps.clone(), vec![("b".to_string(), 0)]].concat();
        assert_eq!(
            answer_codes(2, "tx", &three, Ok(response.clone())),
            vec![0, ResponseError::TransactionAbortable.code(), network],
            "a partition the answer leaves out is not verified"
        );
        assert_eq!(
            answer_codes(2, "other", &tps, Ok(response.clone())),
            vec![network; 2]
        );
        let denied = response.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
        assert_eq!(
            answer_codes(2, "tx", &tps, Ok(denied)),
            vec![ResponseError::InvalidTxnState.code(); 2]
        );
        let failed = Err(ClientError::Protocol {
            addr: "x".into(),
            detail: "y".into(),
        });
        assert_eq!(answer_codes(2, "tx", &tps, failed), vec![network; 2]);
    }
}
