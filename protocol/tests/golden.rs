//! Decoding request frames as real clients send them, and refusing hostile ones.
//!
//! `tests/frames/*.bin` are whole request frames (without the 4-byte size) captured on the
//! wire between real clients and Apache Kafka 4.1.1: `kcat_*` from kcat 1.7.1 (librdkafka
//! 2.0.2), `java_*` from the Apache Kafka 4.1.1 Java clients (console producer/consumer,
//! admin tools). Versions are what each client chose against this broker's version table.

mod common;

use bytes::{Bytes, BytesMut};
use protocol::codec::{decode_request, DecodeError, Decoded, Request};
use protocol::frame::{take_frame, FrameError};
use protocol::guard::GuardError;
use protocol::kafka_protocol::messages::{ApiKey, RequestKind};
use protocol::kafka_protocol::records::{Compression, RecordBatchDecoder};

use common::*;

#[global_allocator]
static ALLOC: Watch = Watch;

fn request(name: &str) -> Request {
    match decode_request(&captured(name)) {
        Ok(Decoded::Request(r)) => *r,
        other => panic!("{name}: {other:?}"),
    }
}

// ------------------------------------------------------------------------ golden frames

#[test]
fn kcat_api_versions_v3() {
    let r = request("kcat_api_versions_v3.bin");
    assert_eq!((r.api_key, r.version), (ApiKey::ApiVersions, 3));
    assert_eq!(r.header.correlation_id, 1);
    assert_eq!(r.header.client_id.as_deref(), Some("rdkafka"));
    let RequestKind::ApiVersions(body) = r.body else {
        panic!("{:?}", r.body)
    };
    assert_eq!(body.client_software_name.as_str(), "librdkafka");
    assert_eq!(body.client_software_version.as_str(), "2.0.2");
}

#[test]
fn java_api_versions_v4() {
    let r = request("java_api_versions_v4.bin");
    assert_eq!((r.api_key, r.version), (ApiKey::ApiVersions, 4));
    assert_eq!(r.header.correlation_id, 0);
    assert_eq!(r.header.client_id.as_deref(), Some("console-producer"));
    let RequestKind::ApiVersions(body) = r.body else {
        panic!("{:?}", r.body)
    };
    assert_eq!(body.client_software_name.as_str(), "apache-kafka-java");
    assert_eq!(body.client_software_version.as_str(), "4.1.1");
}

#[test]
fn kcat_metadata_v4() {
    // `kcat -L`: first a brokers-only request (empty topic list, not null).
    let r = request("kcat_metadata_v4.bin");
    assert_eq!((r.api_key, r.version), (ApiKey::Metadata, 4));
    assert_eq!(r.header.correlation_id, 2);
    assert_eq!(r.header.client_id.as_deref(), Some("rdkafka"));
    let RequestKind::Metadata(body) = r.body else {
        panic!("{:?}", r.body)
    };
    assert_eq!(body.topics, Some(vec![]));
    assert!(!body.allow_auto_topic_creation);

    // `kcat -P -t golden`: the producer asks for its topic.
    let r = request("kcat_metadata_v4_topic.bin");
    let RequestKind::Metadata(body) = r.body else {
        panic!("{:?}", r.body)
    };
    let names: Vec<_> = body
        .topics
        .unwrap()
        .into_iter()
        .map(|t| t.name.unwrap().0.to_string())
        .collect();
    assert_eq!(names, ["golden"]);
}

#[test]
fn java_metadata_v12() {
    let r = request("java_metadata_v12.bin");
    assert_eq!((r.api_key, r.version), (ApiKey::Metadata, 12));
    assert_eq!(r.header.correlation_id, 1);
    assert_eq!(r.header.client_id.as_deref(), Some("console-producer"));
    let RequestKind::Metadata(body) = r.body else {
        panic!("{:?}", r.body)
    };
    let topics = body.topics.unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name.as_ref().unwrap().0.as_str(), "golden");
    assert!(topics[0].topic_id.is_nil());
    assert!(body.allow_auto_topic_creation);
    assert!(!body.include_topic_authorized_operations);
}

