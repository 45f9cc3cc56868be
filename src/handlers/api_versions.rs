//! ApiVersions: the supported ranges, straight from the protocol crate's version table.
//! (A request at an unknown version never reaches here: the codec answers it with the v0
//! fallback.)

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use protocol::codec::api_version_entries;

pub fn handle(_request: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_version_entries())
        .with_finalized_features_epoch(-1)
}
