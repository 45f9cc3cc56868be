//! Durable group state in the internal topic `__consumer_offsets`.
//!
//! Each committed offset and each group's metadata (protocol type, generation) is a record
//! whose key names what it is about; a record with a null value deletes the key (a
//! tombstone). Records are written with the normal log code, uncompressed, one batch per
//! call, and read back on start in log order, so the last value of each key wins: the
//! state after a reload holds only the latest value per key.
//!
//! Offsets committed in a transaction (TxnOffsetCommit) are written as one transactional
//! batch of the producer (attribute 0x10, producer id and epoch, base sequence -1); the
//! transaction's marker (a control batch of the same producer) later commits or aborts
//! them. The loader keeps such offsets pending per producer until it reads the marker;
//! those still open at the end stay pending.
//!
//! The coordinator of a group is the leader of partition `abs(hash(group)) % N` of the
//! topic, with Java's `String.hashCode`, as Apache Kafka places groups.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use serde::{Deserialize, Serialize};

use super::offset_store::GroupOffsets;
use super::state::CommittedOffset;
use kafka_protocol::error::ResponseError;

use crate::clock::now_ms;
use crate::log::batch::split_whole_batches;
use crate::log::batch::ATTR_TRANSACTIONAL;
use crate::log::control::{parse_marker, ControlType};
use crate::log::{validate_producer_batches, BatchHeader, RecordBatchBuilder};
use crate::replication::{AppendError, CommitHandle, PartitionRegistry};

/// The internal topic's name.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` over UTF-16 code units.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition that stores (and coordinates) `group`.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// The persisted part of a group's metadata. Members are not persisted: after a restart
/// they rejoin (their next heartbeat gets UNKNOWN_MEMBER_ID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub protocol_type: Option<String>,
    pub generation: i32,
}

/// A change to write.
pub enum Change {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupRecord>,
    },
}

/// Why a write to `__consumer_offsets` failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the __consumer_offsets partition {0} is not hosted here")]
    NotHosted(i32),
    #[error("cannot encode a __consumer_offsets batch: {0}")]
    Encode(#[from] crate::log::BatchError),
    #[error("cannot write to __consumer_offsets: {0}")]
    Write(#[from] AppendError),
}

impl StoreError {
    /// The error a committing client sees, as Kafka's group coordinator translates a failed
    /// append: NOT_COORDINATOR when this broker no longer leads the partition,
    /// COORDINATOR_NOT_AVAILABLE when too few replicas are in sync, INVALID_PRODUCER_EPOCH
    /// (a newer producer epoch fenced this one) as it is, UNKNOWN_SERVER_ERROR otherwise.
    pub fn commit_error(&self) -> ResponseError {
        match self {
            StoreError::NotHosted(_) => ResponseError::NotCoordinator,
            StoreError::Encode(_) => ResponseError::UnknownServerError,
            StoreError::Write(e) => match e.error() {
                ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
                    ResponseError::NotCoordinator
                }
                ResponseError::UnknownTopicOrPartition
                | ResponseError::NotEnoughReplicas
                | ResponseError::NotEnoughReplicasAfterAppend
                | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
                ResponseError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
                ResponseError::ProducerFenced => ResponseError::ProducerFenced,
                _ => ResponseError::UnknownServerError,
            },
        }
    }
}

fn encode(change: &Change) -> (Vec<u8>, Option<Vec<u8>>) {
    let (key, value) = match change {
        Change::Offset {
            group,
            topic,
            partition,
            value,
        } => (
            RecordKey::Offset {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
            },
            value.as_ref().map(serde_json::to_vec),
        ),
        Change::Group { group, value } => (
            RecordKey::Group {
                group: group.clone(),
            },
            value.as_ref().map(serde_json::to_vec),
        ),
    };
    (
        serde_json::to_vec(&key).unwrap_or_default(),
        value.and_then(Result::ok),
    )
}

/// An append to `__consumer_offsets`, to wait for until it is replicated.
pub struct Written {
    commit: CommitHandle,
    /// The log offset of the first record; the i-th change is at `base_offset + i`.
    pub base_offset: i64,
}

impl Written {
    /// Waits until the write is committed (the high watermark covers it), as Kafka waits
    /// with acks=all before answering an offset commit; NOT_COORDINATOR when leadership
    /// moved, REQUEST_TIMED_OUT after `timeout`.
    pub async fn committed(&self, timeout: std::time::Duration) -> Result<(), ResponseError> {
        match self
            .commit
            .wait(tokio::time::Instant::now() + timeout)
            .await
        {
            Err(ResponseError::NotLeaderOrFollower) => Err(ResponseError::NotCoordinator),
            other => other,
        }
    }
}

