//! The Kafka wire frontend: framing, headers, the version table and guarded decoding.
//!
//! No socket I/O lives here: everything works on byte buffers, so the crate can be fuzzed
//! and benchmarked alone. The broker reads frames with [`frame::take_frame`], decodes them
//! with [`codec::decode_request`], and encodes answers with [`codec::encode_response`].
//!
//! - [`frame`]: length-prefixed frames with a bounded size.
//! - [`versions`]: the single table of supported APIs, used by dispatch and ApiVersions.
//! - [`guard`]: decoding that refuses lengths the frame cannot back (kafka-protocol 0.18
//!   pre-allocates from wire lengths).
//! - [`codec`]: request header and body decoding, response encoding, the ApiVersions
//!   fallback.
pub mod codec;
pub mod frame;
pub mod guard;
pub mod versions;

pub use kafka_protocol;
