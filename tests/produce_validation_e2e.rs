//! Produce's record-level rules over the wire, as Apache Kafka's LogValidator applies them:
//!
//! 1. A compacted topic refuses a batch holding a keyless record with INVALID_RECORD, one
//!    `record_errors` entry per keyless record (v8+) and Kafka's summary as the error
//!    message, in every codec; a keyed batch to the same partition right after is appended
//!    at the next offset; other partitions of the same request are unaffected; older
//!    versions get the code alone.
//! 2. A topic whose `compression.type` is a codec stores every batch in it (fetched back:
//!    the codec in the batch attributes, the same records), a batch already in it
//!    byte-identical but for the broker-owned fields, an idempotent retry of a recompressed
//!    batch is still recognised, and a batch that no longer fits `max.message.bytes` once
//!    stored uncompressed is MESSAGE_TOO_LARGE.

mod common;

use broker::log::batch::{parse_header, ATTRIBUTES_OFFSET, HEADER_SIZE};
use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, Record};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn codec_id(c: Compression) -> u8 {
    match c {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

async fn create_with_configs(
    c: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let req = create_topic_request(name, partitions, 1, configs);
    let resp = c.call(&req, 7).await;
    assert_eq!(resp.topics[0].error_code, 0, "{name}: {resp:?}");
}

fn keyless(value: &str, timestamp: i64) -> Record {
    Record {
        key: None,
        ..record("unused", value, timestamp)
    }
}

fn partition_data(partition: i32, records: Bytes) -> produce_request::PartitionProduceData {
    produce_request::PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(records))
}

fn topic_data(
    name: &str,
    partitions: Vec<produce_request::PartitionProduceData>,
) -> produce_request::TopicProduceData {
    produce_request::TopicProduceData::default()
        .with_name(tn(name))
        .with_partition_data(partitions)
}

async fn produce_at(
    c: &mut Client,
    version: i16,
    topics: Vec<produce_request::TopicProduceData>,
) -> ProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(topics);
    c.call(&req, version).await
}

/// Every batch of the partition from offset 0 to the high watermark, raw.
async fn fetch_all(c: &mut Client, topic: &str, partition: i32) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let d = fetch(c, topic, partition, offset).await;
        assert_eq!(d.error_code, 0);
        if offset >= d.high_watermark {
            return out;
        }
        let mut bytes = d.records.unwrap_or_default();
        while bytes.len() >= HEADER_SIZE {
            let h = parse_header(&bytes).unwrap();
            let size = h.total_size();
            if size > bytes.len() {
                break;
            }
            let b = bytes.split_to(size);
            offset = h.next_offset();
            out.push(b);
        }
    }
}

fn kafka_summary(messages: &[(i32, &str)]) -> String {
    let shown: Vec<String> = messages
        .iter()
        .take(3)
        .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
        .collect();
    format!(
        "One or more records have been rejected due to {} record errors in total, and only \
         showing the first three errors at most: [{}]",
        messages.len(),
        shown.join(", ")
    )
}

/// (key, value, timestamp, offset, header values) of every record.
type Seen = Vec<(Option<Bytes>, Option<Bytes>, i64, i64, Vec<Option<Bytes>>)>;