/// Appends `changes` for groups stored in `partition` as one batch, as the partition's
/// leader (in its leader epoch).
pub fn write(
    partitions: &PartitionRegistry,
    partition: i32,
    changes: &[Change],
) -> Result<Option<Written>, StoreError> {
    if changes.is_empty() {
        return Ok(None);
    }
    let hosted = partitions
        .get(OFFSETS_TOPIC, partition)
        .ok_or(StoreError::NotHosted(partition))?;
    let now = now_ms();
    let mut builder = RecordBatchBuilder::new();
    for change in changes {
        let (key, value) = encode(change);
        builder.push(now, Some(&key), value.as_deref(), &[]);
    }
    let batch = builder.build();
    let headers = validate_producer_batches(&batch, usize::MAX)?;
    match hosted.append_as_leader(&batch, &headers, None, now) {
        Ok(appended) => Ok(Some(Written {
            base_offset: appended.info.base_offset,
            commit: appended.commit,
        })),
        Err(AppendError::NotLeader) => Err(StoreError::NotHosted(partition)),
        Err(e) => Err(e.into()),
    }
}

/// Appends the offsets of producer `producer_id`'s transaction (TxnOffsetCommit) as one
/// transactional batch of that producer, as the partition's leader. The log checks the
/// producer epoch: an older one than it knows fails with INVALID_PRODUCER_EPOCH.
pub fn write_transactional(
    partitions: &PartitionRegistry,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    changes: &[Change],
) -> Result<Option<Written>, StoreError> {
    if changes.is_empty() {
        return Ok(None);
    }
    let hosted = partitions
        .get(OFFSETS_TOPIC, partition)
        .ok_or(StoreError::NotHosted(partition))?;
    let now = now_ms();
    let mut builder = RecordBatchBuilder::new()
        .producer(producer_id, producer_epoch, -1)
        .attributes(ATTR_TRANSACTIONAL);
    for change in changes {
        let (key, value) = encode(change);
        builder.push(now, Some(&key), value.as_deref(), &[]);
    }
    let batch = builder.build();
    // Not `validate_producer_batches`: a coordinator's batch has base sequence -1, which a
    // client's batch with a producer id may not.
    let (headers, _) = split_whole_batches(&batch)?;
    match hosted.append_as_coordinator(&batch, &headers, now) {
        Ok(appended) => Ok(Some(Written {
            base_offset: appended.info.base_offset,
            commit: appended.commit,
        })),
        Err(AppendError::NotLeader) => Err(StoreError::NotHosted(partition)),
        Err(e) => Err(e.into()),
    }
}

/// The state read back from `__consumer_offsets`.
#[derive(Debug, Default)]
pub struct Loaded {
    pub groups: BTreeMap<String, GroupRecord>,
    /// Per group: committed offsets, and those of transactions without a marker yet.
    pub offsets: BTreeMap<String, GroupOffsets>,
    /// Producer id → the groups holding its pending offsets.
    pub open_transactions: BTreeMap<i64, BTreeSet<String>>,
    pub records: u64,
}

