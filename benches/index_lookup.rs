//! Offset index lookup, measured with criterion: a full 10 MiB sparse offset index (about
//! 1.3 million entries, memory-mapped) answers "the largest entry at or below this offset"
//! by binary search, at offsets spread over the whole index.
//! Run with `cargo bench --bench index_lookup`.

use broker::log::index::OffsetIndex;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn bench_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("00000000000000000000.index");
    let mut index = OffsetIndex::create(&path, 0, 10 << 20).expect("create index");
    let mut n = 0i64;
    // One entry every 16 offsets, 4 KiB apart, until the index is full.
    while index.append(n * 16, (n * 4096) as u32) {
        n += 1;
        if n * 4096 > u32::MAX as i64 - 4096 {
            break;
        }
    }
    let last = n * 16;
    let mut i = 0i64;
    c.bench_function("offset_index_lookup", |b| {
        b.iter(|| {
            i = (i + 7_919 * 16 + 3) % last;
            black_box(index.lookup(black_box(i)))
        })
    });
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