fn seen(records: &[Record]) -> Seen {
    records
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                r.value.clone(),
                r.timestamp,
                r.offset,
                r.headers.values().cloned().collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn keyless_records_to_a_compacted_topic_are_refused_with_kafkas_record_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_with_configs(&mut c, "cmp", 2, &[("cleanup.policy", "compact")]).await;
    create_with_configs(&mut c, "cmpdel", 1, &[("cleanup.policy", "delete,compact")]).await;
    create_topic(&mut c, "plain", 1).await;
    let message = "Compacted topic cannot accept message without key in topic partition cmp-1";

    let mut next = 0i64;
    let mut expected: Vec<(Bytes, Bytes)> = Vec::new();
    for (i, codec) in CODECS.into_iter().enumerate() {
        let bad = batch(
            &[
                record("a", "1", 10),
                keyless("2", 11),
                record("c", "3", 12),
                keyless("4", 13),
            ],
            codec,
        );
        let resp = produce_at(
            &mut c,
            9,
            vec![topic_data("cmp", vec![partition_data(1, bad)])],
        )
        .await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.index, 1);
        assert_eq!(
            p.error_code,
            ResponseError::InvalidRecord.code(),
            "{codec:?}"
        );
        assert_eq!(p.base_offset, -1);
        assert_eq!(p.log_start_offset, 0);
        let errors: Vec<(i32, String)> = p
            .record_errors
            .iter()
            .map(|e| {
                (
                    e.batch_index,
                    e.batch_index_error_message.as_ref().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            errors,
            vec![(1, message.to_string()), (3, message.to_string())],
            "{codec:?}"
        );
        assert_eq!(
            p.error_message.as_deref(),
            Some(kafka_summary(&[(1, message), (3, message)]).as_str())
        );

        // A keyed batch right after is appended where the refused one would have gone.
        let keys: Vec<Record> = (0..3)
            .map(|j| record(&format!("k{i}-{j}"), &format!("v{i}-{j}"), 20 + j))
            .collect();
        expected.extend(
            keys.iter()
                .map(|r| (r.key.clone().unwrap(), r.value.clone().unwrap())),
        );
        let resp = produce(&mut c, "cmp", 1, batch(&keys, codec), 1).await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{codec:?}: {:?}", p.error_message);
        assert_eq!(p.base_offset, next);
        assert!(p.record_errors.is_empty());
        next += 3;
    }
    // Only the keyed batches are in the log, as sent.
    let batches = fetch_all(&mut c, "cmp", 1).await;
    assert_eq!(batches.len(), CODECS.len());
    for (b, codec) in batches.iter().zip(CODECS) {
        assert_eq!(b[ATTRIBUTES_OFFSET + 1] & 7, codec_id(codec));
    }
    let all: Vec<(Bytes, Bytes)> = batches
        .iter()
        .flat_map(decode_records)
        .map(|r| (r.key.unwrap(), r.value.unwrap()))
        .collect();
    assert_eq!(all, expected);

    // One request: the compacted partition is refused, the others are appended.
    let tombstone = Record {
        value: None,
        ..keyless("", 5)
    };
    let resp = produce_at(
        &mut c,
        9,
        vec![
            topic_data(
                "cmp",
                vec![
                    partition_data(0, batch(&[tombstone], Compression::Lz4)),
                    partition_data(1, batch(&[record("x", "y", 1)], Compression::None)),
                ],
            ),
            topic_data(
                "plain",
                vec![partition_data(
                    0,
                    batch(&[keyless("p", 1), keyless("q", 2)], Compression::Gzip),
                )],
            ),
            topic_data(
                "cmpdel",
                vec![partition_data(
                    0,
                    batch(&[record("a", "b", 1), keyless("c", 2)], Compression::Zstd),
                )],
            ),
        ],
    )
    .await;
    let code = |t: usize, p: usize| resp.responses[t].partition_responses[p].error_code;
    assert_eq!(code(0, 0), ResponseError::InvalidRecord.code());
    assert_eq!(
        resp.responses[0].partition_responses[0].record_errors[0].batch_index, 0,
        "a keyless tombstone is refused too"
    );
    assert_eq!(code(0, 1), 0);
    assert_eq!(resp.responses[0].partition_responses[1].base_offset, next);
    assert_eq!(code(1, 0), 0);
    assert_eq!(code(2, 0), ResponseError::InvalidRecord.code());
    let p = &resp.responses[2].partition_responses[0];
    assert_eq!(p.record_errors.len(), 1);
    assert_eq!(
        p.record_errors[0].batch_index_error_message.as_deref(),
        Some("Compacted topic cannot accept message without key in topic partition cmpdel-0")
    );

    // Before v8 the response has neither field: the code alone.
    for version in [3, 7] {
        let resp = produce_at(
            &mut c,
            version,
            vec![topic_data(
                "cmp",
                vec![partition_data(
                    0,
                    batch(&[keyless("v", 1)], Compression::Gzip),
                )],
            )],
        )
        .await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code,
            ResponseError::InvalidRecord.code(),
            "v{version}"
        );
        assert!(p.record_errors.is_empty());
        assert_eq!(p.error_message, None);
    }
    assert_eq!(fetch(&mut c, "cmp", 0, 0).await.high_watermark, 0);
    b.stop().await;
}

#[tokio::test]
async fn a_record_count_that_does_not_match_the_records_is_invalid_on_a_compacted_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_with_configs(&mut c, "cnt", 1, &[("cleanup.policy", "compact")]).await;
    // Two records declared as three (lastOffsetDelta 2), CRC recomputed: the header checks
    // pass, the record walk does not.
    let mut bad = batch(
        &[record("a", "1", 1), record("b", "2", 2)],
        Compression::None,
    )
    .to_vec();
    bad[57..61].copy_from_slice(&3i32.to_be_bytes());
    bad[23..27].copy_from_slice(&2i32.to_be_bytes());
    let crc = crc32c::crc32c(&bad[ATTRIBUTES_OFFSET..]);
    bad[17..21].copy_from_slice(&crc.to_be_bytes());
    let resp = produce(&mut c, "cnt", 0, Bytes::from(bad), 1).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
    assert!(p.record_errors.is_empty());
    assert!(
        p.error_message
            .as_deref()
            .unwrap()
            .starts_with("Incorrect declared batch size, premature EOF reached"),
        "{:?}",
        p.error_message
    );
    b.stop().await;
}

