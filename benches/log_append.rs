//! Storage hot paths, measured with criterion:
//! - `validate_16k`: produce-side validation (header checks + CRC-32C) of one 16 KiB batch;
//! - `validate_append_16k`: validation plus `PartitionLog::append` of that batch (offset
//!   assignment, one positioned write, index upkeep), flush policy `Never` as in Kafka's
//!   default; retention runs every 4096 appends so the temp dir stays bounded, and its cost
//!   (segment deletion) is part of the figure as it would be on a live broker;
//! - `read_1mib`: `PartitionLog::read` of 1 MiB of whole batches at rotating offsets of a
//!   64 MiB log that sits in the page cache;
//! - `records_compacted_16k/{none,lz4,zstd}`: the produce record pass of a compacted topic
//!   (`validate::check_all`: inflate if compressed, walk every record, every key present),
//!   the cost a compacted topic adds to `validate_16k`; the batch is stored as sent;
//! - `records_recompress_16k/{none_to_lz4,zstd_to_lz4}`: the same pass on a topic whose
//!   `compression.type` is lz4, which rebuilds the batch in lz4.
//!
//! A batch is 16 records of 1 KiB values (about 16.5 KiB on the wire), uncompressed; the
//! compressed cases hold the same records (throughput counts the uncompressed bytes).
//! Run with `cargo bench --bench log_append`.

use std::time::{SystemTime, UNIX_EPOCH};

use broker::log::validate::{self, RecordRules};
use broker::log::{
    parse_header, rewrite, validate_producer_batches, Codec, FlushPolicy, LogConfig, PartitionLog,
    RecordBatchBuilder,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const RECORDS_PER_BATCH: usize = 16;
const RECORD_BYTES: usize = 1024;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A producer batch as a client would send it.
fn producer_batch() -> Vec<u8> {
    let mut b = RecordBatchBuilder::new();
    let value = vec![0x5au8; RECORD_BYTES];
    let ts = now_ms();
    for i in 0..RECORDS_PER_BATCH {
        b.push(
            ts + i as i64,
            Some(format!("key-{i}").as_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 128 * 1024 * 1024,
        retention_bytes: Some(512 * 1024 * 1024),
        retention_ms: None,
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    }
}

fn bench_append(c: &mut Criterion) {
    let template = producer_batch();
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(template.len() as u64));

    group.bench_function("validate_16k", |b| {
        b.iter(|| validate_producer_batches(black_box(&template), 1 << 20).map(|h| h.len()))
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open log");
    let mut buf = template.clone();
    let mut appended: u64 = 0;
    group.bench_function("validate_append_16k", |b| {
        b.iter(|| {
            // Append patches base offset (bytes 0..8) and leader epoch (12..16) in place;
            // restore the producer's values, as a fresh request would carry them.
            buf[0..8].copy_from_slice(&template[0..8]);
            buf[12..16].copy_from_slice(&template[12..16]);
            let headers = validate_producer_batches(&buf, 1 << 20).expect("valid batch");
            let info = log.append(&buf, &headers, 0, 0).expect("append succeeds");
            appended += 1;
            if appended.is_multiple_of(4096) {
                log.apply_retention(now_ms()).expect("retention");
            }
            info.base_offset
        })
    });
    group.finish();
    drop(log);
}

fn bench_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open log");
    let template = producer_batch();
    let target = 64 * 1024 * 1024;
    let mut written = 0;
    while written < target {
        let buf = template.clone();
        let headers = validate_producer_batches(&buf, 1 << 20).expect("valid batch");
        log.append(&buf, &headers, 0, 0).expect("append");
        written += buf.len();
    }
    let end = log.log_end_offset();
    let step = (1024 * 1024 / template.len()) as i64 * RECORDS_PER_BATCH as i64;

    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(1024 * 1024));
    let mut offset = 0i64;
    group.bench_function("read_1mib", |b| {
        b.iter(|| {
            let r = log.read(offset, 1024 * 1024).expect("read");
            offset += step;
            if offset + step >= end {
                offset = 0;
            }
            r.bytes.len()
        })
    });
    group.finish();
}

fn bench_records(c: &mut Criterion) {
    let template = producer_batch();
    let in_codec = |codec: Codec| {
        let h = parse_header(&template).expect("header");
        rewrite::recompress(&template, &h, codec, 1 << 20).expect("recompress")
    };
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(template.len() as u64));
    let mut case = |name: &str, batch: Vec<u8>, rules: RecordRules| {
        let headers = validate_producer_batches(&batch, 1 << 20).expect("valid batch");
        group.bench_function(name, |b| {
            b.iter(|| {
                validate::check_all(black_box(&batch), &headers, &rules, "bench", 0)
                    .expect("accepted")
                    .map_or(0, |r| r.records.len())
            })
        });
    };
    let compacted = RecordRules::new(true, "producer", 1 << 20);
    case("records_compacted_16k/none", template.clone(), compacted);
    case("records_compacted_16k/lz4", in_codec(Codec::Lz4), compacted);
    case(
        "records_compacted_16k/zstd",
        in_codec(Codec::Zstd),
        compacted,
    );
    let lz4_topic = RecordRules::new(false, "lz4", 1 << 20);
    case(
        "records_recompress_16k/none_to_lz4",
        template.clone(),
        lz4_topic,
    );
    case(
        "records_recompress_16k/zstd_to_lz4",
        in_codec(Codec::Zstd),
        lz4_topic,
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench_append, bench_read, bench_records
}
criterion_main!(benches);
