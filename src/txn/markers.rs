//! Delivery of transaction markers: for each partition of an ended transaction, the
//! COMMIT or ABORT control batch is written on the partition's leader, on this broker
//! directly and on other brokers with WriteTxnMarkers, and retried until it is written
//! (also across leader changes) or the partition no longer exists.
//!
//! As Kafka's `TransactionMarkerChannelManager` and its completion handler do, a round
//! groups the partitions still waiting by their leader in the current metadata image, sends
//! one WriteTxnMarkers v1 to each other leader (all the marker's partitions it leads) while
//! the partitions led here are written locally, then sorts each partition's answer:
//! - NONE, and UNSUPPORTED_FOR_MESSAGE_FORMAT / UNSUPPORTED_VERSION (Kafka drops those
//!   partitions from the transaction): done;
//! - INVALID_PRODUCER_EPOCH / TRANSACTION_COORDINATOR_FENCED: a newer producer epoch or a
//!   newer coordinator owns the transaction: stop sending, and report it;
//! - anything else (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, a lost
//!   connection, UNKNOWN_TOPIC_OR_PARTITION from a broker that has not opened it yet, ...):
//!   retried in the next round, after the metadata changed or a backoff passed.
//!
//! A partition whose topic is gone from the metadata is dropped (Kafka: "the partitions may
//! have been deleted"); one without a leader waits for one. Connections to other brokers
//! are pooled per broker and reused by later transactions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;

use crate::broker::now_ms;
use crate::cluster::Metadata;
use crate::config::topic::TopicSettings;
use crate::config::Config;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::log::control::ControlType;
use crate::metadata::image::NO_LEADER;
use crate::metadata::MetadataImage;
use crate::replication::client::ClientError;
use crate::replication::{CommitHandle, PartitionRegistry, ReplicaRole};

use super::peers::Peers;

/// How long a marker write may wait for its commit (Kafka's `request.timeout.ms` default,
/// which its WriteTxnMarkers handler waits with).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a WriteTxnMarkers exchange with another broker may take: its write timeout and
/// a margin for the network.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(35);
/// Backoff between rounds with partitions still waiting (Kafka's `retry.backoff.ms` is
/// 100 ms), doubled per round without progress up to [`MAX_BACKOFF`]; a new metadata image
/// ends the wait early, but never before [`MIN_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(20);
/// The WriteTxnMarkers version sent (the only one this broker and Kafka 4 speak).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// One transaction's marker and the partitions it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The leader epoch of the coordinator's `__transaction_state` partition.
    pub coordinator_epoch: i32,
    pub control: ControlType,
    pub partitions: Vec<(String, i32)>,
}

/// Writes markers to partition leaders.
pub struct MarkerSender {
    node_id: i32,
    metadata: Metadata,
    partitions: Arc<PartitionRegistry>,
    groups: Arc<GroupCoordinator>,
    config: Arc<Config>,
    peers: Arc<Peers>,
}

/// What a partition's answer means for its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Retry,
    Fenced,
}

/// The outcome of one partition's error code (0: none), as Kafka's
/// `TransactionMarkerRequestCompletionHandler` sorts them.
fn outcome(code: i16) -> Outcome {
    use ResponseError::*;
    if code == 0 {
        return Outcome::Done;
    }
    match ResponseError::try_from_code(code) {
        Some(InvalidProducerEpoch | TransactionCoordinatorFenced) => Outcome::Fenced,
        Some(UnsupportedForMessageFormat | UnsupportedVersion) => Outcome::Done,
        Some(
            UnknownTopicOrPartition
            | NotLeaderOrFollower
            | LeaderNotAvailable
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | RequestTimedOut
            | KafkaStorageError
            | NetworkException
            | BrokerNotAvailable,
        ) => Outcome::Retry,
        other => {
            // Kafka treats these as fatal (an IllegalStateException); the transaction cannot
            // complete without its marker, so keep trying and make it visible.
            tracing::error!(code, error = ?other, "unexpected error writing a transaction marker; retrying");
            Outcome::Retry
        }
    }
}