impl Loaded {
    /// One record at log offset `at`; `producer_id` names the producer of a transactional
    /// batch (its offsets wait for the marker).
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>, at: i64, producer_id: Option<i64>) {
        let Ok(key) = serde_json::from_slice::<RecordKey>(key) else {
            tracing::warn!("skipping an unreadable __consumer_offsets record key");
            return;
        };
        self.records += 1;
        match key {
            RecordKey::Group { group } => {
                match value.and_then(|v| serde_json::from_slice::<GroupRecord>(v).ok()) {
                    Some(record) => {
                        self.groups.insert(group, record);
                    }
                    None => {
                        self.groups.remove(&group);
                    }
                }
            }
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                let offset = value.and_then(|v| serde_json::from_slice::<CommittedOffset>(v).ok());
                let key = (topic, partition);
                match (offset, producer_id) {
                    (Some(offset), Some(pid)) => {
                        self.offsets
                            .entry(group.clone())
                            .or_default()
                            .stage(pid, key, offset, at);
                        self.open_transactions.entry(pid).or_default().insert(group);
                    }
                    (Some(offset), None) => {
                        self.offsets
                            .entry(group)
                            .or_default()
                            .commit(key, offset, at);
                    }
                    // A transaction writes no tombstones; a regular one deletes the committed
                    // offset and the pending ones of that partition (as Kafka replays it).
                    (None, Some(_)) => {}
                    (None, None) => {
                        if let Some(offsets) = self.offsets.get_mut(&group) {
                            offsets.remove(&key);
                        }
                    }
                }
            }
        }
    }

    /// Producer `producer_id`'s marker at log offset `at`.
    fn end_transaction(&mut self, producer_id: i64, commit: bool, at: i64) {
        let Some(groups) = self.open_transactions.remove(&producer_id) else {
            return;
        };
        for group in groups {
            if let Some(offsets) = self.offsets.get_mut(&group) {
                offsets.complete(producer_id, commit, at);
            }
        }
    }

    /// The batches of one read starting at log offset `from`: the offset where the next
    /// read starts, or `None` when the bytes cannot be decoded (loading stops there).
    fn apply_bytes(&mut self, mut buf: Bytes, from: i64, partition: i32) -> Option<i64> {
        let mut last = from;
        while !buf.is_empty() {
            // A compacted log has gaps: the batch, not its surviving records, says where the
            // next read starts.
            let header = match crate::log::parse_header(&buf) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(partition, error = %e, "cannot parse a __consumer_offsets batch header");
                    return None;
                }
            };
            last = last.max(header.next_offset());
            match RecordBatchDecoder::decode(&mut buf) {
                Ok(set) => self.apply_batch(&header, &set.records, from),
                Err(e) => {
                    tracing::error!(partition, error = %e, "cannot decode __consumer_offsets");
                    return None;
                }
            }
        }
        Some(last)
    }

    /// The records of one decoded batch.
    fn apply_batch(&mut self, header: &BatchHeader, records: &[Record], from: i64) {
        for r in records {
            if r.offset < from {
                continue;
            }
            if header.is_control() {
                let marker = r
                    .key
                    .as_deref()
                    .zip(r.value.as_deref())
                    .and_then(|(k, v)| parse_marker(k, v));
                if let Some(marker) = marker {
                    let commit = marker.control == ControlType::Commit;
                    self.end_transaction(header.producer_id, commit, r.offset);
                }
                continue;
            }
            let producer_id = header.is_transactional().then_some(header.producer_id);
            if let Some(key) = &r.key {
                self.apply(key, r.value.as_deref(), r.offset, producer_id);
            }
        }
    }
}

