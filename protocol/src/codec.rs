//! Request decoding and response encoding, with the header version chosen per api key and
//! version, and every body decoded through the [`crate::guard`].
//!
//! What can come out of a frame:
//! - a typed request ([`Decoded::Request`]);
//! - ApiVersions at a version this broker does not know: answered with a v0 body carrying
//!   UNSUPPORTED_VERSION and the supported ranges, never a dropped connection
//!   ([`Decoded::ApiVersionsFallback`]);
//! - an error, after which the connection is closed (what Apache Kafka does for an unknown
//!   api key, an unsupported version, or a body it cannot parse).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::guard::{decode_guarded, GuardError};
use crate::versions::{is_supported, PRODUCE_MIN_DECODABLE, SUPPORTED};

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 =
    kafka_protocol::error::ResponseError::UnsupportedVersion.code();

/// A decoded request with its header.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub version: i16,
    pub body: RequestKind,
}

/// What a frame decodes to.
#[derive(Debug)]
pub enum Decoded {
    Request(Box<Request>),
    /// ApiVersions at a version above the supported range: answer with
    /// [`api_versions_fallback`] and keep the connection.
    ApiVersionsFallback {
        correlation_id: i32,
        version: i16,
    },
}

/// Why a frame could not be turned into a request; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of api {key:?}")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("bad request header: {0}")]
    Header(GuardError),
    #[error("bad {key:?} v{version} body: {source}")]
    Body {
        key: ApiKey,
        version: i16,
        source: GuardError,
    },
}

/// Why a response could not be encoded (a bug in the broker, never the client's fault).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {key:?} v{version} response: {message}")]
pub struct EncodeError {
    pub key: ApiKey,
    pub version: i16,
    pub message: String,
}

/// Reads api key, api version and correlation id: the fixed prefix of every header.
/// The frame is at least [`crate::frame::MIN_REQUEST_BYTES`] long.
fn prefix(frame: &[u8]) -> (i16, i16, i32) {
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    (key, version, correlation_id)
}

fn body<T: Decodable>(
    key: ApiKey,
    version: i16,
    bytes: &Bytes,
    wrap: fn(T) -> RequestKind,
) -> Result<RequestKind, DecodeError> {
    decode_guarded::<T>(bytes, version)
        .map(|(message, _)| wrap(message))
        .map_err(|source| DecodeError::Body {
            key,
            version,
            source,
        })
}

