//! The follower side: one task per leader broker fetches every partition this broker
//! follows from it, in one Fetch request (v12, with this broker's replica id), and appends
//! the batches as they came. Before the first fetch in a leader epoch, a partition is
//! truncated by leader epoch: OffsetForLeaderEpoch names this log's latest epoch, the leader
//! answers where that epoch ends in its log, and everything after it here is removed.
//!
//! A partition the leader refuses (it has not seen the new epoch yet, or no longer leads)
//! backs off briefly; a lost connection is re-made. Nothing here blocks other partitions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use tokio::sync::Notify;

use super::client::{ClientError, Connection};
use super::partition::FollowerOutcome as Outcome;
use super::registry::PartitionRegistry;
use super::Key;
use crate::clock::now_ms;
use crate::cluster::Metadata;

const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const MAX_WAIT: Duration = Duration::from_millis(500);
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const RESPONSE_MAX_BYTES: i32 = 16 * 1024 * 1024;
const RETRY: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One partition to fetch from this leader.
#[derive(Debug, Clone)]
struct Target {
    leader_epoch: i32,
    truncated: bool,
    retry_at: Option<Instant>,
}

/// Why a round with the leader failed (the connection is re-made).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("broker {0} is not registered")]
    UnknownLeader(i32),
    #[error("not connected")]
    NotConnected,
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the leader refused the whole fetch with error {0}")]
    Refused(i16),
}