#[tokio::test]
async fn a_topic_codec_stores_every_batch_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let topics = [
        ("t-lz4", "lz4", Compression::Lz4),
        ("t-zstd", "zstd", Compression::Zstd),
        ("t-none", "uncompressed", Compression::None),
        ("t-gzip", "gzip", Compression::Gzip),
    ];
    for (name, codec, _) in topics {
        create_with_configs(&mut c, name, 1, &[("compression.type", codec)]).await;
    }
    for (name, _, stored) in topics {
        let mut sent_records = Vec::new();
        let mut sent_batches = Vec::new();
        for (i, codec) in CODECS.into_iter().enumerate() {
            let records: Vec<Record> = (0..20)
                .map(|j| {
                    let mut r = record(&format!("k{i}-{j}"), &"v".repeat(50 + j), 1_000 + j as i64);
                    if j % 7 == 3 {
                        r.value = None;
                    }
                    r
                })
                .collect();
            let sent = batch(&records, codec);
            let resp = produce(&mut c, name, 0, sent.clone(), -1).await;
            let p = &resp.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "{name} {codec:?}: {:?}", p.error_message);
            assert_eq!(p.base_offset, (i * 20) as i64, "{name} {codec:?}");
            assert_eq!(p.log_append_time_ms, -1);
            let mut with_offsets = records.clone();
            for (j, r) in with_offsets.iter_mut().enumerate() {
                r.offset = (i * 20 + j) as i64;
            }
            sent_records.extend(with_offsets);
            sent_batches.push((codec, sent));
        }
        let stored_batches = fetch_all(&mut c, name, 0).await;
        assert_eq!(stored_batches.len(), CODECS.len(), "{name}");
        for ((codec, sent), got) in sent_batches.iter().zip(&stored_batches) {
            let h = parse_header(got).unwrap();
            assert_eq!(h.compression(), codec_id(stored), "{name}: sent {codec:?}");
            let sh = parse_header(sent).unwrap();
            assert_eq!(
                (
                    h.records_count,
                    h.last_offset_delta,
                    h.base_timestamp,
                    h.max_timestamp
                ),
                (
                    sh.records_count,
                    sh.last_offset_delta,
                    sh.base_timestamp,
                    sh.max_timestamp
                )
            );
            if *codec == stored {
                // Stored as sent: only base offset and leader epoch differ (both outside the
                // CRC).
                assert_eq!(got.len(), sent.len());
                assert_eq!(got[8..12], sent[8..12]);
                assert_eq!(got[16..], sent[16..], "{name}: {codec:?} stored as sent");
            }
        }
        let got: Vec<Record> = stored_batches.iter().flat_map(decode_records).collect();
        assert_eq!(seen(&got), seen(&sent_records), "{name}");
    }
    b.stop().await;
}

#[tokio::test]
async fn recompressed_idempotent_batches_are_deduplicated_and_oversize_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_with_configs(&mut c, "idem", 1, &[("compression.type", "lz4")]).await;
    create_with_configs(
        &mut c,
        "small",
        1,
        &[
            ("compression.type", "uncompressed"),
            ("max.message.bytes", "4000"),
        ],
    )
    .await;
    let init = init_producer_id(&mut c, 4).await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let records: Vec<Record> = (0..5).map(|j| record(&format!("k{j}"), "v", j)).collect();
    let sent = idempotent_batch(&records, pid, 0, 0, Compression::Gzip);
    let first = produce(&mut c, "idem", 0, sent.clone(), -1).await;
    let retry = produce(&mut c, "idem", 0, sent, -1).await;
    let (f, r) = (
        &first.responses[0].partition_responses[0],
        &retry.responses[0].partition_responses[0],
    );
    assert_eq!((f.error_code, r.error_code), (0, 0));
    assert_eq!((f.base_offset, r.base_offset), (0, 0));
    let stored = fetch_all(&mut c, "idem", 0).await;
    assert_eq!(stored.len(), 1);
    let h = parse_header(&stored[0]).unwrap();
    assert_eq!(
        (
            h.compression(),
            h.producer_id,
            h.producer_epoch,
            h.base_sequence
        ),
        (3, pid, 0, 0)
    );
    let next = idempotent_batch(&records, pid, 0, 5, Compression::Snappy);
    let resp = produce(&mut c, "idem", 0, next, -1).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 5);

    // 20 KiB of zeros: under 4000 bytes in zstd, over it uncompressed.
    let big: Vec<Record> = (0..20)
        .map(|j| record(&format!("k{j}"), &"\0".repeat(1024), j))
        .collect();
    let z = batch(&big, Compression::Zstd);
    assert!(z.len() < 4000);
    let resp = produce(&mut c, "small", 0, z, 1).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::MessageTooLarge.code());
    assert_eq!(fetch(&mut c, "small", 0, 0).await.high_watermark, 0);
    let ok = batch(&big[..2], Compression::Zstd);
    let resp = produce(&mut c, "small", 0, ok, 1).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    b.stop().await;
}