#[test]
fn java_produce_v9_with_a_record_batch() {
    let r = request("java_produce_v9.bin");
    assert_eq!((r.api_key, r.version), (ApiKey::Produce, 9));
    assert_eq!(r.header.correlation_id, 6);
    assert_eq!(r.header.client_id.as_deref(), Some("console-producer"));
    let RequestKind::Produce(body) = r.body else {
        panic!("{:?}", r.body)
    };
    assert_eq!(body.transactional_id, None);
    assert_eq!(body.acks, -1);
    assert_eq!(body.timeout_ms, 1500);
    assert_eq!(body.topic_data.len(), 1);
    let topic = &body.topic_data[0];
    assert_eq!(topic.name.0.as_str(), "golden");
    assert_eq!(topic.partition_data.len(), 1);
    assert_eq!(topic.partition_data[0].index, 0);
    let mut records = topic.partition_data[0].records.clone().unwrap();
    assert_eq!(records.len(), 96);
    let set = RecordBatchDecoder::decode(&mut records).unwrap();
    assert_eq!(set.version, 2);
    assert_eq!(set.compression, Compression::None);
    let values: Vec<_> = set
        .records
        .iter()
        .map(|r| r.value.clone().unwrap())
        .collect();
    assert_eq!(values, ["alpha", "beta", "gamma"]);
    assert!(set.records.iter().all(|r| r.key.is_none()));
    assert_eq!(
        set.records[0].producer_id, 0,
        "idempotent producer id from Kafka"
    );
    assert_eq!(
        set.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

#[test]
fn kcat_produce_v7_with_keys_and_headers() {
    let r = request("kcat_produce_v7.bin");
    assert_eq!((r.api_key, r.version), (ApiKey::Produce, 7));
    let RequestKind::Produce(body) = r.body else {
        panic!("{:?}", r.body)
    };
    assert_eq!(body.acks, -1);
    assert_eq!(body.timeout_ms, 30_000);
    let mut records = body.topic_data[0].partition_data[0]
        .records
        .clone()
        .unwrap();
    let set = RecordBatchDecoder::decode(&mut records).unwrap();
    let pairs: Vec<_> = set
        .records
        .iter()
        .map(|r| (r.key.clone().unwrap(), r.value.clone().unwrap()))
        .collect();
    assert_eq!(
        pairs,
        [
            (Bytes::from("k1"), Bytes::from("hello")),
            (Bytes::from("k2"), Bytes::from("world"))
        ]
    );
    for r in &set.records {
        assert_eq!(r.headers.len(), 1);
        assert_eq!(
            r.headers.get(&b"trace"[..]).unwrap().as_deref(),
            Some(&b"abc"[..])
        );
    }
}

#[test]
fn java_fetch_v12() {
    let r = request("java_fetch_v12.bin");
    assert_eq!((r.api_key, r.version), (ApiKey::Fetch, 12));
    assert_eq!(r.header.correlation_id, 5);
    assert_eq!(r.header.client_id.as_deref(), Some("console-consumer"));
    let RequestKind::Fetch(body) = r.body else {
        panic!("{:?}", r.body)
    };
    assert_eq!(body.replica_id.0, -1);
    assert_eq!(body.max_wait_ms, 500);
    assert_eq!(body.min_bytes, 1);
    assert_eq!(body.max_bytes, 52_428_800);
    assert_eq!(body.isolation_level, 0);
    assert_eq!((body.session_id, body.session_epoch), (0, 0));
    assert_eq!(body.cluster_id, None);
    assert_eq!(body.rack_id.as_str(), "");
    assert!(body.forgotten_topics_data.is_empty());
    assert_eq!(body.topics.len(), 1);
    assert_eq!(body.topics[0].topic.0.as_str(), "golden");
    let p = &body.topics[0].partitions;
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].partition, 0);
    assert_eq!(p[0].current_leader_epoch, 0);
    assert_eq!(p[0].fetch_offset, 0);
    assert_eq!(p[0].last_fetched_epoch, -1);
    assert_eq!(p[0].log_start_offset, -1);
    assert_eq!(p[0].partition_max_bytes, 1_048_576);
}

#[test]
fn kcat_fetch_v11() {
    let r = request("kcat_fetch_v11.bin");
    assert_eq!((r.api_key, r.version), (ApiKey::Fetch, 11));
    let RequestKind::Fetch(body) = r.body else {
        panic!("{:?}", r.body)
    };
    assert_eq!(body.isolation_level, 1);
    assert_eq!((body.session_id, body.session_epoch), (0, -1));
    assert_eq!(body.topics[0].topic.0.as_str(), "golden");
    assert_eq!(body.topics[0].partitions[0].current_leader_epoch, -1);
}

#[test]
fn list_offsets_from_both_clients() {
    for (name, version, isolation) in [
        ("kcat_list_offsets_v2.bin", 2, 1),
        ("java_list_offsets_v7.bin", 7, 0),
    ] {
        let r = request(name);
        assert_eq!((r.api_key, r.version), (ApiKey::ListOffsets, version));
        let RequestKind::ListOffsets(body) = r.body else {
            panic!("{:?}", r.body)
        };
        assert_eq!(body.replica_id.0, -1);
        assert_eq!(body.isolation_level, isolation, "{name}");
        assert_eq!(body.topics[0].name.0.as_str(), "golden");
        assert_eq!(body.topics[0].partitions[0].timestamp, -2, "earliest");
    }
}

