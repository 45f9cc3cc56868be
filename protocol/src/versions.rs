//! The one version table: which API keys and versions this broker implements.
//!
//! Dispatch and the ApiVersions response both read [`SUPPORTED`], so the broker never
//! advertises what it cannot serve, nor serves what it did not advertise. Ranges are
//! contiguous and look like a real Kafka 3.x/4.x release (kafka-python guesses the broker
//! version from them). See `shared/design/wire-compat.md` for why each bound is what it is.

use kafka_protocol::messages::ApiKey;

/// One row of the table: an API and the versions this broker handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn row(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { key, min, max }
}

/// Produce versions below this are advertised (librdkafka before 2.11.1 turns compression
/// off when Produce's advertised minimum is above 0, KAFKA-18659) but refused at request
/// time, as Apache Kafka 4 does: their bodies are not in the 4.x schemas.
pub const PRODUCE_MIN_DECODABLE: i16 = 3;

/// Every API this broker answers, with its version range.
pub const SUPPORTED: &[ApiRange] = &[
    row(ApiKey::Produce, 0, 11),
    row(ApiKey::Fetch, 4, 12),
    row(ApiKey::ListOffsets, 1, 7),
    row(ApiKey::Metadata, 0, 12),
    row(ApiKey::ApiVersions, 0, 4),
    row(ApiKey::CreateTopics, 2, 7),
    row(ApiKey::DeleteTopics, 1, 5),
    row(ApiKey::OffsetForLeaderEpoch, 2, 4),
    row(ApiKey::DescribeConfigs, 1, 4),
    row(ApiKey::AlterConfigs, 0, 2),
    row(ApiKey::CreatePartitions, 0, 3),
    row(ApiKey::DeleteRecords, 0, 2),
    row(ApiKey::IncrementalAlterConfigs, 0, 1),
    row(ApiKey::DescribeCluster, 0, 1),
    row(ApiKey::InitProducerId, 0, 5),
    row(ApiKey::OffsetCommit, 2, 9),
    row(ApiKey::OffsetFetch, 1, 9),
    row(ApiKey::FindCoordinator, 0, 4),
    row(ApiKey::JoinGroup, 0, 9),
    row(ApiKey::Heartbeat, 0, 4),
    row(ApiKey::LeaveGroup, 0, 5),
    row(ApiKey::SyncGroup, 0, 5),
    row(ApiKey::DescribeGroups, 0, 5),
    row(ApiKey::ListGroups, 0, 5),
    row(ApiKey::DeleteGroups, 0, 2),
    row(ApiKey::OffsetDelete, 0, 0),
    row(ApiKey::DescribeQuorum, 0, 2),
    row(ApiKey::AddPartitionsToTxn, 0, 5),
    row(ApiKey::AddOffsetsToTxn, 0, 4),
    row(ApiKey::EndTxn, 0, 5),
    row(ApiKey::WriteTxnMarkers, 1, 1),
    row(ApiKey::TxnOffsetCommit, 0, 5),
    row(ApiKey::DescribeProducers, 0, 0),
    row(ApiKey::DescribeTransactions, 0, 0),
    row(ApiKey::ListTransactions, 0, 2),
];

/// The range this broker supports for `api_key`, if it supports the API at all.
pub fn supported_range(api_key: i16) -> Option<ApiRange> {
    SUPPORTED.iter().copied().find(|r| r.key as i16 == api_key)
}

/// Whether requests with this key and version are served.
pub fn is_supported(api_key: i16, version: i16) -> bool {
    supported_range(api_key).is_some_and(|r| r.min <= version && version <= r.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_version_is_known_to_the_codec() {
        for r in SUPPORTED {
            let known = r.key.valid_versions();
            let low = if r.key == ApiKey::Produce {
                PRODUCE_MIN_DECODABLE
            } else {
                r.min
            };
            assert!(
                known.min <= low && r.max <= known.max,
                "{:?} {}..{} outside {}",
                r.key,
                r.min,
                r.max,
                known
            );
        }
    }

    #[test]
    fn api_keys_are_listed_once() {
        for (i, a) in SUPPORTED.iter().enumerate() {
            assert!(
                SUPPORTED[i + 1..].iter().all(|b| b.key != a.key),
                "{:?} twice",
                a.key
            );
        }
    }

    #[test]
    fn unknown_keys_and_versions_are_unsupported() {
        assert!(!is_supported(ApiKey::Fetch as i16, 3));
        assert!(!is_supported(9999, 0));
        assert!(is_supported(ApiKey::ApiVersions as i16, 3));
    }
}
