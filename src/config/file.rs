//! The config file: the guide's JSON format (unknown fields refused), the built-in
//! defaults, and the validation that turns the text into a [`Config`].
//!
//! Invariant: the only ways to get a [`Config`] are [`Config::load`], [`Config::parse`]
//! and [`Config::default`], and all three go through the same validation, so a `Config`
//! that exists is valid; every error names the file and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{
    CleanerConfig, ClusterConfig, Config, ConfigError, FlushPolicy, GroupConfig, ServerConfig,
    TransactionConfig,
};

impl Default for Config {
    fn default() -> Self {
        Config::from_raw(RawConfig::default(), "<defaults>")
            .unwrap_or_else(|e| unreachable!("the built-in defaults are valid: {e}"))
    }
}

// ---- the file format -------------------------------------------------------------------

/// A port written as in the guide (`"9092"`) or as a number.
#[derive(Debug, Clone)]
struct Port(i64);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Num(i64),
            Str(String),
        }
        match Either::deserialize(d)? {
            Either::Num(n) => Ok(Port(n)),
            Either::Str(s) => s
                .trim()
                .parse::<i64>()
                .map(Port)
                .map_err(|_| serde::de::Error::custom(format!("port {s:?} is not a number"))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    data_dir: String,
    max_topic_partitions: i64,
    segment_size: i64,
    retention_time: String,
    retention_bytes: i64,
    retention_check_interval: String,
    default_partitions: i64,
    auto_create_topics: bool,
    max_message_bytes: i64,
    flush: RawFlush,
    default_replication_factor: i64,
    min_insync_replicas: i64,
    replica_lag_time_max: String,
    cleanup_policy: String,
    compression_type: String,
    segment_roll_time: String,
    cleaner: RawCleaner,
    offsets_topic_partitions: i64,
    offsets_topic_replication_factor: i64,
    group_initial_rebalance_delay: String,
    group_min_session_timeout: String,
    group_max_session_timeout: String,
    transaction_max_timeout: String,
    transactional_id_expiration: String,
    transaction_state_partitions: i64,
    transaction_state_replication_factor: i64,
    transaction_abort_timed_out_interval: String,
    server: RawServer,
    cluster: RawCluster,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            data_dir: "./data".into(),
            max_topic_partitions: 1024,
            segment_size: 1 << 30,
            retention_time: "168h".into(),
            retention_bytes: -1,
            retention_check_interval: "5m".into(),
            default_partitions: 1,
            auto_create_topics: true,
            max_message_bytes: 1_048_588,
            flush: RawFlush::default(),
            default_replication_factor: 1,
            min_insync_replicas: 1,
            replica_lag_time_max: "30s".into(),
            cleanup_policy: "delete".into(),
            compression_type: "producer".into(),
            segment_roll_time: "168h".into(),
            cleaner: RawCleaner::default(),
            offsets_topic_partitions: 50,
            offsets_topic_replication_factor: -1,
            group_initial_rebalance_delay: "3s".into(),
            group_min_session_timeout: "6s".into(),
            group_max_session_timeout: "30m".into(),
            transaction_max_timeout: "15m".into(),
            transactional_id_expiration: "168h".into(),
            transaction_state_partitions: 50,
            transaction_state_replication_factor: -1,
            transaction_abort_timed_out_interval: "10s".into(),
            server: RawServer::default(),
            cluster: RawCluster::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCleaner {
    enabled: bool,
    backoff: String,
    dedupe_buffer_size: i64,
    io_max_bytes_per_second: i64,
    min_cleanable_ratio: f64,
    delete_retention: String,
    min_compaction_lag: String,
    max_compaction_lag: String,
}

impl Default for RawCleaner {
    /// Kafka's defaults, except a 32 MiB dedupe buffer (Kafka: 128 MiB over all threads)
    /// and a 5 s backoff (Kafka: 15 s).
    fn default() -> Self {
        RawCleaner {
            enabled: true,
            backoff: "5s".into(),
            dedupe_buffer_size: 32 << 20,
            io_max_bytes_per_second: -1,
            min_cleanable_ratio: 0.5,
            delete_retention: "24h".into(),
            min_compaction_lag: "0".into(),
            max_compaction_lag: "-1".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFlush {
    policy: String,
    messages: i64,
    interval: String,
}

impl Default for RawFlush {
    fn default() -> Self {
        RawFlush {
            policy: "never".into(),
            messages: 10_000,
            interval: "1s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    host: String,
    port: Port,
    advertised_host: Option<String>,
    log_file: Option<String>,
    max_request_bytes: i64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            host: "127.0.0.1".into(),
            port: Port(9092),
            advertised_host: None,
            log_file: None,
            max_request_bytes: 100 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCluster {
    enabled: bool,
    node_id: i64,
    raft_address: Option<String>,
    initial_members: Vec<String>,
    data_dir: Option<String>,
    election_rtt: i64,
    heartbeat_rtt: i64,
    rtt_ms: i64,
    check_quorum: bool,
    snapshot_entries: i64,
    compaction_overhead: i64,
}

impl Default for RawCluster {
    fn default() -> Self {
        RawCluster {
            enabled: false,
            node_id: 1,
            raft_address: None,
            initial_members: Vec::new(),
            data_dir: None,
            election_rtt: 10,
            heartbeat_rtt: 1,
            rtt_ms: 100,
            check_quorum: true,
            snapshot_entries: 10_000,
            compaction_overhead: 5_000,
        }
    }
}

/// Parses a Go-style duration: `"168h"`, `"1h30m"`, `"500ms"`, `"10s"`. `"-1"` or `"0"` are
/// accepted by callers that give them a meaning.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"168h\", \"30m\" or \"500ms\"".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{text:?} is not a duration; write e.g. \"168h\", \"30m\" or \"500ms\""
            ));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: {:?} is not a number", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "{text:?} has a number without a unit (ns, us, ms, s, m, h)"
                ))
            }
            other => {
                return Err(format!(
                    "{text:?} has an unknown unit {other:?}; use ns, us, ms, s, m or h"
                ))
            }
        };
        let nanos = number * nanos_per;
        total = (nanos < u64::MAX as f64)
            .then(|| total.checked_add(Duration::from_nanos(nanos as u64)))
            .flatten()
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    }
    Ok(total)
}

