//! `decode_request` on the frames that dominate a broker's traffic: a Produce v9 with a
//! 16 KiB record payload, a consumer's Fetch v12, and a Metadata v12 for 20 topics.
//!
//! The `unguarded` group decodes the same frames with kafka-protocol directly (no
//! `GuardedBuf`), to show what the guard costs: frames holding an int32 larger than the
//! frame (Fetch's `max_bytes`, `partition_max_bytes`) are decoded three times.
//!
//! Run: `cargo bench -p protocol --bench decode`

#[path = "../tests/common/mod.rs"]
mod common;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use protocol::codec::{decode_request, Decoded};
use protocol::kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use protocol::kafka_protocol::protocol::Decodable;

/// Header and body straight through kafka-protocol, as the guard's final pass does.
fn unguarded(frame: &Bytes) -> RequestKind {
    let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).unwrap();
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let mut buf = frame.clone();
    RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
    RequestKind::decode(key, &mut buf, version).unwrap()
}

fn bench_frame(c: &mut Criterion, name: &str, frame: Bytes) {
    // The frame must decode, or the figures mean nothing.
    assert!(
        matches!(decode_request(&frame), Ok(Decoded::Request(_))),
        "{name}"
    );
    let mut group = c.benchmark_group("decode_request");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function(name, |b| b.iter(|| decode_request(black_box(&frame))));
    group.finish();
    let mut group = c.benchmark_group("unguarded");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function(name, |b| b.iter(|| unguarded(black_box(&frame))));
    group.finish();
}

fn decode(c: &mut Criterion) {
    let produce = common::frame_of(
        ApiKey::Produce,
        9,
        1,
        &RequestKind::Produce(common::produce(16 * 1024)),
    );
    bench_frame(c, "produce_v9_16KiB", produce);

    let fetch = common::frame_of(ApiKey::Fetch, 12, 2, &RequestKind::Fetch(common::fetch(12)));
    bench_frame(c, "fetch_v12", fetch);

    let metadata = common::frame_of(
        ApiKey::Metadata,
        12,
        3,
        &RequestKind::Metadata(common::metadata(12, Some(20))),
    );
    bench_frame(c, "metadata_v12_20_topics", metadata);
}

criterion_group!(benches, decode);
criterion_main!(benches);
