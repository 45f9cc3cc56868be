//! Durable transaction state in the internal topic `__transaction_state` (Kafka's
//! `TransactionLog`).
//!
//! One record per change of a transactional id: the key names the id, the value is its
//! whole [`TxnMetadata`] (JSON, like `__consumer_offsets` here), a null value removes the
//! id (expiration). The topic is compacted, so after a reload only the last value per id
//! is left, which is all the coordinator needs: reading back in log order, last value wins.
//!
//! Kafka's value also carries the producer id, epoch, timeout, state, partitions and the
//! start / update times; here the last producer epoch is kept as well, so that a retried
//! InitProducerId is recognised across a coordinator change.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use serde::{Deserialize, Serialize};

use super::state::TxnMetadata;
use super::TRANSACTION_STATE_TOPIC;
use crate::log::{validate_producer_batches, RecordBatchBuilder};
use crate::replication::{AppendError, CommitHandle, Partition, PartitionRegistry};

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecordKey {
    transactional_id: String,
}

fn encode_key(transactional_id: &str) -> Vec<u8> {
    serde_json::to_vec(&RecordKey {
        transactional_id: transactional_id.to_string(),
    })
    .unwrap_or_default()
}

/// A write to `__transaction_state`, to wait for until it is replicated.
pub struct Written(CommitHandle);

impl Written {
    /// The leader epoch the write was made in (the coordinator epoch it belongs to).
    pub fn leader_epoch(&self) -> i32 {
        self.0.leader_epoch()
    }

    /// Waits until the write is committed (Kafka writes transaction state with acks=all);
    /// the partition's error as the log reports it (see [`coordinator_error`]).
    pub async fn committed(&self, timeout: std::time::Duration) -> Result<(), ResponseError> {
        self.0.wait(tokio::time::Instant::now() + timeout).await
    }
}

/// The error a client sees for a failed write of transaction state (Kafka's
/// `TransactionStateManager.appendTransactionToLog`): retriable ones become
/// COORDINATOR_NOT_AVAILABLE, a lost leadership NOT_COORDINATOR.
pub fn coordinator_error(e: ResponseError) -> ResponseError {
    match e {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge => {
            ResponseError::UnknownServerError
        }
        other => other,
    }
}

/// Appends the new metadata of `transactional_id` (`None`: removes it) to `partition` of
/// `__transaction_state` as its leader. `min_insync_replicas` is the topic's.
pub fn write(
    partition: &Arc<Partition>,
    transactional_id: &str,
    value: Option<&TxnMetadata>,
    min_insync_replicas: i32,
    now_ms: i64,
) -> Result<Written, ResponseError> {
    let key = encode_key(transactional_id);
    let value = match value.map(serde_json::to_vec) {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot encode transaction metadata");
            return Err(ResponseError::UnknownServerError);
        }
        None => None,
    };
    let mut builder = RecordBatchBuilder::new();
    builder.push(now_ms, Some(&key), value.as_deref(), &[]);
    let batch = builder.build();
    let headers = validate_producer_batches(&batch, usize::MAX).map_err(|e| {
        tracing::error!(error = %e, "built an invalid __transaction_state batch");
        ResponseError::UnknownServerError
    })?;
    match partition.append_as_leader(&batch, &headers, Some(min_insync_replicas), now_ms) {
        Ok(appended) => Ok(Written(appended.commit)),
        Err(AppendError::NotLeader) => Err(ResponseError::NotCoordinator),
        Err(e) => {
            let error = e.error();
            if !matches!(e, AppendError::NotEnoughReplicas { .. }) {
                tracing::error!(partition = partition.index, error = %e, "cannot write to __transaction_state");
            }
            Err(coordinator_error(error))
        }
    }
}

/// The transactional ids read back from one `__transaction_state` partition.
#[derive(Debug, Default)]
pub struct Loaded {
    pub txns: BTreeMap<String, TxnMetadata>,
    pub records: u64,
}

impl Loaded {
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Ok(key) = serde_json::from_slice::<RecordKey>(key) else {
            tracing::warn!("skipping an unreadable __transaction_state record key");
            return;
        };
        self.records += 1;
        match value.map(serde_json::from_slice::<TxnMetadata>) {
            Some(Ok(meta)) => {
                self.txns.insert(key.transactional_id, meta);
            }
            Some(Err(e)) => {
                tracing::warn!(transactional_id = %key.transactional_id, error = %e, "skipping an unreadable __transaction_state value");
            }
            None => {
                self.txns.remove(&key.transactional_id);
            }
        }
    }
}

/// Reads hosted partition `index` of `__transaction_state` from its start to its end, last
/// value per id wins (blocking file reads: call it off the async workers).
pub fn load(partitions: &PartitionRegistry, index: i32) -> Loaded {
    let mut loaded = Loaded::default();
    let Some(partition) = partitions.get(TRANSACTION_STATE_TOPIC, index) else {
        return loaded;
    };
    let mut offset = partition.log_reader().log_start_offset();
    loop {
        let bytes = match partition.log_reader().read(offset, 1 << 20) {
            Ok(r) => r.bytes,
            Err(e) => {
                tracing::error!(partition = index, error = %e, "cannot read __transaction_state");
                break;
            }
        };
        if bytes.is_empty() {
            break;
        }
        let mut buf: Bytes = bytes;
        let mut next = offset;
        while !buf.is_empty() {
            // A compacted log has gaps: the batch, not its surviving records, says where the
            // next read starts.
            if let Ok(h) = crate::log::parse_header(&buf) {
                next = next.max(h.next_offset());
            }
            match RecordBatchDecoder::decode(&mut buf) {
                Ok(set) => {
                    for r in set.records {
                        next = next.max(r.offset + 1);
                        if r.offset < offset {
                            continue;
                        }
                        if let Some(key) = &r.key {
                            loaded.apply(key, r.value.as_deref());
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(partition = index, error = %e, "cannot decode __transaction_state");
                    return loaded;
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::state::{TxnEntry, TxnState};

    fn meta(epoch: i16, state: TxnState) -> TxnMetadata {
        let mut m = TxnEntry::new("t", 5, 60_000, 1).meta;
        m.producer_epoch = epoch;
        m.state = state;
        m.partitions.insert(("orders".into(), 3));
        m
    }

    #[test]
    fn the_last_value_per_id_wins_and_a_tombstone_removes_the_id() {
        let mut l = Loaded::default();
        let v = |m: &TxnMetadata| serde_json::to_vec(m).unwrap();
        l.apply(&encode_key("a"), Some(&v(&meta(0, TxnState::Empty))));
        l.apply(&encode_key("a"), Some(&v(&meta(1, TxnState::Ongoing))));
        l.apply(&encode_key("b"), Some(&v(&meta(0, TxnState::Empty))));
        l.apply(&encode_key("b"), None);
        l.apply(b"not json", None);
        assert_eq!(l.records, 4);
        assert_eq!(l.txns.len(), 1);
        assert_eq!(l.txns["a"], meta(1, TxnState::Ongoing));
    }

    #[test]
    fn errors_map_to_what_kafka_answers() {
        assert_eq!(
            coordinator_error(ResponseError::NotEnoughReplicas),
            ResponseError::CoordinatorNotAvailable
        );
        assert_eq!(
            coordinator_error(ResponseError::NotLeaderOrFollower),
            ResponseError::NotCoordinator
        );
        assert_eq!(
            coordinator_error(ResponseError::MessageTooLarge),
            ResponseError::UnknownServerError
        );
    }
}
