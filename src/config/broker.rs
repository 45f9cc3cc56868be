//! The broker configs DescribeConfigs reports for a broker resource, built from the
//! running [`Config`]: every value this node really runs with that Kafka has a name for.
//!
//! Invariant: every value is computed from the `Config` the node was started with (never
//! written down here), and its source is DEFAULT_CONFIG exactly when [`Config::default`]
//! gives the same value, STATIC_BROKER_CONFIG otherwise. The broker synonyms of the topic
//! configs come from [`TOPIC_CONFIGS`], so a topic config and its broker default cannot
//! disagree. Names are unique and listed in name order.

use super::topic::TOPIC_CONFIGS;
use super::{Config, ConfigKind, ConfigSource, FlushPolicy};

/// One broker config as this node runs with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub name: &'static str,
    pub kind: ConfigKind,
    /// `None` where the node has no value (Kafka's null).
    pub value: Option<String>,
    pub source: ConfigSource,
    pub doc: &'static str,
}

/// A broker config that is not the broker synonym of a topic config.
struct BrokerConfigDef {
    name: &'static str,
    kind: ConfigKind,
    doc: &'static str,
    /// The value, from the running config.
    value: fn(&Config) -> Option<String>,
    /// The value is this node's own (its addresses, its directory, a flush interval only
    /// set by one policy), with no built-in default to compare with: always reported as
    /// STATIC_BROKER_CONFIG.
    always_static: bool,
}

const fn def(
    name: &'static str,
    kind: ConfigKind,
    doc: &'static str,
    value: fn(&Config) -> Option<String>,
) -> BrokerConfigDef {
    BrokerConfigDef {
        name,
        kind,
        doc,
        value,
        always_static: false,
    }
}

const fn own(
    name: &'static str,
    kind: ConfigKind,
    doc: &'static str,
    value: fn(&Config) -> Option<String>,
) -> BrokerConfigDef {
    BrokerConfigDef {
        always_static: true,
        ..def(name, kind, doc, value)
    }
}

fn millis(d: std::time::Duration) -> Option<String> {
    Some(d.as_millis().to_string())
}