/// A marker appended to a partition led here, waiting for its commit.
pub struct LocalWrite {
    commit: CommitHandle,
    /// The `__consumer_offsets` partition whose pending offsets complete once committed.
    offsets_partition: Option<i32>,
    producer_id: i64,
    committed: bool,
    groups: Arc<GroupCoordinator>,
}

impl LocalWrite {
    /// Waits (until `deadline`) for the marker's commit; then completes the producer's
    /// pending transactional offsets of a `__consumer_offsets` partition.
    pub async fn finish(self, deadline: tokio::time::Instant) -> Result<(), ResponseError> {
        self.commit.wait(deadline).await?;
        if let Some(partition) = self.offsets_partition {
            self.groups
                .complete_txn(partition, self.producer_id, self.committed);
        }
        Ok(())
    }
}

impl MarkerSender {
    pub fn new(
        node_id: i32,
        metadata: Metadata,
        partitions: Arc<PartitionRegistry>,
        groups: Arc<GroupCoordinator>,
        config: Arc<Config>,
    ) -> MarkerSender {
        MarkerSender {
            node_id,
            metadata,
            partitions,
            groups,
            config,
            peers: Arc::new(Peers::new(format!("broker-{node_id}-txn"))),
        }
    }

    /// This broker's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The metadata the sender routes by.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The pooled connections to other brokers (shared with the KIP-890 verification of
    /// transactional produce, `txn::verify`).
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Writes `marker` to every one of its partitions and returns once each is written
    /// (committed on its leader) or gone; gives up early, returning false, once
    /// `still_coordinator` says this broker no longer coordinates the transaction, or when a
    /// leader answers INVALID_PRODUCER_EPOCH or TRANSACTION_COORDINATOR_FENCED (a newer
    /// producer epoch or coordinator owns the transaction: Kafka then stops sending and
    /// does not complete it either).
    pub async fn send(&self, marker: &TxnMarker, still_coordinator: impl Fn() -> bool) -> bool {
        let mut waiting: BTreeSet<(String, i32)> = marker.partitions.iter().cloned().collect();
        let mut images = self.metadata.subscribe();
        let mut backoff = FIRST_BACKOFF;
        loop {
            if !still_coordinator() {
                tracing::info!(
                    producer_id = marker.producer_id,
                    left = waiting.len(),
                    "no longer the transaction coordinator; stopped sending markers"
                );
                return false;
            }
            images.borrow_and_update();
            let image = self.metadata.image();
            let (by_leader, gone) = route(&image, &waiting);
            for tp in gone {
                tracing::info!(topic = %tp.0, partition = tp.1, producer_id = marker.producer_id,
                    "dropping the transaction marker of a partition that no longer exists");
                waiting.remove(&tp);
            }
            if waiting.is_empty() {
                return true;
            }
            let before = waiting.len();
            let mut fenced = false;
            for (tp, code) in self.round(&image, marker, by_leader).await {
                match outcome(code) {
                    Outcome::Done => {
                        waiting.remove(&tp);
                    }
                    Outcome::Fenced => {
                        tracing::info!(topic = %tp.0, partition = tp.1, producer_id = marker.producer_id, code,
                            "transaction marker refused: a newer producer epoch or coordinator owns the transaction; stopped sending");
                        fenced = true;
                    }
                    Outcome::Retry => {
                        tracing::debug!(topic = %tp.0, partition = tp.1, producer_id = marker.producer_id, code,
                            "transaction marker not written yet; retrying");
                    }
                }
            }
            if fenced {
                return false;
            }
            if waiting.is_empty() {
                return true;
            }
            if waiting.len() < before {
                backoff = FIRST_BACKOFF;
            }
            // The next round after the metadata changed (a new leader, say), or the backoff.
            let started = tokio::time::Instant::now();
            let _ = tokio::time::timeout(backoff, images.changed()).await;
            tokio::time::sleep_until(started + MIN_BACKOFF).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One attempt for every routed partition: requests to the other leaders run in
    /// parallel with the local writes. Each partition's error code (0: written).
    async fn round(
        &self,
        image: &MetadataImage,
        marker: &TxnMarker,
        by_leader: BTreeMap<i32, Vec<(String, i32)>>,
    ) -> Vec<((String, i32), i16)> {
        let mut remote = tokio::task::JoinSet::new();
        let mut local = Vec::new();
        let mut results = Vec::new();
        for (leader, tps) in by_leader {
            if leader == self.node_id {
                local = tps;
                continue;
            }
            let Some(b) = image.brokers.get(&leader) else {
                // `route` only gives leaders with a registration.
                results.extend(
                    tps.into_iter()
                        .map(|tp| (tp, ResponseError::LeaderNotAvailable.code())),
                );
                continue;
            };
            let addr = format!("{}:{}", b.host, b.port);
            let peers = self.peers.clone();
            let request = request_for(marker, &tps);
            let producer_id = marker.producer_id;
            remote.spawn(async move {
                let answer = peers
                    .exchange(
                        leader,
                        &addr,
                        &request,
                        WRITE_TXN_MARKERS_VERSION,
                        EXCHANGE_TIMEOUT,
                    )
                    .await;
                answer_codes(leader, producer_id, tps, answer)
            });
        }
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        let mut started = Vec::with_capacity(local.len());
        for tp in local {
            match self.start_local(marker, &tp.0, tp.1) {
                Ok(w) => started.push((tp, w)),
                Err(e) => results.push((tp, e.code())),
            }
        }
        for (tp, w) in started {
            let code = w.finish(deadline).await.err().map_or(0, |e| e.code());
            results.push((tp, code));
        }
        while let Some(joined) = remote.join_next().await {
            match joined {
                Ok(codes) => results.extend(codes),
                Err(e) => tracing::error!(error = %e, "a transaction marker request task failed"),
            }
        }
        results
    }

    /// Writes `marker` to `topic`/`partition` led here and waits for its commit; for a
    /// `__consumer_offsets` partition, then completes the transaction's pending offsets.
    /// The WriteTxnMarkers handler and [`MarkerSender::send`] both use it.
    pub async fn write_local(
        &self,
        marker: &TxnMarker,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        self.start_local(marker, topic, partition)?
            .finish(tokio::time::Instant::now() + WRITE_TIMEOUT)
            .await
    }

    /// The first half of [`MarkerSender::write_local`]: appends the marker (no waiting), so
    /// that a caller with several partitions waits for all their commits at once.
    /// UNKNOWN_TOPIC_OR_PARTITION when the metadata has no such partition;
    /// NOT_LEADER_OR_FOLLOWER when this broker does not lead it (or has not taken over
    /// yet); NOT_ENOUGH_REPLICAS when its ISR is smaller than min.insync.replicas (Kafka
    /// writes markers with acks=all); the log's INVALID_PRODUCER_EPOCH /
    /// TRANSACTION_COORDINATOR_FENCED for a stale marker.
    pub fn start_local(
        &self,
        marker: &TxnMarker,
        topic: &str,
        partition: i32,
    ) -> Result<LocalWrite, ResponseError> {
        let image = self.metadata.image();
        let t = image
            .topics
            .get(topic)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        if p.leader != self.node_id {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let hosted = self
            .partitions
            .get(topic, partition)
            .ok_or(ResponseError::NotLeaderOrFollower)?;
        let min_insync = TopicSettings::resolve(&self.config, &t.configs).min_insync_replicas;
        match hosted.role_snapshot() {
            ReplicaRole::Leader(state) => {
                // Kafka's effectiveMinIsr, as for acks=all produce.
                let min = min_insync.min(state.replicas.len().max(1) as i32);
                if (state.isr.len() as i32) < min {
                    return Err(ResponseError::NotEnoughReplicas);
                }
            }
            _ => return Err(ResponseError::NotLeaderOrFollower),
        }
        let appended = hosted
            .append_marker_as_leader(
                marker.producer_id,
                marker.producer_epoch,
                marker.coordinator_epoch,
                marker.control,
                now_ms(),
            )
            .map_err(|e| {
                tracing::debug!(topic, partition, producer_id = marker.producer_id, error = %e, "transaction marker refused");
                e.error()
            })?;
        Ok(LocalWrite {
            commit: appended.commit,
            offsets_partition: (topic == OFFSETS_TOPIC).then_some(partition),
            producer_id: marker.producer_id,
            committed: marker.control == ControlType::Commit,
            groups: self.groups.clone(),
        })
    }
}

/// The waiting partitions by the leader to send to, and those whose topic or partition is
/// gone from the metadata. Partitions without a (registered) leader are in neither: they
/// wait for the next round.
#[allow(clippy::type_complexity)]
fn route(
    image: &MetadataImage,
    waiting: &BTreeSet<(String, i32)>,
) -> (BTreeMap<i32, Vec<(String, i32)>>, Vec<(String, i32)>) {
    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    let mut gone = Vec::new();
    for tp in waiting {
        let p = image
            .topics
            .get(&tp.0)
            .and_then(|t| usize::try_from(tp.1).ok().and_then(|i| t.partitions.get(i)));
        match p {
            None => gone.push(tp.clone()),
            Some(p) if p.leader == NO_LEADER || !image.brokers.contains_key(&p.leader) => {}
            Some(p) => by_leader.entry(p.leader).or_default().push(tp.clone()),
        }
    }
    (by_leader, gone)
}

/// The WriteTxnMarkers request carrying `marker` for `partitions`.
fn request_for(marker: &TxnMarker, partitions: &[(String, i32)]) -> WriteTxnMarkersRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        topics.entry(t.as_str()).or_default().push(*p);
    }
    let topics = topics
        .into_iter()
        .map(|(name, indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partition_indexes(indexes)
        })
        .collect();
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id))
        .with_producer_epoch(marker.producer_epoch)
        .with_transaction_result(marker.control == ControlType::Commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(topics)])
}

