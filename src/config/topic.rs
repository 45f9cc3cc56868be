//! Topic configs: one definition per key — its name, type, broker synonym, documentation,
//! default (from the running [`Config`]) and check — and the effective settings a
//! partition log runs with.
//!
//! Invariant: a topic's stored overrides only ever hold keys listed in [`TOPIC_CONFIGS`]
//! with values that passed [`validate`], so turning them into [`TopicSettings`] cannot fail.
//! Every other place that names a topic config key uses the constants below, and every
//! listing of topic configs (DescribeConfigs, CreateTopics, the broker synonyms) iterates
//! [`TOPIC_CONFIGS`].

use std::collections::BTreeMap;

use super::Config;
pub use super::{ConfigKind, ConfigSource};

pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub const COMPRESSION_TYPE: &str = "compression.type";
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const RETENTION_MS: &str = "retention.ms";
pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const SEGMENT_MS: &str = "segment.ms";
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// What values a topic config accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// One of these values.
    OneOf(&'static [&'static str]),
    /// A non-empty comma-separated list of these values (Kafka's LIST type).
    ListOf(&'static [&'static str]),
    /// A number between these bounds (inclusive).
    Double { min: f64, max: f64 },
    /// An integer (i64) of at least `min`.
    Long { min: i64 },
    /// An integer of at least `min` that fits an i32.
    Int { min: i64 },
    /// `true` or `false`.
    Boolean,
}

impl Check {
    /// Checks `value`; the error is what is accepted.
    fn check(self, value: &str) -> Result<(), String> {
        let at_least = |min: i64| match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            _ => Err(format!("expected an integer >= {min}")),
        };
        match self {
            Check::OneOf(values) if values.contains(&value) => Ok(()),
            Check::OneOf(values) => Err(format!("expected one of {}", values.join(", "))),
            Check::ListOf(values) => {
                let items: Vec<&str> = value.split(',').map(str::trim).collect();
                if items.iter().all(|i| values.contains(i)) {
                    Ok(())
                } else {
                    Err(format!(
                        "expected a comma-separated list of {}",
                        values.join(", ")
                    ))
                }
            }
            Check::Double { min, max } => match value.trim().parse::<f64>() {
                Ok(v) if v >= min && v <= max => Ok(()),
                _ => Err(format!("expected a number between {min} and {max}")),
            },
            Check::Long { min } => at_least(min),
            Check::Int { min } => at_least(min).and_then(|_| {
                value
                    .trim()
                    .parse::<i32>()
                    .map(|_| ())
                    .map_err(|_| "out of range".to_string())
            }),
            Check::Boolean if value == "true" || value == "false" => Ok(()),
            Check::Boolean => Err("expected true or false".to_string()),
        }
    }
}

/// One topic config key: everything about it, in one place.
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigKind,
    /// The broker config it defaults to, as Kafka names it (a synonym in DescribeConfigs,
    /// and an entry of the broker's own configs).
    pub broker_synonym: &'static str,
    /// The documentation of the broker synonym.
    pub broker_doc: &'static str,
    pub doc: &'static str,
    /// The broker-level default, from the running config.
    pub default: fn(&Config) -> String,
    /// What an override must look like.
    pub check: Check,
}

