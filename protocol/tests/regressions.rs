//! Reproducers of crashes found by fuzzing (`scripts/fuzz.sh`) or by the forged-length
//! sweep below, minimized by hand.
//!
//! Before the fix each named one made the decoder ask for tens of gigabytes at once: the
//! test then fails on the allocation bound, or the whole binary aborts with "memory
//! allocation of N bytes failed" where the system refuses the allocation.

mod common;

use bytes::{Bytes, BytesMut};
use protocol::codec::DecodeError;
use protocol::guard::GuardError;

use common::*;

#[global_allocator]
static ALLOC: Watch = Watch;

fn assert_length_refused(frame: &'static [u8], what: &str) {
    match decode_bounded(&Bytes::from_static(frame), what) {
        Err(DecodeError::Body {
            source: GuardError::LengthExceedsFrame,
            ..
        }) => {}
        other => panic!("{what}: expected LengthExceedsFrame, got {other:?}"),
    }
}

/// fuzz artifact `crash-573c67fcc07f44410e7012f5f9de80d251a4bb6e` (decode_request):
/// ASan "allocator is trying to allocate 0x8ffffff70 bytes" in
/// `Vec::<MetadataRequestTopic>::with_capacity`, from `decode_guarded` → Metadata v10.
///
/// A compact array length written as five varint bytes that all have the continuation bit
/// set. kafka-protocol's `UnsignedVarInt` decoder stops after the fifth byte whatever that
/// bit says (here it yields 0xFFFFFFFF, so `Vec::with_capacity(0xFFFF_FFFE)`), but the
/// guard's `peek_varint` gives up on such a varint as unterminated and returns `None`, so
/// the length is neither flagged nor substituted.
#[test]
fn five_byte_varint_without_terminator_is_a_length_too() {
    assert_length_refused(
        &[
            0x00, 0x03, 0x00, 0x0c, // Metadata v12
            0x00, 0x00, 0x00, 0x01, // correlation id
            0xff, 0xff, // client id: null
            0x00, // header tagged fields
            0xff, 0xff, 0xff, 0xff, 0xff, // topics: compact length, no terminating byte
            0x00, 0x00, 0x00, // allow_auto_topic_creation, include_topic_auth_ops, tags
        ],
        "Metadata v12 topics",
    );
}

/// The same bug, found by the sweep below in a real client frame: the Java consumer's
/// ListOffsets v7 with one byte overwritten, so that the `-1` replica id and timestamp
/// that follow are read as the partitions' compact array length.
/// fuzz artifact `oom-325c25446824a59590f21618b6f3397886d9534f` (decode_request, CI run
/// of 2026-11-28): libFuzzer out-of-memory, `malloc(9814662000)`, Metadata v9.
#[test]
fn metadata_v9_four_byte_topic_count() {
    assert_length_refused(
        b"\x00\x03\x00\x09\x00\x00\x00\x00\x00\x00\x00\xff\xfe\xff\x40\x00\x00\xff\xff\xff\x00\x00\x00",
        "metadata v9 topic count 0x40ff7fff",
    );
}

#[test]
fn five_byte_varint_from_minus_one_fields() {
    assert_length_refused(
        &[
            0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0x03, // ListOffsets v7, corr 3
            0xff, 0xff, 0x00, // client id null, no header tags
            0xff, 0xff, 0xff, 0xff, // replica id -1
            0x00, // isolation level
            0x02, // one topic
            0x01, // name ""
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, // partitions: length ...
            0x00, 0x00, 0x00,
        ],
        "ListOffsets v7 partitions",
    );
}

/// The unterminated varint as the count of tagged fields: no pre-allocation there, but it
/// must still be refused cleanly.
#[test]
fn five_byte_varint_as_tagged_field_count() {
    let frame = Bytes::from_static(&[
        0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, // Metadata v12 header
        0xff, 0xff, 0xff, 0xff, 0xff, // header tagged fields: count, unterminated
        0x01, 0x00, 0x00, 0x00,
    ]);
    assert!(decode_bounded(&frame, "header tags").is_err());
}

/// Forged lengths written over every position of every known frame (captured client
/// frames and one sample per supported version): each decode either succeeds (the bytes
/// were a plain field) or fails, never panics, and never allocates more than a small bound.
#[test]
fn forged_lengths_at_every_position_never_allocate_for_them() {
    let patterns: [&[u8]; 8] = [
        &[0x7f, 0xff, 0xff, 0xff],       // i32::MAX
        &[0x10, 0x00, 0x00, 0x00],       // 256 Mi
        &[0xff, 0xff, 0xff, 0xfe],       // -2
        &[0xff, 0xff, 0xff, 0xff, 0x0f], // varint 0xFFFFFFFF
        &[0xff, 0xff, 0xff, 0xff, 0xff], // varint 0xFFFFFFFF, no terminating byte
        &[0xff, 0xff, 0xff, 0x7f],       // varint 2^28 - 1
        &[0x80, 0x80, 0x04],             // varint 65536
        &[0x7f, 0xff],                   // i16::MAX
    ];
    let mut decoded = 0;
    let mut tried = 0;
    for (name, frame) in all_frames() {
        for at in 8..frame.len() {
            for pattern in patterns {
                let end = (at + pattern.len()).min(frame.len());
                let mut forged = BytesMut::from(&frame[..]);
                forged[at..end].copy_from_slice(&pattern[..end - at]);
                let what = format!("{name} with {pattern:02x?} at {at}");
                tried += 1;
                if decode_bounded(&forged.freeze(), &what).is_ok() {
                    decoded += 1;
                }
            }
        }
    }
    assert!(tried > 10_000, "{tried}");
    assert!(decoded < tried);
}