/// The broker configs besides the topic configs' broker synonyms, by name.
const BROKER_CONFIGS: &[BrokerConfigDef] = &[
    own(
        "advertised.listeners",
        ConfigKind::String,
        "The address clients are told to use.",
        |c| {
            Some(format!(
                "PLAINTEXT://{}:{}",
                c.server.advertised_host, c.server.port
            ))
        },
    ),
    def(
        "auto.create.topics.enable",
        ConfigKind::Boolean,
        "Create unknown topics on first use (auto_create_topics).",
        |c| Some(c.auto_create_topics.to_string()),
    ),
    def(
        "broker.id",
        ConfigKind::Int,
        "This broker's id (cluster.node_id).",
        |c| Some(c.node_id().to_string()),
    ),
    def(
        "default.replication.factor",
        ConfigKind::Int,
        "Replication factor of auto-created topics (default_replication_factor).",
        |c| Some(c.default_replication_factor.to_string()),
    ),
    def(
        "group.initial.rebalance.delay.ms",
        ConfigKind::Int,
        "How long a new group waits for more members (group_initial_rebalance_delay).",
        |c| millis(c.groups.initial_rebalance_delay),
    ),
    def(
        "group.max.session.timeout.ms",
        ConfigKind::Int,
        "Largest session timeout a member may ask for (group_max_session_timeout).",
        |c| millis(c.groups.max_session_timeout),
    ),
    def(
        "group.min.session.timeout.ms",
        ConfigKind::Int,
        "Smallest session timeout a member may ask for (group_min_session_timeout).",
        |c| millis(c.groups.min_session_timeout),
    ),
    own(
        "listeners",
        ConfigKind::String,
        "The address the broker listens on (server.host, server.port).",
        |c| Some(format!("PLAINTEXT://{}:{}", c.server.host, c.server.port)),
    ),
    def(
        "log.cleaner.backoff.ms",
        ConfigKind::Long,
        "Pause of the log cleaner when no log is due (cleaner.backoff).",
        |c| millis(c.cleaner.backoff),
    ),
    def(
        "log.cleaner.dedupe.buffer.size",
        ConfigKind::Long,
        "Memory for the key map of one cleaning (cleaner.dedupe_buffer_size).",
        |c| Some(c.cleaner.dedupe_buffer_bytes.to_string()),
    ),
    def(
        "log.cleaner.enable",
        ConfigKind::Boolean,
        "Whether the log cleaner compacts topics with cleanup.policy=compact (cleaner.enabled).",
        |c| Some(c.cleaner.enabled.to_string()),
    ),
    def(
        "log.cleaner.io.max.bytes.per.second",
        ConfigKind::Double,
        "I/O rate limit of the log cleaner (cleaner.io_max_bytes_per_second).",
        |c| {
            Some(
                c.cleaner
                    .io_max_bytes_per_second
                    .map_or(f64::MAX, |n| n as f64)
                    .to_string(),
            )
        },
    ),
    def(
        "log.cleaner.threads",
        ConfigKind::Int,
        "Threads of the log cleaner (one).",
        |_| Some("1".to_string()),
    ),
    own(
        "log.dirs",
        ConfigKind::String,
        "Partition data directory (data_dir).",
        |c| Some(c.data_dir.display().to_string()),
    ),
    def(
        "log.flush.interval.messages",
        ConfigKind::Long,
        "Records between fsyncs (flush.policy).",
        |c| {
            Some(match c.flush {
                FlushPolicy::Always => "1".to_string(),
                FlushPolicy::EveryMessages(n) => n.to_string(),
                _ => i64::MAX.to_string(),
            })
        },
    ),
    own(
        "log.flush.interval.ms",
        ConfigKind::Long,
        "Milliseconds between fsyncs (flush.policy interval).",
        |c| match c.flush {
            FlushPolicy::Interval(d) => millis(d),
            _ => None,
        },
    ),
    def(
        "log.retention.check.interval.ms",
        ConfigKind::Long,
        "How often retention runs (retention_check_interval).",
        |c| millis(c.retention_check_interval),
    ),
    def(
        "node.id",
        ConfigKind::Int,
        "This broker's id (cluster.node_id).",
        |c| Some(c.node_id().to_string()),
    ),
    def(
        "num.partitions",
        ConfigKind::Int,
        "Partitions of auto-created topics (default_partitions).",
        |c| Some(c.default_partitions.to_string()),
    ),
    def(
        "offsets.topic.num.partitions",
        ConfigKind::Int,
        "Partitions of __consumer_offsets (offsets_topic_partitions).",
        |c| Some(c.groups.offsets_topic_partitions.to_string()),
    ),
    def(
        "offsets.topic.replication.factor",
        ConfigKind::Short,
        "Replicas of __consumer_offsets (offsets_topic_replication_factor; \
         default_replication_factor when -1).",
        |c| Some(c.groups.offsets_topic_replication_factor.to_string()),
    ),
    def(
        "replica.lag.time.max.ms",
        ConfigKind::Long,
        "A follower this long behind the leader leaves the ISR (replica_lag_time_max).",
        |c| millis(c.replica_lag_time_max),
    ),
    def(
        "socket.request.max.bytes",
        ConfigKind::Int,
        "Largest request accepted (server.max_request_bytes).",
        |c| Some(c.server.max_request_bytes.to_string()),
    ),
    def(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        ConfigKind::Int,
        "How often transactions open longer than their timeout are aborted, and idle \
         transactional ids expired (transaction_abort_timed_out_interval).",
        |c| millis(c.transactions.abort_timed_out_interval),
    ),
    def(
        "transaction.max.timeout.ms",
        ConfigKind::Int,
        "The largest transaction.timeout.ms a producer may use (transaction_max_timeout).",
        |c| millis(c.transactions.max_timeout),
    ),
    def(
        "transaction.state.log.num.partitions",
        ConfigKind::Int,
        "Partitions of __transaction_state (transaction_state_partitions).",
        |c| Some(c.transactions.state_partitions.to_string()),
    ),
    def(
        "transaction.state.log.replication.factor",
        ConfigKind::Short,
        "Replicas of __transaction_state (transaction_state_replication_factor; \
         default_replication_factor when -1).",
        |c| Some(c.transactions.state_replication_factor.to_string()),
    ),
    def(
        "transactional.id.expiration.ms",
        ConfigKind::Int,
        "A transactional id idle this long is removed (transactional_id_expiration).",
        |c| millis(c.transactions.id_expiration),
    ),
];

