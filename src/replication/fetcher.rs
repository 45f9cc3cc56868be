//! The follower side: one task per leader broker fetches every partition this broker
//! follows from it, in one Fetch request (v12, with this broker's replica id), and appends
//! the batches as they came. Before the first fetch in a leader epoch, a partition is
//! truncated by leader epoch: OffsetForLeaderEpoch names this log's latest epoch, the leader
//! answers where that epoch ends in its log, and everything after it here is removed.
//!
//! A partition the leader refuses (it has not seen the new epoch yet, or no longer leads)
//! backs off briefly; a lost connection is re-made. Nothing here blocks other partitions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use tokio::sync::Notify;

use super::client::Connection;
use super::{Key, ReplicaRole, Watermark};
use crate::broker::{now_ms, Broker, Partition};
use crate::log::batch::split_whole_batches;

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

/// A running fetcher: its partitions (changed by the manager) and its task.
pub(super) struct FetcherHandle {
    targets: Arc<Mutex<HashMap<Key, Target>>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl FetcherHandle {
    pub(super) fn spawn(
        runtime: &tokio::runtime::Handle,
        broker: Weak<Broker>,
        node_id: i32,
        leader: i32,
    ) -> FetcherHandle {
        let targets = Arc::new(Mutex::new(HashMap::new()));
        let wake = Arc::new(Notify::new());
        let fetcher = Fetcher {
            broker,
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
    broker: Weak<Broker>,
    node_id: i32,
    leader: i32,
    targets: Arc<Mutex<HashMap<Key, Target>>>,
    wake: Arc<Notify>,
    conn: Option<Connection>,
}

/// A partition ready to work on, with the leader epoch it is followed in.
type Ready = (Key, i32);

/// What to do with a partition after the leader's answer.
enum Outcome {
    Ok,
    RetryLater,
    TruncateAgain,
}

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
            let Some(broker) = self.broker.upgrade() else {
                return;
            };
            let (truncate, fetch) = self.ready();
            if truncate.is_empty() && fetch.is_empty() {
                drop(broker);
                let _ = tokio::time::timeout(RETRY, self.wake.notified()).await;
                continue;
            }
            if let Err(e) = self.connect(&broker).await {
                tracing::debug!(leader = self.leader, error = %e, "cannot reach the partition leader");
                drop(broker);
                tokio::time::sleep(RETRY * 2).await;
                continue;
            }
            let result = if !truncate.is_empty() {
                self.truncate(&broker, &truncate).await
            } else {
                self.fetch(&broker, &fetch).await
            };
            if let Err(e) = result {
                tracing::debug!(leader = self.leader, error = %e, "replica fetch failed; reconnecting");
                self.conn = None;
                drop(broker);
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    async fn connect(&mut self, broker: &Broker) -> Result<(), String> {
        if self.conn.is_some() {
            return Ok(());
        }
        let image = broker.metadata.image();
        let b = image
            .brokers
            .get(&self.leader)
            .ok_or_else(|| format!("broker {} is not registered", self.leader))?;
        let addr = format!("{}:{}", b.host, b.port);
        let conn = Connection::connect(
            &addr,
            format!("broker-{}-replica-fetcher", self.node_id),
            CONNECT_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
        self.conn = Some(conn);
        Ok(())
    }

    fn connection(&mut self) -> Result<&mut Connection, String> {
        self.conn
            .as_mut()
            .ok_or_else(|| "not connected".to_string())
    }

    /// Truncates each partition to where its latest local epoch ends on the leader.
    async fn truncate(&mut self, broker: &Broker, items: &[Ready]) -> Result<(), String> {
        let mut asked: HashMap<Key, i32> = HashMap::new();
        let mut by_topic: HashMap<String, Vec<OffsetForLeaderPartition>> = HashMap::new();
        for ((topic, index), epoch) in items {
            let Some(p) = broker.partitions.get(topic, *index) else {
                continue;
            };
            let Some(latest) = p.log().latest_epoch() else {
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
            .await
            .map_err(|e| e.to_string())?;
        for t in response.topics {
            let topic = t.topic.0.to_string();
            for r in t.partitions {
                let key = (topic.clone(), r.partition);
                let Some(epoch) = asked.get(&key) else {
                    continue;
                };
                let Some(p) = broker.partitions.get(&topic, r.partition) else {
                    continue;
                };
                let outcome = if r.error_code != 0 {
                    Outcome::RetryLater
                } else {
                    truncate_by_epoch(&p, self.leader, *epoch, r.leader_epoch, r.end_offset)
                };
                self.set_outcome(&key, *epoch, outcome);
            }
        }
        Ok(())
    }

    /// One fetch of every ready partition; appends what came back.
    async fn fetch(&mut self, broker: &Broker, items: &[Ready]) -> Result<(), String> {
        let epochs: HashMap<&Key, i32> = items.iter().map(|(k, e)| (k, *e)).collect();
        let mut by_topic: HashMap<String, Vec<FetchPartition>> = HashMap::new();
        for ((topic, index), epoch) in items {
            let Some(p) = broker.partitions.get(topic, *index) else {
                continue;
            };
            let (start, end) = {
                let log = p.log();
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
            .await
            .map_err(|e| e.to_string())?;
        if response.error_code != 0 {
            return Err(format!("fetch failed with error {}", response.error_code));
        }
        for t in response.responses {
            let topic = t.topic.0.to_string();
            for r in t.partitions {
                let key = (topic.clone(), r.partition_index);
                let Some(epoch) = epochs.get(&key) else {
                    continue;
                };
                let Some(p) = broker.partitions.get(&topic, r.partition_index) else {
                    continue;
                };
                let outcome = if r.error_code == 0 {
                    let records = r.records.unwrap_or_default();
                    append_fetched(&p, self.leader, *epoch, &records, r.high_watermark)
                } else if r.error_code == ResponseError::OffsetOutOfRange.code() {
                    out_of_range(&p, r.log_start_offset)
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

/// Whether this broker still follows `leader` in `epoch` for `p` (under the role lock).
fn follows(role: &ReplicaRole, leader: i32, epoch: i32) -> bool {
    matches!(role, ReplicaRole::Follower { leader: l, leader_epoch: e } if *l == leader && *e == epoch)
}

/// Applies the leader's answer to OffsetForLeaderEpoch for this log's latest epoch: the
/// log keeps what the leader has of that epoch (or of the latest epoch the leader knows
/// below it) and drops the rest.
fn truncate_by_epoch(
    p: &Partition,
    leader: i32,
    epoch: i32,
    leader_epoch: i32,
    leader_end: i64,
) -> Outcome {
    let role = p.role();
    if !follows(&role, leader, epoch) {
        return Outcome::RetryLater;
    }
    let mut log = p.log();
    let end = log.log_end_offset();
    let target = if leader_epoch < 0 || leader_end < 0 {
        // The leader holds none of this log's epochs: keep nothing that could diverge.
        log.log_start_offset()
    } else if Some(leader_epoch) == log.latest_epoch() {
        leader_end.min(end)
    } else {
        let (_, local_end) = log.end_offset_for_epoch(leader_epoch);
        leader_end.min(local_end).min(end)
    };
    if target < end {
        tracing::info!(
            topic = %p.topic,
            partition = p.index,
            from = end,
            to = target,
            leader,
            "truncating the divergent tail of a follower"
        );
        if let Err(e) = log.truncate_to(target) {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "truncation failed");
            return Outcome::TruncateAgain;
        }
    }
    let end = log.log_end_offset();
    drop(log);
    p.publish_watermark(Watermark {
        offset: p.high_watermark().min(end),
        leader_epoch: None,
    });
    Outcome::Ok
}

/// Appends fetched batches (the leader's bytes as they are) and takes the leader's high
/// watermark, capped at this log's end.
fn append_fetched(p: &Partition, leader: i32, epoch: i32, records: &[u8], hw: i64) -> Outcome {
    let role = p.role();
    if !follows(&role, leader, epoch) {
        return Outcome::RetryLater;
    }
    let mut log = p.log();
    if !records.is_empty() {
        let appended = split_whole_batches(records)
            .map_err(|e| e.to_string())
            .and_then(|(headers, len)| {
                if headers.is_empty() {
                    return Ok(());
                }
                log.append_replicated(&records[..len], &headers, now_ms())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = appended {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot append replicated batches; truncating by epoch again");
            return Outcome::TruncateAgain;
        }
    }
    let end = log.log_end_offset();
    drop(log);
    p.publish_watermark(Watermark {
        offset: hw.min(end).max(0),
        leader_epoch: None,
    });
    Outcome::Ok
}

/// The leader no longer has the fetch offset: below its log start, this log restarts there
/// (retention removed what this follower missed); otherwise the log diverged.
fn out_of_range(p: &Partition, leader_start: i64) -> Outcome {
    let mut log = p.log();
    if leader_start > log.log_end_offset() {
        tracing::info!(topic = %p.topic, partition = p.index, offset = leader_start, "follower restarts its log at the leader's log start");
        if let Err(e) = log.truncate_fully_and_start_at(leader_start) {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "cannot restart the log");
        }
        return Outcome::Ok;
    }
    Outcome::TruncateAgain
}