/// Each partition's error code from a leader's answer; a failed exchange, or a partition
/// the answer leaves out, counts as a network error (retried).
fn answer_codes(
    leader: i32,
    producer_id: i64,
    partitions: Vec<(String, i32)>,
    answer: Result<kafka_protocol::messages::WriteTxnMarkersResponse, ClientError>,
) -> Vec<((String, i32), i16)> {
    let network = ResponseError::NetworkException.code();
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(leader, error = %e, "WriteTxnMarkers exchange failed; retrying");
            return partitions.into_iter().map(|tp| (tp, network)).collect();
        }
    };
    let mut codes: HashMap<(&str, i32), i16> = HashMap::new();
    for m in response
        .markers
        .iter()
        .filter(|m| m.producer_id.0 == producer_id)
    {
        for t in &m.topics {
            for p in &t.partitions {
                codes.insert((t.name.0.as_str(), p.partition_index), p.error_code);
            }
        }
    }
    let codes: Vec<i16> = partitions
        .iter()
        .map(|(t, p)| codes.get(&(t.as_str(), *p)).copied().unwrap_or(network))
        .collect();
    partitions.into_iter().zip(codes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerInfo, PartitionImage, TopicImage};

    #[test]
    fn errors_sort_as_kafkas_completion_handler() {
        use ResponseError::*;
        assert_eq!(outcome(0), Outcome::Done);
        for e in [UnsupportedForMessageFormat, UnsupportedVersion] {
            assert_eq!(outcome(e.code()), Outcome::Done, "{e:?}");
        }
        for e in [InvalidProducerEpoch, TransactionCoordinatorFenced] {
            assert_eq!(outcome(e.code()), Outcome::Fenced, "{e:?}");
        }
        for e in [
            NotLeaderOrFollower,
            NotEnoughReplicas,
            NotEnoughReplicasAfterAppend,
            RequestTimedOut,
            UnknownTopicOrPartition,
            KafkaStorageError,
            NetworkException,
            CorruptMessage,
        ] {
            assert_eq!(outcome(e.code()), Outcome::Retry, "{e:?}");
        }
    }

    fn image() -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in [1, 2] {
            image.brokers.insert(
                id,
                BrokerInfo {
                    id,
                    host: "127.0.0.1".into(),
                    port: 9000 + id as u16,
                    fenced: false,
                },
            );
        }
        let partition = |leader| PartitionImage {
            leader,
            leader_epoch: 1,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            partition_epoch: 1,
        };
        image.topics.insert(
            "t".into(),
            TopicImage {
                name: "t".into(),
                id: uuid::Uuid::new_v4(),
                partitions: vec![
                    partition(1),
                    partition(2),
                    partition(NO_LEADER),
                    partition(7),
                ],
                configs: Default::default(),
            },
        );
        image
    }

    #[test]
    fn route_groups_by_leader_drops_deleted_and_holds_leaderless() {
        let waiting: BTreeSet<(String, i32)> = [
            ("t".to_string(), 0),
            ("t".to_string(), 1),
            ("t".to_string(), 2),
            ("t".to_string(), 3),
            ("t".to_string(), 9),
            ("gone".to_string(), 0),
        ]
        .into();
        let (by_leader, gone) = route(&image(), &waiting);
        assert_eq!(by_leader.len(), 2);
        assert_eq!(by_leader[&1], vec![("t".to_string(), 0)]);
        assert_eq!(by_leader[&2], vec![("t".to_string(), 1)]);
        // No leader, or a leader without a registration: neither sent nor dropped.
        assert_eq!(gone, vec![("gone".to_string(), 0), ("t".to_string(), 9)]);
    }

    #[test]
    fn request_carries_one_marker_grouped_by_topic() {
        let marker = TxnMarker {
            producer_id: 42,
            producer_epoch: 3,
            coordinator_epoch: 5,
            control: ControlType::Commit,
            partitions: vec![],
        };
        let tps = vec![
            ("b".to_string(), 1),
            ("a".to_string(), 0),
            ("b".to_string(), 0),
        ];
        let r = request_for(&marker, &tps);
        assert_eq!(r.markers.len(), 1);
        let m = &r.markers[0];
        assert_eq!(
            (m.producer_id.0, m.producer_epoch, m.coordinator_epoch),
            (42, 3, 5)
        );
        assert!(m.transaction_result);
        let topics: Vec<(&str, Vec<i32>)> = m
            .topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partition_indexes.clone()))
            .collect();
        assert_eq!(topics, vec![("a", vec![0]), ("b", vec![1, 0])]);
    }

    #[test]
    fn missing_answers_and_failed_exchanges_are_retried() {
        use kafka_protocol::messages::write_txn_markers_response::*;
        let tps = vec![("a".to_string(), 0), ("a".to_string(), 1)];
        let response =
            kafka_protocol::messages::WriteTxnMarkersResponse::default().with_markers(vec![
                WritableTxnMarkerResult::default()
                    .with_producer_id(ProducerId(42))
                    .with_topics(vec![WritableTxnMarkerTopicResult::default()
                        .with_name(TopicName(StrBytes::from_static_str("a")))
                        .with_partitions(vec![WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(1)
                            .with_error_code(ResponseError::NotLeaderOrFollower.code())])]),
            ]);
        let codes = answer_codes(2, 42, tps.clone(), Ok(response));
        let network = ResponseError::NetworkException.code();
        assert_eq!(
            codes,
            vec![
                (tps[0].clone(), network),
                (tps[1].clone(), ResponseError::NotLeaderOrFollower.code())
            ]
        );
        let failed = answer_codes(
            2,
            42,
            tps.clone(),
            Err(ClientError::Protocol {
                addr: "x".into(),
                detail: "y".into(),
            }),
        );
        assert!(failed.iter().all(|(_, c)| *c == network));
    }
}
