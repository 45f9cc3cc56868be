//! Durable group state in the internal topic `__consumer_offsets`.
//!
//! Each committed offset and each group's metadata (protocol type, generation) is a record
//! whose key names what it is about; a record with a null value deletes the key (a
//! tombstone). Records are written with the normal log code, uncompressed, one batch per
//! call, and read back on start in log order, so the last value of each key wins: the
//! state after a reload holds only the latest value per key.
//!
//! The coordinator of a group is the leader of partition `abs(hash(group)) % N` of the
//! topic, with Java's `String.hashCode`, as Apache Kafka places groups.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use serde::{Deserialize, Serialize};

use super::state::CommittedOffset;
use kafka_protocol::error::ResponseError;

use crate::clock::now_ms;
use crate::log::{validate_producer_batches, RecordBatchBuilder};
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
pub struct Written(CommitHandle);

impl Written {
    /// Waits until the write is committed (the high watermark covers it), as Kafka waits
    /// with acks=all before answering an offset commit; NOT_COORDINATOR when leadership
    /// moved, REQUEST_TIMED_OUT after `timeout`.
    pub async fn committed(&self, timeout: std::time::Duration) -> Result<(), ResponseError> {
        match self.0.wait(tokio::time::Instant::now() + timeout).await {
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
        Ok(appended) => Ok(Some(Written(appended.commit))),
        Err(AppendError::NotLeader) => Err(StoreError::NotHosted(partition)),
        Err(e) => Err(e.into()),
    }
}

/// The state read back from `__consumer_offsets`.
#[derive(Debug, Default)]
pub struct Loaded {
    pub groups: BTreeMap<String, GroupRecord>,
    pub offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    pub records: u64,
}

impl Loaded {
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
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
            } => match value.and_then(|v| serde_json::from_slice::<CommittedOffset>(v).ok()) {
                Some(offset) => {
                    self.offsets
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), offset);
                }
                None => {
                    if let Some(offsets) = self.offsets.get_mut(&group) {
                        offsets.remove(&(topic, partition));
                    }
                }
            },
        }
    }
}

/// Reads one hosted `__consumer_offsets` partition from its start, last value wins.
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
            let mut buf: Bytes = bytes;
            let mut last = offset;
            while !buf.is_empty() {
                // A compacted log has gaps: the batch, not its surviving records, says where
                // the next read starts.
                if let Ok(h) = crate::log::parse_header(&buf) {
                    last = last.max(h.next_offset());
                }
                match RecordBatchDecoder::decode(&mut buf) {
                    Ok(set) => {
                        for r in set.records {
                            last = last.max(r.offset + 1);
                            if r.offset < offset {
                                continue;
                            }
                            if let Some(key) = &r.key {
                                loaded.apply(key, r.value.as_deref());
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(partition = partition.index, error = %e, "cannot decode __consumer_offsets");
                        return loaded;
                    }
                }
            }
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
        l.apply(&key(0), Some(&value(5)));
        l.apply(&key(0), Some(&value(9)));
        l.apply(&key(1), Some(&value(1)));
        l.apply(&key(1), None);
        let offsets = &l.offsets["g"];
        assert_eq!(offsets.len(), 1);
        assert_eq!(offsets[&("t".to_string(), 0)].offset, 9);
    }
}
