//! Per-partition log settings ([`LogConfig`]) and the durability policy ([`FlushPolicy`]),
//! with Apache Kafka's defaults.
//!
//! Invariant: a `PartitionLog` only ever runs with a config that passed
//! [`LogConfig::validate`], so segment positions fit the 4-byte index fields and every size
//! is positive where it must be.

use super::batch::HEADER_SIZE;
use super::compress::Codec;
use super::error::LogError;
use super::index::{OFFSET_ENTRY_SIZE, TIME_ENTRY_SIZE};

/// When appended data is forced to disk with `fdatasync`.
///
/// Like Kafka, the default is [`FlushPolicy::Never`]: durability comes from replication and
/// the OS page cache writes data back on its own schedule. A failed flush takes the log
/// offline (see `LogError::Offline`) so that nothing is acknowledged that may be lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// Leave it to the OS page cache (Kafka's default `flush.messages` = `flush.ms` = max).
    #[default]
    Never,
    /// fsync once this many records were appended since the last flush (Kafka
    /// `flush.messages`); checked after each append, inside the append call.
    EveryMessages(u64),
    /// fsync when this many milliseconds passed since the last flush (Kafka `flush.ms`);
    /// done by `PartitionLog::flush_if_due`, which a background task calls.
    IntervalMs(u64),
    /// fsync before every append returns (Kafka `flush.messages=1`).
    Always,
}

/// How a compacted log is cleaned (the topic's compaction configs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionConfig {
    /// Clean once this share of the cleanable log is dirty (`min.cleanable.dirty.ratio`).
    pub min_cleanable_ratio: f64,
    /// Records younger than this are not compacted (`min.compaction.lag.ms`).
    pub min_lag_ms: i64,
    /// A dirty segment older than this is cleaned whatever the ratio
    /// (`max.compaction.lag.ms`).
    pub max_lag_ms: i64,
    /// Tombstones stay this long after the cleaner first saw them (`delete.retention.ms`).
    pub delete_retention_ms: i64,
}

impl Default for CompactionConfig {
    /// Kafka's defaults: ratio 0.5, no minimum lag, no maximum lag, tombstones kept a day.
    fn default() -> Self {
        CompactionConfig {
            min_cleanable_ratio: 0.5,
            min_lag_ms: 0,
            max_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 60 * 60 * 1000,
        }
    }
}

/// Settings of one partition log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would exceed this (Kafka `segment.bytes`).
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch is this old (Kafka `segment.ms`); `None`
    /// never rolls by time.
    pub segment_ms: Option<i64>,
    /// Retention deletes old segments (`cleanup.policy` holds `delete`).
    pub delete: bool,
    /// The log cleaner keeps the latest record of each key (`cleanup.policy` holds
    /// `compact`), with these settings.
    pub compaction: Option<CompactionConfig>,
    /// The codec batches are stored in (`compression.type`); `None` stores them as the
    /// producer compressed them.
    pub compression: Option<Codec>,
    /// Delete sealed segments whose newest record is older than this; `None` (or a negative
    /// value) keeps data forever (Kafka `retention.ms`).
    pub retention_ms: Option<i64>,
    /// Delete the oldest segments while the log exceeds this by at least a whole segment;
    /// `None` (or negative) means no size limit (Kafka `retention.bytes`).
    pub retention_bytes: Option<i64>,
    /// Largest record batch accepted (Kafka `max.message.bytes`).
    pub max_message_bytes: usize,
    /// Stamp batches with the broker's clock (Kafka `message.timestamp.type=LogAppendTime`).
    pub message_timestamp_type_log_append: bool,
    /// Bytes of log between two index entries (Kafka `index.interval.bytes`).
    pub index_interval_bytes: usize,
    /// Preallocated size of each index file of the active segment (Kafka
    /// `segment.index.bytes`).
    pub index_max_bytes: usize,
    /// When to fsync.
    pub flush: FlushPolicy,
}

impl Default for LogConfig {
    /// Apache Kafka's defaults: 1 GiB segments, 7 days, no size limit, 1048588-byte batches,
    /// CreateTime, 4 KiB index interval, 10 MiB indexes, no forced flush, the delete policy,
    /// batches kept as sent; except that it never rolls by time (the broker sets `segment_ms`
    /// from the topic's `segment.ms`, 7 days by default).
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: None,
            delete: true,
            compaction: None,
            compression: None,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            max_message_bytes: 1_048_588,
            message_timestamp_type_log_append: false,
            index_interval_bytes: 4096,
            index_max_bytes: 10 * 1024 * 1024,
            flush: FlushPolicy::Never,
        }
    }
}

impl LogConfig {
    /// Checks every value; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<(), LogError> {
        let max_position = i32::MAX as u64;
        if self.segment_bytes < HEADER_SIZE as u64 || self.segment_bytes > max_position {
            return Err(LogError::InvalidConfig(format!(
                "segment_bytes is {} but must be between {HEADER_SIZE} and {max_position}",
                self.segment_bytes
            )));
        }
        if self.max_message_bytes < HEADER_SIZE || self.max_message_bytes as u64 > max_position {
            return Err(LogError::InvalidConfig(format!(
                "max_message_bytes is {} but must be between {HEADER_SIZE} and {max_position}",
                self.max_message_bytes
            )));
        }
        let min_index = 4 * TIME_ENTRY_SIZE.max(OFFSET_ENTRY_SIZE);
        if self.index_max_bytes < min_index || self.index_max_bytes as u64 > max_position {
            return Err(LogError::InvalidConfig(format!(
                "index_max_bytes is {} but must be between {min_index} and {max_position}",
                self.index_max_bytes
            )));
        }
        match self.flush {
            FlushPolicy::EveryMessages(0) => Err(LogError::InvalidConfig(
                "flush policy EveryMessages(0) would never flush; use Always for every message"
                    .to_string(),
            )),
            _ => Ok(()),
        }
    }

    /// The retention time if one applies (only with the `delete` policy).
    pub fn effective_retention_ms(&self) -> Option<i64> {
        self.retention_ms.filter(|ms| self.delete && *ms >= 0)
    }

    /// The retention size if one applies (only with the `delete` policy).
    pub fn effective_retention_bytes(&self) -> Option<i64> {
        self.retention_bytes.filter(|b| self.delete && *b >= 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_kafkas() {
        let c = LogConfig::default();
        c.validate().unwrap();
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.flush, FlushPolicy::Never);
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_field_name() {
        let c = LogConfig {
            segment_bytes: 1 << 40,
            ..LogConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("segment_bytes"), "{e}");
        let c = LogConfig {
            flush: FlushPolicy::EveryMessages(0),
            ..LogConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
