//! Topic configs: the keys a topic accepts, their defaults (from the broker config), how
//! each is validated, and the effective settings a partition log runs with.
//!
//! Invariant: a topic's stored overrides only ever hold keys listed in [`TOPIC_CONFIGS`]
//! with values that passed [`validate`], so turning them into [`TopicSettings`] cannot fail.

use std::collections::BTreeMap;

use crate::config::Config;

/// The type a config reports in DescribeConfigs (Kafka's ConfigType ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
}

/// One topic config key.
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigKind,
    /// The broker config it defaults to, as Kafka names it (a synonym in DescribeConfigs).
    pub broker_synonym: &'static str,
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    kind: ConfigKind,
    broker_synonym: &'static str,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        kind,
        broker_synonym,
        doc,
    }
}

/// Every topic config this broker understands.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        ConfigKind::String,
        "log.cleanup.policy",
        "Only \"delete\": whole segments are deleted by retention.",
    ),
    def(
        "compression.type",
        ConfigKind::String,
        "compression.type",
        "Only \"producer\": batches are stored as the producer compressed them.",
    ),
    def(
        "max.message.bytes",
        ConfigKind::Int,
        "message.max.bytes",
        "The largest record batch size allowed.",
    ),
    def(
        "message.timestamp.type",
        ConfigKind::String,
        "log.message.timestamp.type",
        "CreateTime or LogAppendTime.",
    ),
    def(
        "min.insync.replicas",
        ConfigKind::Int,
        "min.insync.replicas",
        "Replicas that must acknowledge an acks=all write.",
    ),
    def(
        "retention.bytes",
        ConfigKind::Long,
        "log.retention.bytes",
        "Size above which old segments are deleted; -1 for no limit.",
    ),
    def(
        "retention.ms",
        ConfigKind::Long,
        "log.retention.ms",
        "Age after which old segments are deleted; -1 to keep forever.",
    ),
    def(
        "segment.bytes",
        ConfigKind::Int,
        "log.segment.bytes",
        "Size at which a new segment is started.",
    ),
    def(
        "unclean.leader.election.enable",
        ConfigKind::Boolean,
        "unclean.leader.election.enable",
        "Whether an out-of-sync replica may become leader.",
    ),
];

/// The definition of `key`, if it is a topic config.
pub fn lookup(key: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == key)
}

/// The broker-level default of a topic config, as a string.
pub fn broker_default(config: &Config, key: &str) -> String {
    match key {
        "cleanup.policy" => "delete".into(),
        "compression.type" => "producer".into(),
        "max.message.bytes" => config.max_message_bytes.to_string(),
        "message.timestamp.type" => "CreateTime".into(),
        "min.insync.replicas" => config.min_insync_replicas.to_string(),
        "retention.bytes" => config.retention_bytes.unwrap_or(-1).to_string(),
        "retention.ms" => config
            .retention_time
            .map(|d| d.as_millis() as i64)
            .unwrap_or(-1)
            .to_string(),
        "segment.bytes" => config.segment_size.to_string(),
        "unclean.leader.election.enable" => "false".into(),
        _ => String::new(),
    }
}

/// Checks one override; the error says what is accepted.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let Some(d) = lookup(key) else {
        return Err(format!("unknown topic config '{key}'"));
    };
    let long = |min: i64| -> Result<(), String> {
        match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            _ => Err(format!(
                "invalid value '{value}' for {key}: expected an integer >= {min}"
            )),
        }
    };
    match key {
        "cleanup.policy" if value != "delete" => {
            Err(format!("invalid value '{value}' for cleanup.policy: only 'delete' is supported"))
        }
        "compression.type" if value != "producer" => Err(format!(
            "invalid value '{value}' for compression.type: only 'producer' is supported (batches are kept as sent)"
        )),
        "message.timestamp.type" if value != "CreateTime" && value != "LogAppendTime" => Err(format!(
            "invalid value '{value}' for message.timestamp.type: expected CreateTime or LogAppendTime"
        )),
        "max.message.bytes" => long(0).and_then(|_| {
            value
                .trim()
                .parse::<i32>()
                .map(|_| ())
                .map_err(|_| format!("invalid value '{value}' for {key}: out of range"))
        }),
        "min.insync.replicas" => long(1),
        "retention.bytes" | "retention.ms" => long(-1),
        "segment.bytes" => long(14).and_then(|_| {
            value
                .trim()
                .parse::<i32>()
                .map(|_| ())
                .map_err(|_| format!("invalid value '{value}' for {key}: out of range"))
        }),
        _ if d.kind == ConfigKind::Boolean && value != "true" && value != "false" => {
            Err(format!("invalid value '{value}' for {key}: expected true or false"))
        }
        _ => Ok(()),
    }
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
            retention_ms: Some(num("retention.ms")).filter(|v| *v >= 0),
            retention_bytes: Some(num("retention.bytes")).filter(|v| *v >= 0),
            segment_bytes: num("segment.bytes").max(14) as u64,
            max_message_bytes: num("max.message.bytes").max(0) as usize,
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            min_insync_replicas: num("min.insync.replicas").max(1) as i32,
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
}