struct Check<'a> {
    file: &'a str,
}

impl Check<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn range(&self, field: &str, value: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
        if value < min || value > max {
            Err(self.err(field, format!("{value} is out of range {min}..={max}")))
        } else {
            Ok(value)
        }
    }

    fn duration(&self, field: &str, text: &str) -> Result<Duration, ConfigError> {
        parse_duration(text).map_err(|m| self.err(field, m))
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            field: "(file)".into(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(&text, &file)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let field = if path == "." || path.is_empty() {
                "(top level)".to_string()
            } else {
                path
            };
            ConfigError {
                file: file.to_string(),
                field,
                message: inner.to_string(),
            }
        })?;
        Config::from_raw(raw, file)
    }

    fn from_raw(raw: RawConfig, file: &str) -> Result<Config, ConfigError> {
        let c = Check { file };
        if raw.data_dir.trim().is_empty() {
            return Err(c.err("data_dir", "must not be empty"));
        }
        let max_topic_partitions =
            c.range("max_topic_partitions", raw.max_topic_partitions, 1, 100_000)? as i32;
        let segment_size = c.range("segment_size", raw.segment_size, 1024, i32::MAX as i64)? as u64;
        let retention_time = match raw.retention_time.trim() {
            "-1" | "" => None,
            text => Some(c.duration("retention_time", text)?),
        };
        let retention_bytes = match raw.retention_bytes {
            -1 => None,
            n if n > 0 => Some(n),
            n => {
                return Err(c.err(
                    "retention_bytes",
                    format!("{n} must be positive, or -1 for no limit"),
                ))
            }
        };
        let retention_check_interval =
            c.duration("retention_check_interval", &raw.retention_check_interval)?;
        if retention_check_interval.is_zero() {
            return Err(c.err("retention_check_interval", "must be above zero"));
        }
        let default_partitions = c.range(
            "default_partitions",
            raw.default_partitions,
            1,
            max_topic_partitions as i64,
        )? as i32;
        let max_message_bytes = c.range(
            "max_message_bytes",
            raw.max_message_bytes,
            64,
            i32::MAX as i64,
        )? as i32;
        let cleanup_policy = raw.cleanup_policy.trim().to_string();
        crate::config::topic::validate(crate::config::topic::CLEANUP_POLICY, &cleanup_policy)
            .map_err(|m| c.err("cleanup_policy", m))?;
        let compression_type = raw.compression_type.trim().to_string();
        crate::config::topic::validate(crate::config::topic::COMPRESSION_TYPE, &compression_type)
            .map_err(|m| c.err("compression_type", m))?;
        let segment_roll_time = c.duration("segment_roll_time", &raw.segment_roll_time)?;
        if segment_roll_time.is_zero() {
            return Err(c.err("segment_roll_time", "must be above zero"));
        }
        let rc = &raw.cleaner;
        let cleaner = CleanerConfig {
            enabled: rc.enabled,
            backoff: c.duration("cleaner.backoff", &rc.backoff)?,
            dedupe_buffer_bytes: c.range(
                "cleaner.dedupe_buffer_size",
                rc.dedupe_buffer_size,
                64 * 1024,
                i32::MAX as i64,
            )? as usize,
            io_max_bytes_per_second: match rc.io_max_bytes_per_second {
                -1 => None,
                n if n > 0 => Some(n as u64),
                n => {
                    return Err(c.err(
                        "cleaner.io_max_bytes_per_second",
                        format!("{n} must be positive, or -1 for no limit"),
                    ))
                }
            },
            min_cleanable_ratio: if (0.0..=1.0).contains(&rc.min_cleanable_ratio) {
                rc.min_cleanable_ratio
            } else {
                return Err(c.err(
                    "cleaner.min_cleanable_ratio",
                    format!("{} must be between 0 and 1", rc.min_cleanable_ratio),
                ));
            },
            delete_retention: c.duration("cleaner.delete_retention", &rc.delete_retention)?,
            min_compaction_lag: c.duration("cleaner.min_compaction_lag", &rc.min_compaction_lag)?,
            max_compaction_lag: match rc.max_compaction_lag.trim() {
                "-1" => None,
                text => {
                    Some(c.duration("cleaner.max_compaction_lag", text)?).filter(|d| !d.is_zero())
                }
            },
        };
        let flush = match raw.flush.policy.as_str() {
            "never" => FlushPolicy::Never,
            "always" => FlushPolicy::Always,
            "messages" => FlushPolicy::EveryMessages(c.range(
                "flush.messages",
                raw.flush.messages,
                1,
                i64::MAX,
            )? as u64),
            "interval" => {
                let every = c.duration("flush.interval", &raw.flush.interval)?;
                if every.is_zero() {
                    return Err(c.err("flush.interval", "must be above zero"));
                }
                FlushPolicy::Interval(every)
            }
            other => {
                return Err(c.err(
                    "flush.policy",
                    format!(
                        "{other:?} is not one of \"never\", \"messages\", \"interval\", \"always\""
                    ),
                ))
            }
        };
        let default_replication_factor = c.range(
            "default_replication_factor",
            raw.default_replication_factor,
            1,
            i16::MAX as i64,
        )? as i16;
        let min_insync_replicas = c.range(
            "min_insync_replicas",
            raw.min_insync_replicas,
            1,
            i16::MAX as i64,
        )? as i32;
        let replica_lag_time_max = c.duration("replica_lag_time_max", &raw.replica_lag_time_max)?;
        if replica_lag_time_max.is_zero() {
            return Err(c.err("replica_lag_time_max", "must be above zero"));
        }
        let groups = GroupConfig {
            offsets_topic_partitions: c.range(
                "offsets_topic_partitions",
                raw.offsets_topic_partitions,
                1,
                1000,
            )? as i32,
            offsets_topic_replication_factor: match raw.offsets_topic_replication_factor {
                -1 => default_replication_factor,
                n => c.range("offsets_topic_replication_factor", n, 1, i16::MAX as i64)? as i16,
            },
            initial_rebalance_delay: c.duration(
                "group_initial_rebalance_delay",
                &raw.group_initial_rebalance_delay,
            )?,
            min_session_timeout: c
                .duration("group_min_session_timeout", &raw.group_min_session_timeout)?,
            max_session_timeout: c
                .duration("group_max_session_timeout", &raw.group_max_session_timeout)?,
        };
        if groups.min_session_timeout > groups.max_session_timeout {
            return Err(c.err(
                "group_min_session_timeout",
                "must not be above group_max_session_timeout",
            ));
        }
        let transactions = TransactionConfig {
            max_timeout: c.duration("transaction_max_timeout", &raw.transaction_max_timeout)?,
            id_expiration: c.duration(
                "transactional_id_expiration",
                &raw.transactional_id_expiration,
            )?,
            state_partitions: c.range(
                "transaction_state_partitions",
                raw.transaction_state_partitions,
                1,
                1000,
            )? as i32,
            state_replication_factor: match raw.transaction_state_replication_factor {
                -1 => default_replication_factor,
                n => c.range(
                    "transaction_state_replication_factor",
                    n,
                    1,
                    i16::MAX as i64,
                )? as i16,
            },
            abort_timed_out_interval: c.duration(
                "transaction_abort_timed_out_interval",
                &raw.transaction_abort_timed_out_interval,
            )?,
        };
        // Kafka's ranges: timeouts and intervals are positive int32 milliseconds.
        for (field, d) in [
            ("transaction_max_timeout", transactions.max_timeout),
            ("transactional_id_expiration", transactions.id_expiration),
            (
                "transaction_abort_timed_out_interval",
                transactions.abort_timed_out_interval,
            ),
        ] {
            if d.is_zero() || d.as_millis() > i32::MAX as u128 {
                return Err(c.err(
                    field,
                    "must be above zero and at most 2147483647 ms (about 24.8 days)",
                ));
            }
        }
        let port = c.range("server.port", raw.server.port.0, 1, 65535)? as u16;
        if raw.server.host.trim().is_empty() {
            return Err(c.err("server.host", "must not be empty"));
        }
        let advertised_host = match raw.server.advertised_host {
            Some(h) if h.trim().is_empty() => {
                return Err(c.err("server.advertised_host", "must not be empty"))
            }
            Some(h) => h,
            None if raw.server.host == "0.0.0.0" || raw.server.host == "::" => "127.0.0.1".into(),
            None => raw.server.host.clone(),
        };
        let max_request_bytes = c.range(
            "server.max_request_bytes",
            raw.server.max_request_bytes,
            1024,
            i32::MAX as i64,
        )? as usize;
        let rc = raw.cluster;
        let node_id = c.range("cluster.node_id", rc.node_id, 0, i32::MAX as i64)? as i32;
        let election_rtt = c.range("cluster.election_rtt", rc.election_rtt, 2, 10_000)? as u64;
        let heartbeat_rtt = c.range("cluster.heartbeat_rtt", rc.heartbeat_rtt, 1, 10_000)? as u64;
        if heartbeat_rtt >= election_rtt {
            return Err(c.err(
                "cluster.heartbeat_rtt",
                format!("{heartbeat_rtt} must be below election_rtt ({election_rtt})"),
            ));
        }
        let cluster = ClusterConfig {
            enabled: rc.enabled,
            node_id,
            raft_address: rc.raft_address,
            initial_members: rc.initial_members,
            data_dir: rc.data_dir.map(PathBuf::from),
            election_rtt,
            heartbeat_rtt,
            rtt_ms: c.range("cluster.rtt_ms", rc.rtt_ms, 1, 60_000)? as u64,
            check_quorum: rc.check_quorum,
            snapshot_entries: c.range(
                "cluster.snapshot_entries",
                rc.snapshot_entries,
                1,
                i64::MAX,
            )? as u64,
            compaction_overhead: c.range(
                "cluster.compaction_overhead",
                rc.compaction_overhead,
                0,
                i64::MAX,
            )? as u64,
        };
        if cluster.enabled {
            if cluster.raft_address.is_none() {
                return Err(c.err(
                    "cluster.raft_address",
                    "is required when cluster.enabled is true",
                ));
            }
            if cluster.initial_members.is_empty() {
                return Err(c.err(
                    "cluster.initial_members",
                    "is required when cluster.enabled is true",
                ));
            }
        }
        Ok(Config {
            data_dir: PathBuf::from(raw.data_dir),
            max_topic_partitions,
            segment_size,
            retention_time,
            retention_bytes,
            retention_check_interval,
            default_partitions,
            auto_create_topics: raw.auto_create_topics,
            max_message_bytes,
            flush,
            default_replication_factor,
            min_insync_replicas,
            replica_lag_time_max,
            cleanup_policy,
            compression_type,
            segment_roll_time,
            cleaner,
            groups,
            transactions,
            server: ServerConfig {
                host: raw.server.host,
                port,
                advertised_host,
                log_file: raw.server.log_file.map(PathBuf::from),
                max_request_bytes,
            },
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.json")
    }

    #[test]
    fn empty_object_gives_single_node_defaults() {
        let c = parse("{}").unwrap();
        assert_eq!(c.server.host, "127.0.0.1");
        assert_eq!(c.server.port, 9092);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.retention_time, Some(Duration::from_secs(168 * 3600)));
        assert_eq!(c.default_partitions, 1);
        assert!(c.auto_create_topics);
        assert_eq!(c.flush, FlushPolicy::Never);
        assert_eq!(c.node_id(), 1);
    }

    #[test]
    fn guide_example_parses() {
        let c = parse(
            r#"{"data_dir": "./data-node1", "max_topic_partitions": 16, "segment_size": 1073741824,
                "retention_time": "168h", "server": {"port": "9092", "log_file": "logs/node1.log"},
                "cluster": {"enabled": true, "node_id": 1, "raft_address": "localhost:8001",
                  "initial_members": ["localhost:8001", "localhost:8002", "localhost:8003"],
                  "data_dir": "./raft-data/node1", "election_rtt": 10, "heartbeat_rtt": 1,
                  "check_quorum": true, "snapshot_entries": 10000, "compaction_overhead": 5000}}"#,
        )
        .unwrap();
        assert_eq!(c.max_topic_partitions, 16);
        assert!(c.cluster.enabled);
        assert_eq!(c.cluster.initial_members.len(), 3);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = parse(r#"{"retention_time": "168x"}"#).unwrap_err();
        assert_eq!(e.field, "retention_time");
        assert!(
            e.to_string().starts_with("test.json: retention_time: "),
            "{e}"
        );
        let e = parse(r#"{"server": {"port": "70000"}}"#).unwrap_err();
        assert_eq!(e.field, "server.port");
        let e = parse(r#"{"server": {"prot": 1}}"#).unwrap_err();
        assert!(e.field.starts_with("server"), "{e}");
        assert!(e.message.contains("prot"), "{e}");
        let e = parse(r#"{"segment_size": "big"}"#).unwrap_err();
        assert_eq!(e.field, "segment_size");
        let e = parse(r#"{"flush": {"policy": "sometimes"}}"#).unwrap_err();
        assert_eq!(e.field, "flush.policy");
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("h").is_err());
        // Overflow is an error, not a panic.
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("4000000000h4000000000h").is_err());
    }
}