/// Every broker config of a node running with `config`, in name order.
pub fn broker_configs(config: &Config) -> Vec<BrokerConfig> {
    let builtin = Config::default();
    let own = BROKER_CONFIGS.iter().map(|d| {
        let value = (d.value)(config);
        let source = if d.always_static || value.is_none() {
            ConfigSource::StaticBroker
        } else {
            ConfigSource::of_broker_value(&value, &(d.value)(&builtin))
        };
        BrokerConfig {
            name: d.name,
            kind: d.kind,
            value,
            source,
            doc: d.doc,
        }
    });
    let synonyms = TOPIC_CONFIGS.iter().map(|d| {
        let value = (d.default)(config);
        BrokerConfig {
            name: d.broker_synonym,
            kind: d.kind,
            source: ConfigSource::of_broker_value(&value, &(d.default)(&builtin)),
            value: Some(value),
            doc: d.broker_doc,
        }
    });
    let mut all: Vec<BrokerConfig> = own.chain(synonyms).collect();
    all.sort_by_key(|c| c.name);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node1() -> Config {
        Config::parse(
            include_str!("../../configs/broker-cluster-node1.json"),
            "broker-cluster-node1.json",
        )
        .unwrap()
    }

    fn get<'a>(configs: &'a [BrokerConfig], name: &str) -> &'a BrokerConfig {
        configs
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
    }

    #[test]
    fn a_cluster_node_reports_what_it_runs_with() {
        let configs = broker_configs(&node1());
        for (name, value) in [
            ("default.replication.factor", "3"),
            ("min.insync.replicas", "2"),
            ("offsets.topic.replication.factor", "3"),
            ("broker.id", "1"),
            ("node.id", "1"),
        ] {
            let c = get(&configs, name);
            assert_eq!(c.value.as_deref(), Some(value), "{name}");
        }
        for name in [
            "default.replication.factor",
            "min.insync.replicas",
            "offsets.topic.replication.factor",
        ] {
            assert_eq!(
                get(&configs, name).source,
                ConfigSource::StaticBroker,
                "{name}"
            );
        }
        // Configured to the built-in value: still DEFAULT_CONFIG.
        assert_eq!(
            get(&configs, "log.retention.ms").source,
            ConfigSource::Default
        );
        assert_eq!(
            get(&configs, "replica.lag.time.max.ms").value.as_deref(),
            Some("30000")
        );
    }

    #[test]
    fn the_built_in_defaults_report_default_config() {
        let configs = broker_configs(&Config::default());
        for c in &configs {
            let own = [
                "advertised.listeners",
                "listeners",
                "log.dirs",
                "log.flush.interval.ms",
            ];
            let expected = if own.contains(&c.name) {
                ConfigSource::StaticBroker
            } else {
                ConfigSource::Default
            };
            assert_eq!(c.source, expected, "{}", c.name);
        }
        assert_eq!(
            get(&configs, "default.replication.factor").value.as_deref(),
            Some("1")
        );
        assert_eq!(get(&configs, "log.flush.interval.ms").value, None);
    }

    #[test]
    fn names_are_unique_sorted_and_cover_every_topic_synonym() {
        let configs = broker_configs(&Config::default());
        let names: Vec<&str> = configs.iter().map(|c| c.name).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        for d in TOPIC_CONFIGS {
            let c = get(&configs, d.broker_synonym);
            assert_eq!(c.value, Some((d.default)(&Config::default())));
            assert_eq!(c.kind, d.kind);
        }
    }
}