#[test]
fn java_admin_requests() {
    let RequestKind::CreateTopics(ct) = request("java_create_topics_v7.bin").body else {
        panic!()
    };
    assert_eq!(ct.topics[0].name.0.as_str(), "t2");
    assert_eq!(ct.topics[0].num_partitions, 2);
    assert_eq!(ct.topics[0].replication_factor, -1);
    assert_eq!(ct.topics[0].configs[0].name.as_str(), "retention.ms");
    assert_eq!(ct.topics[0].configs[0].value.as_deref(), Some("100000"));

    let RequestKind::CreatePartitions(cp) = request("java_create_partitions_v3.bin").body else {
        panic!()
    };
    assert_eq!(
        (cp.topics[0].name.0.as_str(), cp.topics[0].count),
        ("t2", 3)
    );
    assert_eq!(cp.topics[0].assignments, None);

    let RequestKind::DescribeConfigs(dc) = request("java_describe_configs_v4.bin").body else {
        panic!()
    };
    assert_eq!(dc.resources[0].resource_type, 2);
    assert_eq!(dc.resources[0].resource_name.as_str(), "t2");
    assert_eq!(dc.resources[0].configuration_keys, None);
    assert!(dc.include_synonyms);

    let RequestKind::IncrementalAlterConfigs(ia) =
        request("java_incremental_alter_configs_v1.bin").body
    else {
        panic!()
    };
    let c = &ia.resources[0].configs[0];
    assert_eq!(
        (c.name.as_str(), c.config_operation, c.value.as_deref()),
        ("retention.ms", 0, Some("200000"))
    );

    let RequestKind::DeleteTopics(dt) = request("java_delete_topics_v5.bin").body else {
        panic!()
    };
    assert_eq!(dt.topic_names.len(), 1);
    assert_eq!(dt.topic_names[0].0.as_str(), "t2");

    let RequestKind::DescribeCluster(dcl) = request("java_describe_cluster_v1.bin").body else {
        panic!()
    };
    assert_eq!(dcl.endpoint_type, 1);
}

// ------------------------------------------------------------------------ hostile frames

fn assert_refused(frame: &[u8], expect: fn(&DecodeError) -> bool, what: &str) {
    match decode_bounded(&Bytes::copy_from_slice(frame), what) {
        Err(e) if expect(&e) => {}
        other => panic!("{what}: {other:?}"),
    }
}

fn length_exceeds_frame(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::Body {
            source: GuardError::LengthExceedsFrame,
            ..
        } | DecodeError::Header(GuardError::LengthExceedsFrame)
    )
}

fn malformed_body(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::Body {
            source: GuardError::Malformed(_),
            ..
        }
    )
}

fn malformed_header(e: &DecodeError) -> bool {
    matches!(e, DecodeError::Header(GuardError::Malformed(_)))
}

#[test]
fn every_prefix_truncation_is_refused() {
    for (name, frame) in all_frames() {
        for len in 0..frame.len() {
            let cut = frame.slice(..len);
            assert!(
                decode_bounded(&cut, &name).is_err(),
                "{name} cut to {len} of {} bytes decoded",
                frame.len()
            );
        }
    }
}

#[test]
fn every_prefix_of_a_length_prefixed_frame_waits_for_more() {
    for (name, frame) in all_frames() {
        let wire = with_length_prefix(&frame);
        for len in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..len]);
            assert_eq!(take_frame(&mut buf, 1 << 20), Ok(None), "{name} at {len}");
            assert_eq!(buf.len(), len, "nothing consumed");
        }
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(take_frame(&mut buf, 1 << 20), Ok(Some(frame)), "{name}");
        assert!(buf.is_empty());
    }
}