/// Reads one hosted `__consumer_offsets` partition from its start, last value wins;
/// transactional offsets wait for their producer's marker.
pub fn load(partitions: &PartitionRegistry, index: i32) -> Loaded {
    let mut loaded = Loaded::default();
    if let Some(partition) = partitions.get(OFFSETS_TOPIC, index) {
        let mut offset = partition.log_reader().log_start_offset();
        loop {
            let read = partition.log_reader().read(offset, 1 << 20);
            let bytes = match read {
                Ok(r) => r.bytes,
                Err(e) => {
                    tracing::error!(partition = partition.index, error = %e, "cannot read __consumer_offsets");
                    break;
                }
            };
            if bytes.is_empty() {
                break;
            }
            let Some(last) = loaded.apply_bytes(bytes, offset, partition.index) else {
                return loaded;
            };
            if last <= offset {
                break;
            }
            offset = last;
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_placed_like_kafka() {
        // Java: "my-group".hashCode() = -1906497762 → abs % 50 = 12.
        assert_eq!(java_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
    }

    fn offset_key(group: &str, p: i32) -> Vec<u8> {
        serde_json::to_vec(&RecordKey::Offset {
            group: group.into(),
            topic: "t".into(),
            partition: p,
        })
        .unwrap()
    }

    fn offset_value(o: i64) -> Vec<u8> {
        serde_json::to_vec(&CommittedOffset {
            offset: o,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        })
        .unwrap()
    }

    /// A log of batches, each placed at the next offset as the log would.
    #[derive(Default)]
    struct LogBytes {
        bytes: Vec<u8>,
        next: i64,
    }

    impl LogBytes {
        fn push(&mut self, mut batch: Vec<u8>) -> i64 {
            let at = self.next;
            crate::log::assign_offsets(&mut batch, at, 0, None);
            self.next = crate::log::parse_header(&batch).unwrap().next_offset();
            self.bytes.extend_from_slice(&batch);
            at
        }

        /// Offsets of `group` (partition, offset) as one batch, transactional when a
        /// producer id is given.
        fn offsets(&mut self, producer: Option<i64>, group: &str, offsets: &[(i32, i64)]) -> i64 {
            let mut b = RecordBatchBuilder::new();
            if let Some(pid) = producer {
                b = b.producer(pid, 0, -1).attributes(ATTR_TRANSACTIONAL);
            }
            for (p, o) in offsets {
                b.push(
                    0,
                    Some(&offset_key(group, *p)),
                    Some(&offset_value(*o)),
                    &[],
                );
            }
            self.push(b.build())
        }

        fn tombstone(&mut self, group: &str, p: i32) -> i64 {
            let mut b = RecordBatchBuilder::new();
            b.push(0, Some(&offset_key(group, p)), None, &[]);
            self.push(b.build())
        }

        fn marker(&mut self, producer: i64, control: ControlType) -> i64 {
            self.push(crate::log::control::marker_batch(
                producer, 0, 0, control, 0,
            ))
        }

        fn load(&self) -> Loaded {
            let mut l = Loaded::default();
            let next = l
                .apply_bytes(Bytes::from(self.bytes.clone()), 0, 0)
                .unwrap();
            assert_eq!(next, self.next);
            l
        }
    }

    fn committed(l: &Loaded, group: &str, p: i32) -> Option<i64> {
        l.offsets[group].get(&("t".into(), p)).map(|o| o.offset)
    }

    #[test]
    fn loading_applies_committed_transactions_and_drops_aborted_ones() {
        let mut log = LogBytes::default();
        log.offsets(None, "g", &[(0, 1)]);
        log.offsets(Some(7), "g", &[(0, 10), (1, 11)]);
        log.offsets(Some(8), "g", &[(2, 20)]);
        log.offsets(Some(8), "h", &[(0, 21)]);
        log.marker(7, ControlType::Commit);
        log.marker(8, ControlType::Abort);
        let l = log.load();
        assert_eq!(committed(&l, "g", 0), Some(10));
        assert_eq!(committed(&l, "g", 1), Some(11));
        assert_eq!(committed(&l, "g", 2), None);
        assert_eq!(committed(&l, "h", 0), None);
        assert!(!l.offsets["g"].is_pending(&("t".into(), 2)));
        assert!(l.open_transactions.is_empty());
    }

    #[test]
    fn transactions_without_a_marker_stay_pending_after_loading() {
        let mut log = LogBytes::default();
        log.offsets(None, "g", &[(0, 1)]);
        log.offsets(Some(7), "g", &[(0, 10)]);
        log.marker(9, ControlType::Commit); // another producer's marker
        let l = log.load();
        assert_eq!(committed(&l, "g", 0), Some(1));
        assert_eq!(
            l.offsets["g"].pending(7, &("t".into(), 0)).unwrap().offset,
            10
        );
        assert_eq!(
            l.open_transactions[&7].iter().collect::<Vec<_>>(),
            vec!["g"]
        );
    }

    #[test]
    fn a_regular_commit_after_the_transactional_one_wins() {
        let mut log = LogBytes::default();
        log.offsets(Some(7), "g", &[(0, 10)]);
        log.offsets(None, "g", &[(0, 50)]);
        log.marker(7, ControlType::Commit);
        assert_eq!(committed(&log.load(), "g", 0), Some(50));
    }

    #[test]
    fn a_tombstone_removes_pending_offsets_of_its_partition() {
        let mut log = LogBytes::default();
        log.offsets(Some(7), "g", &[(0, 10), (1, 11)]);
        log.tombstone("g", 0);
        log.marker(7, ControlType::Commit);
        let l = log.load();
        assert_eq!(committed(&l, "g", 0), None);
        assert_eq!(committed(&l, "g", 1), Some(11));
    }

    #[test]
    fn a_second_transaction_of_the_producer_waits_for_its_own_marker() {
        let mut log = LogBytes::default();
        log.offsets(Some(7), "g", &[(0, 10)]);
        log.marker(7, ControlType::Commit);
        log.offsets(Some(7), "g", &[(0, 20)]);
        let l = log.load();
        assert_eq!(committed(&l, "g", 0), Some(10));
        assert_eq!(
            l.offsets["g"].pending(7, &("t".into(), 0)).unwrap().offset,
            20
        );
    }

    #[test]
    fn the_last_value_per_key_wins_and_tombstones_delete() {
        let mut l = Loaded::default();
        let key = |p| {
            serde_json::to_vec(&RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: p,
            })
            .unwrap()
        };
        let value = |o| {
            serde_json::to_vec(&CommittedOffset {
                offset: o,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 0,
            })
            .unwrap()
        };
        l.apply(&key(0), Some(&value(5)), 0, None);
        l.apply(&key(0), Some(&value(9)), 1, None);
        l.apply(&key(1), Some(&value(1)), 2, None);
        l.apply(&key(1), None, 3, None);
        let offsets = &l.offsets["g"];
        assert_eq!(offsets.committed().count(), 1);
        assert_eq!(offsets.get(&("t".to_string(), 0)).unwrap().offset, 9);
    }
}
