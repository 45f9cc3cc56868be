//! The broker configuration: what a node runs with, and the configs it reports.
//!
//! - [`Config`] and its sections (this file): the values a running node uses.
//! - [`file`]: the guide's JSON format, its defaults and validation.
//! - [`topic`]: the topic configs (one definition per key) and a topic's effective settings.
//! - [`broker`]: the broker configs DescribeConfigs reports, built from the running `Config`.
//!
//! Invariant: a [`Config`] that exists is valid. Loading refuses unknown fields, wrong
//! types and out-of-range values with one line naming the file and the field, before the
//! broker creates any directory.

pub mod broker;
pub mod file;
pub mod topic;

pub use file::parse_duration;
pub use topic::COMPRESSION_TYPES;

use std::path::PathBuf;
use std::time::Duration;

/// A configuration error: the file, the field and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub field: String,
    pub message: String,
}

/// When the broker forces appended data to disk (fdatasync). Kafka's default is to leave it
/// to the page cache and rely on replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Never fsync on the write path (Kafka's default); the OS writes back dirty pages.
    Never,
    /// fsync after every N appended records (Kafka's `flush.messages`).
    EveryMessages(u64),
    /// fsync every interval, from a background task (Kafka's `flush.ms`).
    Interval(Duration),
    /// fsync before acknowledging every produce.
    Always,
}

/// The whole broker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Partition data directory.
    pub data_dir: PathBuf,
    pub max_topic_partitions: i32,
    pub segment_size: u64,
    /// `None` means keep forever.
    pub retention_time: Option<Duration>,
    /// `None` means no size limit.
    pub retention_bytes: Option<i64>,
    pub retention_check_interval: Duration,
    pub default_partitions: i32,
    pub auto_create_topics: bool,
    pub max_message_bytes: i32,
    pub flush: FlushPolicy,
    /// Replicas of a new topic when CreateTopics leaves it to the broker (-1).
    pub default_replication_factor: i16,
    /// The default of the topic config `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// A follower that has not caught up with the leader for this long leaves the ISR
    /// (Kafka's `replica.lag.time.max.ms`).
    pub replica_lag_time_max: Duration,
    /// The default `cleanup.policy` of topics (Kafka's `log.cleanup.policy`).
    pub cleanup_policy: String,
    /// The default `compression.type` of topics.
    pub compression_type: String,
    /// The default `segment.ms` (Kafka's `log.roll.ms`).
    pub segment_roll_time: Duration,
    pub cleaner: CleanerConfig,
    pub groups: GroupConfig,
    pub transactions: TransactionConfig,
    pub server: ServerConfig,
    pub cluster: ClusterConfig,
}

/// The log cleaner, which compacts topics with `cleanup.policy=compact` (Kafka's
/// `log.cleaner.*`), and the broker defaults of the compaction topic configs.
#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// Whether the cleaner runs (Kafka's `log.cleaner.enable`).
    pub enabled: bool,
    /// Pause between two looks for a log to clean when none was due (`log.cleaner.backoff.ms`).
    pub backoff: Duration,
    /// Memory for the key -> offset map of one cleaning (`log.cleaner.dedupe.buffer.size`);
    /// a dirty range with more keys than fit is cleaned in several passes.
    pub dedupe_buffer_bytes: usize,
    /// Read and write rate limit of the cleaner (`log.cleaner.io.max.bytes.per.second`);
    /// `None` for no limit.
    pub io_max_bytes_per_second: Option<u64>,
    /// Default `min.cleanable.dirty.ratio` (`log.cleaner.min.cleanable.ratio`).
    pub min_cleanable_ratio: f64,
    /// Default `delete.retention.ms` (`log.cleaner.delete.retention.ms`).
    pub delete_retention: Duration,
    /// Default `min.compaction.lag.ms`.
    pub min_compaction_lag: Duration,
    /// Default `max.compaction.lag.ms`; `None` for no limit.
    pub max_compaction_lag: Option<Duration>,
}

/// Consumer group coordination (Kafka's `offsets.topic.num.partitions`,
/// `group.initial.rebalance.delay.ms`, `group.min/max.session.timeout.ms`).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub offsets_topic_partitions: i32,
    /// Replicas of `__consumer_offsets`; -1 takes `default_replication_factor`.
    pub offsets_topic_replication_factor: i16,
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
}

/// The transaction coordinator (Kafka's `transaction.max.timeout.ms`,
/// `transactional.id.expiration.ms`, `transaction.state.log.*`,
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
#[derive(Debug, Clone)]
pub struct TransactionConfig {
    /// The largest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout: Duration,
    /// An id idle this long (no transaction open) is removed.
    pub id_expiration: Duration,
    pub state_partitions: i32,
    /// Replicas of `__transaction_state` (-1 in the file: `default_replication_factor`).
    pub state_replication_factor: i16,
    /// How often transactions open longer than their timeout are looked for and aborted
    /// (idle ids are expired on the same tick).
    pub abort_timed_out_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address the listener binds to.
    pub host: String,
    pub port: u16,
    /// Host clients are told to connect to in Metadata.
    pub advertised_host: String,
    pub log_file: Option<PathBuf>,
    pub max_request_bytes: usize,
}

/// The guide's `cluster` section. Parsed and validated now; the Raft cluster uses it.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub enabled: bool,
    pub node_id: i32,
    pub raft_address: Option<String>,
    pub initial_members: Vec<String>,
    pub data_dir: Option<PathBuf>,
    pub election_rtt: u64,
    pub heartbeat_rtt: u64,
    pub rtt_ms: u64,
    pub check_quorum: bool,
    pub snapshot_entries: u64,
    pub compaction_overhead: u64,
}

impl Config {
    /// This broker's id (the Raft node id once the cluster exists; 1 on a single node).
    pub fn node_id(&self) -> i32 {
        self.cluster.node_id
    }
}

/// The type a config reports in DescribeConfigs (Kafka's ConfigType ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Where a config's value comes from (Kafka's ConfigSource ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// A topic's own override.
    DynamicTopic = 1,
    /// The broker's config file changed the built-in default.
    StaticBroker = 4,
    /// The built-in default ([`Config::default`]).
    Default = 5,
}

impl ConfigSource {
    /// The source of a broker-level value: DEFAULT_CONFIG when it is the built-in
    /// default's, STATIC_BROKER_CONFIG when the config file changed it.
    pub fn of_broker_value<T: PartialEq + ?Sized>(value: &T, builtin: &T) -> ConfigSource {
        if value == builtin {
            ConfigSource::Default
        } else {
            ConfigSource::StaticBroker
        }
    }
}