/// The values of `compression.type`.
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Every topic config this broker understands, by name.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: CLEANUP_POLICY,
        kind: ConfigKind::List,
        broker_synonym: "log.cleanup.policy",
        broker_doc: "The default cleanup policy of topics (cleanup_policy).",
        doc:
            "\"delete\" deletes old segments by retention.ms and retention.bytes; \"compact\" \
              keeps the latest record of every key (the log cleaner); \"compact,delete\" does both.",
        default: |c| c.cleanup_policy.clone(),
        check: Check::ListOf(&["compact", "delete"]),
    },
    TopicConfigDef {
        name: COMPRESSION_TYPE,
        kind: ConfigKind::String,
        broker_synonym: "compression.type",
        broker_doc: "The default codec of topics (compression_type).",
        doc: "\"producer\" stores batches as the producer compressed them; any other codec \
              (uncompressed, gzip, snappy, lz4, zstd) recompresses batches in another codec.",
        default: |c| c.compression_type.clone(),
        check: Check::OneOf(COMPRESSION_TYPES),
    },
    TopicConfigDef {
        name: DELETE_RETENTION_MS,
        kind: ConfigKind::Long,
        broker_synonym: "log.cleaner.delete.retention.ms",
        broker_doc:
            "How long tombstones stay after the cleaner first sees them (cleaner.delete_retention).",
        doc: "How long a tombstone (a record with a null value) of a compacted topic is kept \
              after the log cleaner first saw it.",
        default: |c| ms(c.cleaner.delete_retention).to_string(),
        check: Check::Long { min: 0 },
    },
    TopicConfigDef {
        name: MAX_COMPACTION_LAG_MS,
        kind: ConfigKind::Long,
        broker_synonym: "log.cleaner.max.compaction.lag.ms",
        broker_doc: "Longest time a record stays uncompacted (cleaner.max_compaction_lag).",
        doc: "A sealed segment older than this is cleaned whatever the dirty ratio.",
        default: |c| {
            c.cleaner
                .max_compaction_lag
                .map_or(i64::MAX, ms)
                .to_string()
        },
        check: Check::Long { min: 1 },
    },
    TopicConfigDef {
        name: MAX_MESSAGE_BYTES,
        kind: ConfigKind::Int,
        broker_synonym: "message.max.bytes",
        broker_doc: "Largest record batch (max_message_bytes).",
        doc: "The largest record batch size allowed.",
        default: |c| c.max_message_bytes.to_string(),
        check: Check::Int { min: 0 },
    },
    TopicConfigDef {
        name: MESSAGE_TIMESTAMP_TYPE,
        kind: ConfigKind::String,
        broker_synonym: "log.message.timestamp.type",
        broker_doc: "Default timestamp type of topics.",
        doc: "CreateTime or LogAppendTime.",
        default: |_| "CreateTime".into(),
        check: Check::OneOf(&["CreateTime", "LogAppendTime"]),
    },
    TopicConfigDef {
        name: MIN_CLEANABLE_DIRTY_RATIO,
        kind: ConfigKind::Double,
        broker_synonym: "log.cleaner.min.cleanable.ratio",
        broker_doc: "Dirty share of a log above which it is cleaned (cleaner.min_cleanable_ratio).",
        doc: "The log cleaner cleans a compacted log once this share of it is dirty \
              (written since the last cleaning).",
        default: |c| c.cleaner.min_cleanable_ratio.to_string(),
        check: Check::Double { min: 0.0, max: 1.0 },
    },
    TopicConfigDef {
        name: MIN_COMPACTION_LAG_MS,
        kind: ConfigKind::Long,
        broker_synonym: "log.cleaner.min.compaction.lag.ms",
        broker_doc: "Shortest time a record stays uncompacted (cleaner.min_compaction_lag).",
        doc: "A record is not compacted until it is at least this old.",
        default: |c| ms(c.cleaner.min_compaction_lag).to_string(),
        check: Check::Long { min: 0 },
    },
    TopicConfigDef {
        name: MIN_INSYNC_REPLICAS,
        kind: ConfigKind::Int,
        broker_synonym: "min.insync.replicas",
        broker_doc: "Replicas that must acknowledge an acks=all write.",
        doc: "Replicas that must acknowledge an acks=all write.",
        default: |c| c.min_insync_replicas.to_string(),
        check: Check::Long { min: 1 },
    },
    TopicConfigDef {
        name: RETENTION_BYTES,
        kind: ConfigKind::Long,
        broker_synonym: "log.retention.bytes",
        broker_doc: "Size limit per partition (retention_bytes).",
        doc: "Size above which old segments are deleted; -1 for no limit.",
        default: |c| c.retention_bytes.unwrap_or(-1).to_string(),
        check: Check::Long { min: -1 },
    },
    TopicConfigDef {
        name: RETENTION_MS,
        kind: ConfigKind::Long,
        broker_synonym: "log.retention.ms",
        broker_doc: "Age limit of segments (retention_time).",
        doc: "Age after which old segments are deleted; -1 to keep forever.",
        default: |c| {
            c.retention_time
                .map(|d| d.as_millis() as i64)
                .unwrap_or(-1)
                .to_string()
        },
        check: Check::Long { min: -1 },
    },
    TopicConfigDef {
        name: SEGMENT_BYTES,
        kind: ConfigKind::Int,
        broker_synonym: "log.segment.bytes",
        broker_doc: "Segment size (segment_size).",
        doc: "Size at which a new segment is started.",
        default: |c| c.segment_size.to_string(),
        check: Check::Int { min: 14 },
    },
    TopicConfigDef {
        name: SEGMENT_MS,
        kind: ConfigKind::Long,
        broker_synonym: "log.roll.ms",
        broker_doc: "Age at which the active segment is rolled (segment_roll_time).",
        doc: "A new segment is started when the active one's first record is this old, so \
              that retention and compaction can reach it.",
        default: |c| ms(c.segment_roll_time).to_string(),
        check: Check::Long { min: 1 },
    },
    TopicConfigDef {
        name: UNCLEAN_LEADER_ELECTION_ENABLE,
        kind: ConfigKind::Boolean,
        broker_synonym: "unclean.leader.election.enable",
        broker_doc: "Whether an out-of-sync replica may become leader.",
        doc: "Whether an out-of-sync replica may become leader.",
        default: |_| "false".into(),
        check: Check::Boolean,
    },
];

