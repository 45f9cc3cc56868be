//! Reproducers of crashes found by fuzzing (`scripts/fuzz.sh`), minimized by hand.
//!
//! Each one aborted the process (or allocated gigabytes) before the fix it names.

use bytes::Bytes;
use protocol::codec::{decode_request, DecodeError};
use protocol::guard::GuardError;

fn assert_length_refused(frame: &'static [u8]) {
    match decode_request(&Bytes::from_static(frame)) {
        Err(DecodeError::Body {
            source: GuardError::LengthExceedsFrame,
            ..
        }) => {}
        other => panic!("expected LengthExceedsFrame, got {other:?}"),
    }
}

/// fuzz: `crash-573c67fcc07f44410e7012f5f9de80d251a4bb6e` (decode_request).
///
/// A compact array length written as five varint bytes that all have the continuation bit
/// set. kafka-protocol's varint decoder stops after the fifth byte whatever that bit says
/// (here: 0xFFFFFFFF, so `Vec::with_capacity(0xFFFF_FFFE)`), but the guard's
/// `peek_varint` gave up on it as unterminated, so the length was never checked and the
/// decoder tried to allocate ~160 GB of `MetadataRequestTopic`s.
#[test]
fn five_byte_varint_without_terminator_is_a_length_too() {
    assert_length_refused(&[
        0x00, 0x03, 0x00, 0x0c, // Metadata v12
        0x00, 0x00, 0x00, 0x01, // correlation id
        0xff, 0xff, // client id: null
        0x00, // header tagged fields
        0xff, 0xff, 0xff, 0xff, 0xff, // topics: compact length, no terminating byte
        0x00, 0x00, 0x00, // allow_auto_topic_creation, include_topic_authorized_ops, tags
    ]);
}

/// The same unterminated varint as the count of tagged fields in the request header.
#[test]
fn five_byte_varint_as_tagged_field_count() {
    let frame: &'static [u8] = &[
        0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, // Metadata v12 header
        0xff, 0xff, 0xff, 0xff, 0xff, // header tagged fields: count, unterminated
        0x01, 0x00, 0x00, 0x00,
    ];
    assert!(decode_request(&Bytes::from_static(frame)).is_err());
}
