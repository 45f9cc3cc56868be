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
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const RETENTION_MS: &str = "retention.ms";
pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// What values a topic config accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Exactly this value; the note says why no other is supported.
    Only(&'static str, &'static str),
    /// One of two values.
    Either(&'static str, &'static str),
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
            Check::Only(only, _) if value == only => Ok(()),
            Check::Only(only, note) => Err(format!("only '{only}' is supported{note}")),
            Check::Either(a, b) if value == a || value == b => Ok(()),
            Check::Either(a, b) => Err(format!("expected {a} or {b}")),
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

/// Every topic config this broker understands, by name.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: CLEANUP_POLICY,
        kind: ConfigKind::String,
        broker_synonym: "log.cleanup.policy",
        broker_doc: "Old segments are deleted.",
        doc: "Only \"delete\": whole segments are deleted by retention.",
        default: |_| "delete".into(),
        check: Check::Only("delete", ""),
    },
    TopicConfigDef {
        name: COMPRESSION_TYPE,
        kind: ConfigKind::String,
        broker_synonym: "compression.type",
        broker_doc: "Batches are stored as the producer compressed them.",
        doc: "Only \"producer\": batches are stored as the producer compressed them.",
        default: |_| "producer".into(),
        check: Check::Only("producer", " (batches are kept as sent)"),
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
        check: Check::Either("CreateTime", "LogAppendTime"),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
    pub segment_bytes: u64,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub min_insync_replicas: i32,
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
        TopicSettings {
            retention_ms: Some(num(RETENTION_MS)).filter(|v| *v >= 0),
            retention_bytes: Some(num(RETENTION_BYTES)).filter(|v| *v >= 0),
            segment_bytes: num(SEGMENT_BYTES).max(14) as u64,
            max_message_bytes: num(MAX_MESSAGE_BYTES).max(0) as usize,
            log_append_time: get(MESSAGE_TIMESTAMP_TYPE) == "LogAppendTime",
            min_insync_replicas: num(MIN_INSYNC_REPLICAS).max(1) as i32,
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
                Check::Only(..) | Check::Either(..) => ConfigKind::String,
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
            MAX_MESSAGE_BYTES,
            MESSAGE_TIMESTAMP_TYPE,
            MIN_INSYNC_REPLICAS,
            RETENTION_BYTES,
            RETENTION_MS,
            SEGMENT_BYTES,
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