/// The definition of `key`, if it is a topic config.
pub fn lookup(key: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == key)
}

/// The broker-level default of a topic config, as a string (empty for an unknown key).
pub fn broker_default(config: &Config, key: &str) -> String {
    lookup(key).map(|d| (d.default)(config)).unwrap_or_default()
}

/// Checks one override; the error says what is accepted.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let Some(d) = lookup(key) else {
        return Err(format!("unknown topic config '{key}'"));
    };
    d.check
        .check(value)
        .map_err(|accepted| format!("invalid value '{value}' for {key}: {accepted}"))
}

/// Where the broker-level default of `key` comes from: STATIC_BROKER_CONFIG when the
/// config file changed the built-in default.
pub fn broker_source(config: &Config, key: &str) -> ConfigSource {
    ConfigSource::of_broker_value(
        &broker_default(config, key),
        &broker_default(&Config::default(), key),
    )
}

/// Where the effective value of a topic config comes from.
pub fn config_source(
    config: &Config,
    overrides: &BTreeMap<String, String>,
    key: &str,
) -> ConfigSource {
    if overrides.contains_key(key) {
        ConfigSource::DynamicTopic
    } else {
        broker_source(config, key)
    }
}

/// One topic config of one topic as DescribeConfigs and CreateTopics report it.
pub struct TopicConfigValue {
    pub def: &'static TopicConfigDef,
    /// The effective value: the override, or else the broker default.
    pub value: String,
    pub source: ConfigSource,
    /// The topic's override, if it has one.
    pub override_value: Option<String>,
    pub broker_default: String,
    pub broker_source: ConfigSource,
}

/// Every topic config of a topic with these overrides, in [`TOPIC_CONFIGS`] order.
pub fn describe<'a>(
    config: &'a Config,
    overrides: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = TopicConfigValue> + 'a {
    TOPIC_CONFIGS.iter().map(move |def| {
        let broker_default = (def.default)(config);
        let override_value = overrides.get(def.name).cloned();
        TopicConfigValue {
            def,
            value: override_value
                .clone()
                .unwrap_or_else(|| broker_default.clone()),
            source: config_source(config, overrides, def.name),
            override_value,
            broker_default,
            broker_source: broker_source(config, def.name),
        }
    })
}

/// The settings a partition log of a topic runs with: overrides over broker defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub min_insync_replicas: i32,
    /// `cleanup.policy` holds `delete`.
    pub delete: bool,
    /// `cleanup.policy` holds `compact`.
    pub compact: bool,
    /// `compression.type`, one of [`COMPRESSION_TYPES`].
    pub compression_type: String,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
}

/// The effective value of `key` for a topic with these overrides.
pub fn effective_value(config: &Config, overrides: &BTreeMap<String, String>, key: &str) -> String {
    overrides
        .get(key)
        .cloned()
        .unwrap_or_else(|| broker_default(config, key))
}