#[test]
fn array_length_i32_max_in_a_20_byte_frame() {
    let frame: &[u8] = &[
        0, 3, 0, 1, 0, 0, 0, 7, 0, 0, // Metadata v1, correlation 7, client id ""
        0x7f, 0xff, 0xff, 0xff, // topics: i32::MAX elements
        0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(frame.len(), 20);
    assert_refused(frame, length_exceeds_frame, "Metadata v1 topics i32::MAX");
    // The same length as a CreateTopics v2 topics array (elements of ~100 bytes each).
    let frame: &[u8] = &[
        0, 19, 0, 2, 0, 0, 0, 7, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
    ];
    assert_refused(
        frame,
        length_exceeds_frame,
        "CreateTopics v2 topics i32::MAX",
    );
}

#[test]
fn compact_length_0xffffffff() {
    // Metadata v12: header v2 (client id "", no tags), then topics as a compact array whose
    // length varint is 0xFFFFFFFF (2^32 - 2 elements).
    let frame: &[u8] = &[
        0, 3, 0, 12, 0, 0, 0, 7, 0, 0, 0, // header
        0xff, 0xff, 0xff, 0xff, 0x0f, // topics
        1, 0, 0, // allow_auto_topic_creation, include_topic_authorized_operations, tags
    ];
    assert_refused(frame, length_exceeds_frame, "Metadata v12 compact topics");
    // As a compact string length: ApiVersions v3 client_software_name.
    let frame: &[u8] = &[
        0, 18, 0, 3, 0, 0, 0, 7, 0, 0, 0, // header
        0xff, 0xff, 0xff, 0xff, 0x0f, b'x', // client_software_name
        1, 0, // client_software_version "", tags
    ];
    assert_refused(frame, length_exceeds_frame, "ApiVersions v3 compact string");
    // As the number of tagged fields in the request header.
    let frame: &[u8] = &[
        0, 3, 0, 12, 0, 0, 0, 7, 0, 0, // header up to the tags
        0xff, 0xff, 0xff, 0xff, 0x0f, // 2^32 - 1 tagged fields
        1, 1, 0, 0,
    ];
    assert!(decode_bounded(&Bytes::copy_from_slice(frame), "header tags").is_err());
}

/// Where the size of the (last) records field of a Produce frame is: the int32 that counts
/// exactly the bytes after it.
fn records_size_at(frame: &[u8]) -> usize {
    (0..frame.len() - 4)
        .find(|&at| {
            let size = i32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
            size > 0 && size as usize == frame.len() - at - 4
        })
        .expect("a records size field")
}

#[test]
fn negative_lengths() {
    // Metadata v1 topics = -2 (only -1, null, is allowed there).
    let frame: &[u8] = &[0, 3, 0, 1, 0, 0, 0, 7, 0, 0, 0xff, 0xff, 0xff, 0xfe];
    assert_refused(frame, malformed_body, "Metadata v1 topics -2");
    // CreateTopics v2 topics = -1: the array is not nullable.
    let frame: &[u8] = &[
        0, 19, 0, 2, 0, 0, 0, 7, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30, 0,
    ];
    assert_refused(frame, malformed_body, "CreateTopics v2 topics -1");
    // i32::MIN as an array length.
    let frame: &[u8] = &[0, 3, 0, 1, 0, 0, 0, 7, 0, 0, 0x80, 0, 0, 0];
    assert_refused(frame, malformed_body, "Metadata v1 topics i32::MIN");
    // client id length -2.
    let frame: &[u8] = &[0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xfe, 0, 0, 0, 0];
    assert_refused(frame, malformed_header, "client id -2");
    // Produce v7 records length -5.
    let mut frame = BytesMut::from(&captured("kcat_produce_v7.bin")[..]);
    let at = records_size_at(&frame);
    frame[at..at + 4].copy_from_slice(&(-5i32).to_be_bytes());
    assert_refused(&frame, malformed_body, "Produce v7 records -5");
}

#[test]
fn string_length_beyond_the_frame() {
    // client id claiming 32767 bytes in a 20-byte frame.
    let frame: &[u8] = &[
        0, 3, 0, 1, 0, 0, 0, 7, 0x7f, 0xff, b'a', b'b', 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_refused(frame, malformed_header, "client id 32767");
    // Metadata v4 topic name claiming 4096 bytes.
    let frame: &[u8] = &[
        0, 3, 0, 4, 0, 0, 0, 7, 0, 0, 0, 0, 0, 1, 0x10, 0x00, b'a', 1,
    ];
    assert_refused(frame, malformed_body, "Metadata v4 topic name 4096");
    // ApiVersions v3 compact string claiming 65535 bytes (varint 65536).
    let frame: &[u8] = &[
        0, 18, 0, 3, 0, 0, 0, 7, 0, 0, 0, 0x80, 0x80, 0x04, b'x', 1, 0,
    ];
    assert_refused(frame, length_exceeds_frame, "ApiVersions v3 name 65535");
    // Produce v7 records claiming 256 MiB.
    let mut frame = BytesMut::from(&captured("kcat_produce_v7.bin")[..]);
    let at = records_size_at(&frame);
    frame[at..at + 4].copy_from_slice(&(256i32 << 20).to_be_bytes());
    assert_refused(&frame, length_exceeds_frame, "Produce v7 records 256 MiB");
}

#[test]
fn frame_sizes_that_cannot_be_right() {
    let max = 100 << 20;
    for (prefix, expect) in [
        (
            i32::MAX,
            FrameError::TooLarge {
                size: i32::MAX as usize,
                max,
            },
        ),
        (-1, FrameError::TooShort(-1)),
        (i32::MIN, FrameError::TooShort(i32::MIN as i64)),
        (0, FrameError::TooShort(0)),
        (9, FrameError::TooShort(9)),
    ] {
        let mut buf = BytesMut::from(&prefix.to_be_bytes()[..]);
        assert_eq!(take_frame(&mut buf, max), Err(expect), "size {prefix}");
    }
}
