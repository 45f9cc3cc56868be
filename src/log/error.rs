//! The storage layer's error type, [`LogError`], and its one mapping to Kafka error codes.
//!
//! Invariants:
//! - Every variant's `Display` is a sentence that tells an operator or a client what went
//!   wrong and what to do about it; none prints a `{:?}`.
//! - [`LogError::kafka_error_code`] is the only place where storage failures become Kafka
//!   error codes, so handlers can set the code on the right partition instead of failing the
//!   whole request.
//! - I/O failures on a write or flush path put the partition log offline (see
//!   [`LogError::Offline`]); they are never retried silently, because an `fsync` that failed
//!   once may have dropped dirty pages the kernel will never report again.

use std::io;
use std::path::PathBuf;

use kafka_protocol::error::ResponseError;

use super::batch::BatchError;

/// Everything that can go wrong in `crate::log`.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A system call on a log file failed.
    #[error(
        "could not {action} {}: {source}; check that the disk is healthy, not full, and \
         writable by the broker",
        path.display()
    )]
    Io {
        /// What the broker was doing, as a verb phrase ("append to", "read", "fsync").
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A fetch or lookup asked for an offset the log does not hold.
    #[error(
        "offset {offset} is out of range for {}: the log holds offsets {log_start_offset} \
         (inclusive) to {log_end_offset} (exclusive); fetch from an offset in that range or \
         reset the consumer position",
        dir.display()
    )]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// The first offset still held.
        log_start_offset: i64,
        /// The offset the next appended record will get.
        log_end_offset: i64,
        /// The partition directory.
        dir: PathBuf,
    },

    /// A record batch failed validation.
    #[error("{0}")]
    InvalidBatch(#[from] BatchError),

    /// The caller passed an append whose pieces do not fit together (a caller bug).
    #[error(
        "refused an append to {}: {detail}; this is a bug in the caller of the storage layer, \
         nothing was written",
        dir.display()
    )]
    InvalidAppend {
        /// The partition directory.
        dir: PathBuf,
        /// What did not fit.
        detail: String,
    },

    /// The append carries an older leader epoch than the log has already seen.
    #[error(
        "refused an append to {} with leader epoch {epoch}: the partition already has data \
         written under leader epoch {latest}, so this broker's view of the leadership is \
         stale; refresh the metadata and retry",
        dir.display()
    )]
    StaleLeaderEpoch {
        /// The partition directory.
        dir: PathBuf,
        /// The epoch of the refused append.
        epoch: i32,
        /// The latest epoch in the log's epoch history.
        latest: i32,
    },

    /// An idempotent producer's batch does not continue that producer's sequence.
    #[error(
        "refused a batch from producer {producer_id} (epoch {epoch}) to {}: it starts at \
         sequence {sequence} but the partition expects sequence {expected}; earlier batches of \
         this producer were lost or reordered, so the producer must reset its sequence numbers \
         (the Java producer bumps its epoch and restarts at 0) and resend",
        dir.display()
    )]
    OutOfOrderSequence {
        /// The partition directory.
        dir: PathBuf,
        /// The producer id of the batch.
        producer_id: i64,
        /// The producer epoch of the batch.
        epoch: i16,
        /// The batch's first sequence number.
        sequence: i32,
        /// The first sequence number the partition would accept.
        expected: i32,
    },

    /// An idempotent producer's batch carries an older epoch than the partition has seen.
    #[error(
        "refused a batch from producer {producer_id} to {}: its producer epoch {epoch} is \
         older than epoch {current_epoch}, which this partition has already seen from the same \
         producer id, so a newer instance of the producer has taken over; close this producer \
         instance",
        dir.display()
    )]
    InvalidProducerEpoch {
        /// The partition directory.
        dir: PathBuf,
        /// The producer id of the batch.
        producer_id: i64,
        /// The producer epoch of the batch.
        epoch: i16,
        /// The latest epoch the partition has seen from this producer id.
        current_epoch: i16,
    },

    /// A transaction marker carries an older coordinator epoch than the producer's last one.
    #[error(
        "refused a transaction marker for producer {producer_id} in {}: its coordinator epoch \
         {coordinator_epoch} is older than epoch {current} of the last marker, so a newer \
         transaction coordinator has taken over; the old coordinator must stop",
        dir.display()
    )]
    TransactionCoordinatorFenced {
        dir: PathBuf,
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },

    /// A producer with an open transaction sent a non-transactional batch.
    #[error(
        "refused a non-transactional batch from producer {producer_id} at offset {offset} in \
         {}: the producer has an open transaction in this partition, so it must write \
         transactional batches until the transaction ends",
        dir.display()
    )]
    InvalidTxnState {
        dir: PathBuf,
        producer_id: i64,
        offset: i64,
    },

    /// A `LogConfig` value is out of range.
    #[error("invalid log configuration: {0}; fix the topic or broker configuration")]
    InvalidConfig(String),

    /// An earlier write or flush failed, so this log refuses further writes.
    #[error(
        "the log in {} is offline because an earlier write or flush failed; data since the \
         last successful flush may be lost, check the disk and restart the broker",
        dir.display()
    )]
    Offline {
        /// The partition directory.
        dir: PathBuf,
    },

    /// The log was shut down (see `PartitionLog::shutdown`) and takes no more writes.
    #[error(
        "the log in {} was closed because the broker is shutting down; retry against the \
         partition's new leader",
        dir.display()
    )]
    Closed {
        /// The partition directory.
        dir: PathBuf,
    },

    /// A file that the broker cannot repair by itself is malformed.
    #[error("{} is corrupt: {detail}; move the file away and restart the broker to rebuild it", path.display())]
    Corrupt {
        /// The malformed file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// `dump_path` was given something that is neither a partition directory nor a log file.
    #[error(
        "{} is not a partition directory nor a .log, .index, .timeindex or .txnindex file; pass one of those",
        path.display()
    )]
    NotALogPath {
        /// The path given.
        path: PathBuf,
    },
}

impl LogError {
    /// Builds an [`LogError::Io`] from an `io::Error`, the action and the path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The Kafka error a handler should put on the partition for this error (the storage
    /// layer's one mapping to Kafka's codes).
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            LogError::InvalidBatch(e) => e.kafka_error(),
            LogError::StaleLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            LogError::TransactionCoordinatorFenced { .. } => {
                ResponseError::TransactionCoordinatorFenced
            }
            LogError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
            LogError::Closed { .. } => ResponseError::NotLeaderOrFollower,
            LogError::Io { .. } | LogError::Offline { .. } | LogError::Corrupt { .. } => {
                ResponseError::KafkaStorageError
            }
            LogError::InvalidAppend { .. }
            | LogError::InvalidConfig(_)
            | LogError::NotALogPath { .. } => ResponseError::UnknownServerError,
        }
    }

    /// [`kafka_error`](Self::kafka_error) as the wire's `i16`.
    pub fn kafka_error_code(&self) -> i16 {
        self.kafka_error().code()
    }

    /// True for failures of the disk itself (the partition should be reported offline and the
    /// broker should not acknowledge writes to it).
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, LogError::Io { .. } | LogError::Offline { .. })
    }
}