impl TopicSettings {
    pub fn resolve(config: &Config, overrides: &BTreeMap<String, String>) -> TopicSettings {
        let get = |k: &str| effective_value(config, overrides, k);
        let num = |k: &str| get(k).trim().parse::<i64>().unwrap_or(-1);
        let policy = get(CLEANUP_POLICY);
        let has = |p: &str| policy.split(',').any(|i| i.trim() == p);
        TopicSettings {
            retention_ms: Some(num(RETENTION_MS)).filter(|v| *v >= 0),
            retention_bytes: Some(num(RETENTION_BYTES)).filter(|v| *v >= 0),
            segment_bytes: num(SEGMENT_BYTES).max(14) as u64,
            segment_ms: num(SEGMENT_MS).max(1),
            max_message_bytes: num(MAX_MESSAGE_BYTES).max(0) as usize,
            log_append_time: get(MESSAGE_TIMESTAMP_TYPE) == "LogAppendTime",
            min_insync_replicas: num(MIN_INSYNC_REPLICAS).max(1) as i32,
            delete: has("delete"),
            compact: has("compact"),
            compression_type: get(COMPRESSION_TYPE),
            min_cleanable_dirty_ratio: get(MIN_CLEANABLE_DIRTY_RATIO)
                .trim()
                .parse::<f64>()
                .unwrap_or(0.5),
            min_compaction_lag_ms: num(MIN_COMPACTION_LAG_MS).max(0),
            max_compaction_lag_ms: num(MAX_COMPACTION_LAG_MS).max(1),
            delete_retention_ms: num(DELETE_RETENTION_MS).max(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_broker_defaults() {
        let config = Config::default();
        let mut o = BTreeMap::new();
        let s = TopicSettings::resolve(&config, &o);
        assert_eq!(s.retention_ms, Some(168 * 3600 * 1000));
        assert_eq!(s.max_message_bytes, 1_048_588);
        o.insert("retention.ms".to_string(), "-1".to_string());
        o.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let s = TopicSettings::resolve(&config, &o);
        assert_eq!(s.retention_ms, None);
        assert!(s.log_append_time);
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("no.such.config", "1").is_err());
        assert!(validate("message.timestamp.type", "Now").is_err());
        assert!(validate("segment.bytes", "99999999999").is_err());
        assert!(validate("max.message.bytes", "10000").is_ok());
        assert!(validate("unclean.leader.election.enable", "yes").is_err());
        assert!(validate("cleanup.policy", "compact").is_ok());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "delete, compact").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("cleanup.policy", "").is_err());
        assert!(validate("compression.type", "lz4").is_ok());
        assert!(validate("compression.type", "brotli").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "0.01").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("segment.ms", "0").is_err());
    }

    #[test]
    fn cleanup_policy_and_compaction_settings_resolve() {
        let config = Config::default();
        let s = TopicSettings::resolve(&config, &BTreeMap::new());
        assert!(s.delete && !s.compact);
        assert_eq!(s.compression_type, "producer");
        assert_eq!(s.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(s.delete_retention_ms, 86_400_000);
        assert_eq!(s.max_compaction_lag_ms, i64::MAX);
        assert_eq!(s.segment_ms, 604_800_000);
        let o = BTreeMap::from([(CLEANUP_POLICY.to_string(), "compact".to_string())]);
        let s = TopicSettings::resolve(&config, &o);
        assert!(s.compact && !s.delete);
        let o = BTreeMap::from([(CLEANUP_POLICY.to_string(), "compact,delete".to_string())]);
        let s = TopicSettings::resolve(&config, &o);
        assert!(s.compact && s.delete);
    }

    #[test]
    fn every_default_passes_its_own_check_and_matches_its_kind() {
        let node = Config::parse(
            include_str!("../../configs/broker-cluster-node1.json"),
            "broker-cluster-node1.json",
        )
        .unwrap();
        for d in TOPIC_CONFIGS {
            for config in [&Config::default(), &node] {
                let value = (d.default)(config);
                assert_eq!(validate(d.name, &value), Ok(()), "{} = {value}", d.name);
            }
            let kind = match d.check {
                Check::OneOf(..) => ConfigKind::String,
                Check::ListOf(..) => ConfigKind::List,
                Check::Double { .. } => ConfigKind::Double,
                Check::Long { .. } if d.kind == ConfigKind::Int => ConfigKind::Int,
                Check::Long { .. } => ConfigKind::Long,
                Check::Int { .. } => ConfigKind::Int,
                Check::Boolean => ConfigKind::Boolean,
            };
            assert_eq!(d.kind, kind, "{}", d.name);
        }
        assert_eq!(broker_default(&node, MIN_INSYNC_REPLICAS), "2");
        assert_eq!(
            broker_source(&node, MIN_INSYNC_REPLICAS),
            ConfigSource::StaticBroker
        );
    }

    #[test]
    fn the_key_constants_are_the_table() {
        let keys = [
            CLEANUP_POLICY,
            COMPRESSION_TYPE,
            DELETE_RETENTION_MS,
            MAX_COMPACTION_LAG_MS,
            MAX_MESSAGE_BYTES,
            MESSAGE_TIMESTAMP_TYPE,
            MIN_CLEANABLE_DIRTY_RATIO,
            MIN_COMPACTION_LAG_MS,
            MIN_INSYNC_REPLICAS,
            RETENTION_BYTES,
            RETENTION_MS,
            SEGMENT_BYTES,
            SEGMENT_MS,
            UNCLEAN_LEADER_ELECTION_ENABLE,
        ];
        let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        assert_eq!(names, keys);
    }

    #[test]
    fn describe_reports_overrides_over_broker_defaults() {
        let config = Config::default();
        let o = BTreeMap::from([(RETENTION_MS.to_string(), "60000".to_string())]);
        let all: Vec<TopicConfigValue> = describe(&config, &o).collect();
        assert_eq!(all.len(), TOPIC_CONFIGS.len());
        let r = all.iter().find(|v| v.def.name == RETENTION_MS).unwrap();
        assert_eq!(
            (r.value.as_str(), r.source),
            ("60000", ConfigSource::DynamicTopic)
        );
        assert_eq!(r.broker_default, "604800000");
        assert_eq!(r.broker_source, ConfigSource::Default);
        let s = all.iter().find(|v| v.def.name == SEGMENT_BYTES).unwrap();
        assert_eq!(
            (s.override_value.as_deref(), s.source),
            (None, ConfigSource::Default)
        );
    }
}