/// A running fetcher: its partitions (changed by the manager) and its task.
pub(super) struct FetcherHandle {
    targets: Arc<Mutex<HashMap<Key, Target>>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl FetcherHandle {
    pub(super) fn spawn(
        runtime: &tokio::runtime::Handle,
        partitions: Arc<PartitionRegistry>,
        metadata: Metadata,
        node_id: i32,
        leader: i32,
    ) -> FetcherHandle {
        let targets = Arc::new(Mutex::new(HashMap::new()));
        let wake = Arc::new(Notify::new());
        let fetcher = Fetcher {
            partitions,
            metadata,
            node_id,
            leader,
            targets: targets.clone(),
            wake: wake.clone(),
            conn: None,
        };
        FetcherHandle {
            targets,
            wake,
            task: runtime.spawn(fetcher.run()),
        }
    }

    /// Sets the partitions to fetch, with their leader epochs. A partition whose epoch is
    /// new is truncated by epoch again before its next fetch.
    pub(super) fn assign(&self, wanted: HashMap<Key, i32>) {
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        targets.retain(|k, t| wanted.get(k) == Some(&t.leader_epoch));
        for (key, leader_epoch) in wanted {
            targets.entry(key).or_insert(Target {
                leader_epoch,
                truncated: false,
                retry_at: None,
            });
        }
        drop(targets);
        self.wake.notify_one();
    }

    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

struct Fetcher {
    partitions: Arc<PartitionRegistry>,
    metadata: Metadata,
    node_id: i32,
    leader: i32,
    targets: Arc<Mutex<HashMap<Key, Target>>>,
    wake: Arc<Notify>,
    conn: Option<Connection>,
}

/// A partition ready to work on, with the leader epoch it is followed in.
type Ready = (Key, i32);

impl Fetcher {
    fn targets(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Target>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The partitions ready now (not backing off), split by whether they still need the
    /// epoch truncation.
    fn ready(&self) -> (Vec<Ready>, Vec<Ready>) {
        let now = Instant::now();
        let (mut truncate, mut fetch) = (Vec::new(), Vec::new());
        for (key, t) in self.targets().iter_mut() {
            if t.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            t.retry_at = None;
            let item = (key.clone(), t.leader_epoch);
            if t.truncated {
                fetch.push(item);
            } else {
                truncate.push(item);
            }
        }
        (truncate, fetch)
    }

    fn set_outcome(&self, key: &Key, epoch: i32, outcome: Outcome) {
        let mut targets = self.targets();
        let Some(t) = targets.get_mut(key).filter(|t| t.leader_epoch == epoch) else {
            return;
        };
        match outcome {
            Outcome::Ok => t.truncated = true,
            Outcome::RetryLater => t.retry_at = Some(Instant::now() + RETRY),
            Outcome::TruncateAgain => {
                t.truncated = false;
                t.retry_at = Some(Instant::now() + RETRY);
            }
        }
    }

    async fn run(mut self) {
        loop {
            let (truncate, fetch) = self.ready();
            if truncate.is_empty() && fetch.is_empty() {
                let _ = tokio::time::timeout(RETRY, self.wake.notified()).await;
                continue;
            }
            if let Err(e) = self.connect().await {
                tracing::debug!(leader = self.leader, error = %e, "cannot reach the partition leader");
                tokio::time::sleep(RETRY * 2).await;
                continue;
            }
            let result = if !truncate.is_empty() {
                self.truncate(&truncate).await
            } else {
                self.fetch(&fetch).await
            };
            if let Err(e) = result {
                tracing::debug!(leader = self.leader, error = %e, "replica fetch failed; reconnecting");
                self.conn = None;
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    async fn connect(&mut self) -> Result<(), FetchError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let image = self.metadata.image();
        let b = image
            .brokers
            .get(&self.leader)
            .ok_or(FetchError::UnknownLeader(self.leader))?;
        let addr = format!("{}:{}", b.host, b.port);
        let conn = Connection::connect(
            &addr,
            format!("broker-{}-replica-fetcher", self.node_id),
            CONNECT_TIMEOUT,
        )
        .await?;
        self.conn = Some(conn);
        Ok(())
    }

    fn connection(&mut self) -> Result<&mut Connection, FetchError> {
        self.conn.as_mut().ok_or(FetchError::NotConnected)
    }

    /// Truncates each partition to where its latest local epoch ends on the leader.
    async fn truncate(&mut self, items: &[Ready]) -> Result<(), FetchError> {
        let mut asked: HashMap<Key, i32> = HashMap::new();
        let mut by_topic: HashMap<String, Vec<OffsetForLeaderPartition>> = HashMap::new();
        for ((topic, index), epoch) in items {
            let Some(p) = self.partitions.get(topic, *index) else {
                continue;
            };
            let Some(latest) = p.log_reader().latest_epoch() else {
                // Nothing written under any epoch: nothing can diverge.
                self.set_outcome(&(topic.clone(), *index), *epoch, Outcome::Ok);
                continue;
            };
            by_topic.entry(topic.clone()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(*index)
                    .with_current_leader_epoch(*epoch)
                    .with_leader_epoch(latest),
            );
            asked.insert((topic.clone(), *index), *epoch);
        }
        if asked.is_empty() {
            return Ok(());
        }
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(self.node_id))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetForLeaderTopic::default()
                            .with_topic(TopicName(topic.into()))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = self
            .connection()?
            .send(
                &request,
                OFFSET_FOR_LEADER_EPOCH_VERSION,
                CONNECT_TIMEOUT * 5,
            )
            .await?;
        for t in response.topics {
            let topic = t.topic.0.to_string();
            for r in t.partitions {
                let key = (topic.clone(), r.partition);
                let Some(epoch) = asked.get(&key) else {
                    continue;
                };
                let Some(p) = self.partitions.get(&topic, r.partition) else {
                    continue;
                };
                let outcome = if r.error_code != 0 {
                    Outcome::RetryLater
                } else {
                    p.truncate_as_follower(self.leader, *epoch, r.leader_epoch, r.end_offset)
                };
                self.set_outcome(&key, *epoch, outcome);
            }
        }
        Ok(())
    }

    /// One fetch of every ready partition; appends what came back.
    async fn fetch(&mut self, items: &[Ready]) -> Result<(), FetchError> {
        let epochs: HashMap<&Key, i32> = items.iter().map(|(k, e)| (k, *e)).collect();
        let mut by_topic: HashMap<String, Vec<FetchPartition>> = HashMap::new();
        for ((topic, index), epoch) in items {
            let Some(p) = self.partitions.get(topic, *index) else {
                continue;
            };
            let (start, end) = {
                let log = p.log_reader();
                (log.log_start_offset(), log.log_end_offset())
            };
            by_topic.entry(topic.clone()).or_default().push(
                FetchPartition::default()
                    .with_partition(*index)
                    .with_current_leader_epoch(*epoch)
                    .with_fetch_offset(end)
                    .with_log_start_offset(start)
                    .with_partition_max_bytes(PARTITION_MAX_BYTES),
            );
        }
        if by_topic.is_empty() {
            tokio::time::sleep(RETRY).await;
            return Ok(());
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(self.node_id))
            .with_max_wait_ms(MAX_WAIT.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(RESPONSE_MAX_BYTES)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(topic.into()))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = self
            .connection()?
            .send(&request, FETCH_VERSION, MAX_WAIT + CONNECT_TIMEOUT * 5)
            .await?;
        if response.error_code != 0 {
            return Err(FetchError::Refused(response.error_code));
        }
        for t in response.responses {
            let topic = t.topic.0.to_string();
            for r in t.partitions {
                let key = (topic.clone(), r.partition_index);
                let Some(epoch) = epochs.get(&key) else {
                    continue;
                };
                let Some(p) = self.partitions.get(&topic, r.partition_index) else {
                    continue;
                };
                let outcome = if r.error_code == 0 {
                    let records = r.records.unwrap_or_default();
                    p.append_as_follower(
                        self.leader,
                        *epoch,
                        &records,
                        r.high_watermark,
                        r.log_start_offset,
                        now_ms(),
                    )
                } else if r.error_code == ResponseError::OffsetOutOfRange.code() {
                    p.restart_at_leader_start(r.log_start_offset)
                } else {
                    tracing::debug!(
                        topic,
                        partition = r.partition_index,
                        error = r.error_code,
                        "leader refused a replica fetch"
                    );
                    Outcome::RetryLater
                };
                self.set_outcome(&key, *epoch, outcome);
            }
        }
        Ok(())
    }
}