/// Decodes one frame (without its length prefix).
pub fn decode_request(frame: &Bytes) -> Result<Decoded, DecodeError> {
    if frame.len() < crate::frame::MIN_REQUEST_BYTES {
        return Err(DecodeError::Header(GuardError::Malformed(format!(
            "frame of {} bytes is shorter than a request header",
            frame.len()
        ))));
    }
    let (raw_key, version, correlation_id) = prefix(frame);
    let key = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApiKey(raw_key))?;
    if key == ApiKey::ApiVersions && !is_supported(raw_key, version) && version >= 0 {
        return Ok(Decoded::ApiVersionsFallback {
            correlation_id,
            version,
        });
    }
    if !is_supported(raw_key, version)
        || (key == ApiKey::Produce && version < PRODUCE_MIN_DECODABLE)
    {
        return Err(DecodeError::UnsupportedVersion { key, version });
    }
    let header_version = key.request_header_version(version);
    let (header, left) =
        decode_guarded::<RequestHeader>(frame, header_version).map_err(DecodeError::Header)?;
    let rest = frame.slice(frame.len() - left..);
    let body = match key {
        ApiKey::Produce => body(key, version, &rest, RequestKind::Produce)?,
        ApiKey::Fetch => body(key, version, &rest, RequestKind::Fetch)?,
        ApiKey::ListOffsets => body(key, version, &rest, RequestKind::ListOffsets)?,
        ApiKey::Metadata => body(key, version, &rest, RequestKind::Metadata)?,
        ApiKey::ApiVersions => body(key, version, &rest, RequestKind::ApiVersions)?,
        ApiKey::CreateTopics => body(key, version, &rest, RequestKind::CreateTopics)?,
        ApiKey::DeleteTopics => body(key, version, &rest, RequestKind::DeleteTopics)?,
        ApiKey::OffsetForLeaderEpoch => {
            body(key, version, &rest, RequestKind::OffsetForLeaderEpoch)?
        }
        ApiKey::DescribeConfigs => body(key, version, &rest, RequestKind::DescribeConfigs)?,
        ApiKey::AlterConfigs => body(key, version, &rest, RequestKind::AlterConfigs)?,
        ApiKey::CreatePartitions => body(key, version, &rest, RequestKind::CreatePartitions)?,
        ApiKey::DeleteRecords => body(key, version, &rest, RequestKind::DeleteRecords)?,
        ApiKey::IncrementalAlterConfigs => {
            body(key, version, &rest, RequestKind::IncrementalAlterConfigs)?
        }
        ApiKey::DescribeCluster => body(key, version, &rest, RequestKind::DescribeCluster)?,
        ApiKey::InitProducerId => body(key, version, &rest, RequestKind::InitProducerId)?,
        ApiKey::OffsetCommit => body(key, version, &rest, RequestKind::OffsetCommit)?,
        ApiKey::OffsetFetch => body(key, version, &rest, RequestKind::OffsetFetch)?,
        ApiKey::FindCoordinator => body(key, version, &rest, RequestKind::FindCoordinator)?,
        ApiKey::JoinGroup => body(key, version, &rest, RequestKind::JoinGroup)?,
        ApiKey::Heartbeat => body(key, version, &rest, RequestKind::Heartbeat)?,
        ApiKey::LeaveGroup => body(key, version, &rest, RequestKind::LeaveGroup)?,
        ApiKey::SyncGroup => body(key, version, &rest, RequestKind::SyncGroup)?,
        ApiKey::DescribeGroups => body(key, version, &rest, RequestKind::DescribeGroups)?,
        ApiKey::ListGroups => body(key, version, &rest, RequestKind::ListGroups)?,
        ApiKey::DeleteGroups => body(key, version, &rest, RequestKind::DeleteGroups)?,
        ApiKey::OffsetDelete => body(key, version, &rest, RequestKind::OffsetDelete)?,
        ApiKey::DescribeQuorum => body(key, version, &rest, RequestKind::DescribeQuorum)?,
        ApiKey::AddPartitionsToTxn => body(key, version, &rest, RequestKind::AddPartitionsToTxn)?,
        ApiKey::AddOffsetsToTxn => body(key, version, &rest, RequestKind::AddOffsetsToTxn)?,
        ApiKey::EndTxn => body(key, version, &rest, RequestKind::EndTxn)?,
        ApiKey::WriteTxnMarkers => body(key, version, &rest, RequestKind::WriteTxnMarkers)?,
        ApiKey::TxnOffsetCommit => body(key, version, &rest, RequestKind::TxnOffsetCommit)?,
        ApiKey::DescribeProducers => body(key, version, &rest, RequestKind::DescribeProducers)?,
        ApiKey::DescribeTransactions => {
            body(key, version, &rest, RequestKind::DescribeTransactions)?
        }
        ApiKey::ListTransactions => body(key, version, &rest, RequestKind::ListTransactions)?,
        _ => return Err(DecodeError::UnsupportedVersion { key, version }),
    };
    Ok(Decoded::Request(Box::new(Request {
        header,
        api_key: key,
        version,
        body,
    })))
}

/// The response header version: v1 for flexible responses, v0 otherwise, and always v0
/// for ApiVersions (clients read it before they know what the broker supports).
pub fn response_header_version(key: ApiKey, version: i16) -> i16 {
    if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    }
}

/// Appends one whole response frame (length, header, body) to `out`.
pub fn encode_response(
    out: &mut BytesMut,
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    response: &ResponseKind,
) -> Result<(), EncodeError> {
    let err = |message: String| EncodeError {
        key,
        version,
        message,
    };
    let start = out.len();
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(out, response_header_version(key, version))
        .map_err(|e| err(e.to_string()))?;
    response
        .encode(out, version)
        .map_err(|e| err(e.to_string()))?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// The supported ranges as ApiVersions entries.
pub fn api_version_entries() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.key as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect()
}

