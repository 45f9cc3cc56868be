//! The log cleaner: compaction of logs whose topic has `cleanup.policy=compact`, after
//! Apache Kafka's `LogCleaner`.
//!
//! - `offset_map`: the key -> latest offset map of a dirty range, with bounded memory.
//! - `clean`: one cleaning of one log: the map, then the rewrite of segment groups.
//! - `swap`: the crash-safe replacement of a group by its rewrite, and its recovery.
//! - `throttle`: the I/O rate limit.
//! - `txn`: which batches belong to aborted transactions and which markers may go.
//!
//! What belongs to the log itself (which range is cleanable, the swap under the log's lock,
//! the cleaner checkpoint) is `partition_log::compact`; picking the dirtiest log and the
//! background thread belong to the broker.

pub mod clean;
pub mod offset_map;
pub mod swap;
pub mod throttle;
pub mod txn;

pub use clean::{CleanJob, CleanStats, CleanedGroup, SegmentFile, ATTR_DELETE_HORIZON};
pub use throttle::Throttle;
