//! Per-partition segment logs on local disk, after Apache Kafka's storage layer.
//!
//! Map (one job per file):
//! - [`batch`]: magic-v2 record batch headers: parse, validate a produce payload, assign
//!   offsets in place. No per-record work.
//! - [`records`]: walks the records of an uncompressed batch (timestamp lookups only).
//! - [`validate`]: per-record checks of a produced batch (keys on compacted topics, record
//!   counts) and its rebuild in the topic's `compression.type`, only for topics that need them.
//! - [`builder`]: encodes uncompressed batches (tests, benches, internal topics).
//! - [`scan`]: sequential batch walk over a `.log` file with positioned reads.
//! - [`index`]: memory-mapped sparse offset and time indexes (Kafka's formats), one generic
//!   index type over their two entry types.
//! - [`segment`]: one `.log` + `.index` + `.timeindex` + `.txnindex`.
//! - [`txn_index`]: the aborted-transaction index of a segment (Kafka's `.txnindex`).
//! - [`recovery`]: opening a directory after a clean or unclean stop.
//! - [`epoch_cache`]: the leader epoch history and `leader-epoch-checkpoint`.
//! - [`producer_state`]: idempotent-producer epochs, sequences and duplicate detection, the
//!   open transactions and the last stable offset, with `.snapshot` files.
//! - [`control`]: transaction markers (control batches): encode and decode.
//! - [`checkpoint`]: atomic writes of small control files.
//! - [`config`]: [`LogConfig`] and [`FlushPolicy`] with Kafka's defaults.
//! - [`partition_log`]: [`PartitionLog`], the log of one partition (append, read,
//!   retention, truncation, flush), one file per job.
//! - [`dump`]: prints and validates a partition directory or a segment file.
//! - [`error`]: [`LogError`] and its mapping to Kafka error codes.
//!
//! What always holds: batches are stored exactly as the producer sent them except for the
//! broker-owned header fields (base offset, leader epoch, and for LogAppendTime the
//! timestamp type, max timestamp and CRC); offsets only grow; indexes are caches that
//! recovery can rebuild from the `.log` files.

pub mod batch;
pub mod builder;
pub mod checkpoint;
pub mod cleaner;
pub mod compress;
pub mod config;
pub mod control;
pub mod decompress;
pub mod dump;
pub mod epoch_cache;
pub mod error;
pub mod index;
pub mod partition_log;
pub mod producer_state;
pub mod records;
pub mod recovery;
pub mod rewrite;
pub mod scan;
pub mod segment;
#[cfg(test)]
mod test_util;
pub mod txn_index;
pub mod validate;
pub mod varint;

pub use batch::{assign_offsets, parse_header, validate_producer_batches, BatchError, BatchHeader};
pub use builder::RecordBatchBuilder;
pub use compress::Codec;
pub use config::{CompactionConfig, FlushPolicy, LogConfig};
pub use dump::{dump_path, DumpSummary};
pub use epoch_cache::{EpochEntry, LeaderEpochCache};
pub use error::LogError;
pub use partition_log::{AppendInfo, PartitionLog, ReadPlan, ReadResult};
pub use producer_state::ProducerStateManager;
pub use segment::Segment;