/// The v0 ApiVersions response for a version this broker does not know: error 35 and the
/// supported ranges, so the client retries with a version from the list.
pub fn api_versions_fallback(out: &mut BytesMut, correlation_id: i32) -> Result<(), EncodeError> {
    let body = ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(api_version_entries());
    encode_response(
        out,
        correlation_id,
        ApiKey::ApiVersions,
        0,
        &ResponseKind::ApiVersions(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use kafka_protocol::protocol::StrBytes;

    fn frame_of<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let mut out = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        header
            .encode(&mut out, key.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        out.freeze()
    }

    #[test]
    fn decodes_a_metadata_request() {
        let frame = frame_of(ApiKey::Metadata, 12, &MetadataRequest::default());
        match decode_request(&frame).unwrap() {
            Decoded::Request(r) => {
                assert_eq!(r.header.correlation_id, 7);
                assert!(matches!(r.body, RequestKind::Metadata(_)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn api_versions_above_the_table_falls_back() {
        let mut frame =
            BytesMut::from(&frame_of(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())[..]);
        frame[2..4].copy_from_slice(&99i16.to_be_bytes());
        let decoded = decode_request(&frame.freeze()).unwrap();
        assert!(matches!(
            decoded,
            Decoded::ApiVersionsFallback {
                correlation_id: 7,
                version: 99
            }
        ));
        let mut out = BytesMut::new();
        api_versions_fallback(&mut out, 7).unwrap();
        let mut buf = out.freeze();
        let size = buf.get_i32() as usize;
        assert_eq!(size, buf.len());
        assert_eq!(buf.get_i32(), 7, "header v0: only the correlation id");
        let body = ApiVersionsResponse::decode(&mut buf, 0).unwrap();
        assert_eq!(body.error_code, UNSUPPORTED_VERSION);
        assert!(body
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ApiVersions as i16));
    }

    #[test]
    fn unknown_key_and_old_produce_are_refused() {
        let mut frame =
            BytesMut::from(&frame_of(ApiKey::Metadata, 1, &MetadataRequest::default())[..]);
        frame[0..2].copy_from_slice(&12345i16.to_be_bytes());
        assert!(matches!(
            decode_request(&frame.freeze()),
            Err(DecodeError::UnknownApiKey(12345))
        ));
        let mut frame =
            BytesMut::from(&frame_of(ApiKey::Metadata, 1, &MetadataRequest::default())[..]);
        frame[0..2].copy_from_slice(&0i16.to_be_bytes());
        frame[2..4].copy_from_slice(&2i16.to_be_bytes());
        assert!(matches!(
            decode_request(&frame.freeze()),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn huge_array_length_in_a_tiny_frame_is_refused_without_allocating() {
        // Metadata v1: header then topics array length int32 = i32::MAX, no elements.
        let mut frame =
            BytesMut::from(&frame_of(ApiKey::Metadata, 1, &MetadataRequest::default())[..]);
        let len = frame.len();
        frame[len - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        let err = decode_request(&frame.freeze()).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Body {
                    source: GuardError::LengthExceedsFrame,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn huge_compact_array_length_is_refused() {
        // Metadata v12 (flexible): topics is a compact array; claim 2^32-2 elements.
        let mut frame =
            BytesMut::from(&frame_of(ApiKey::Metadata, 12, &MetadataRequest::default())[..]);
        // body = topics(compact, null = 0x00), allow_auto_topic_creation(1), include_topic_authorized_operations(1), tags(0)
        let body_start = frame.len() - 4;
        let mut forged = BytesMut::from(&frame[..body_start]);
        forged.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0, 0]);
        let err = decode_request(&forged.freeze()).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Body {
                    source: GuardError::LengthExceedsFrame,
                    ..
                }
            ),
            "{err}"
        );
        let _ = frame.split_off(0);
    }

    #[test]
    fn large_plain_fields_still_decode() {
        // Fetch max_bytes (52428800) is larger than the frame: a field, not a length.
        let fetch = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(52_428_800)
            .with_replica_id(kafka_protocol::messages::BrokerId(-1));
        let frame = frame_of(ApiKey::Fetch, 12, &fetch);
        match decode_request(&frame).unwrap() {
            Decoded::Request(r) => match r.body {
                RequestKind::Fetch(f) => assert_eq!(f.max_bytes, 52_428_800),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
}
