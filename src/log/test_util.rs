//! Helpers shared by the unit tests of `crate::log` (compiled for tests only).
//!
//! Invariant: every batch made here is what a real producer would send (base offset 0,
//! leader epoch -1, correct CRC), so tests exercise the same path as the Produce handler.

use std::path::Path;

use super::batch::{parse_header, validate_producer_batches, BatchHeader, HEADER_SIZE};
use super::builder::RecordBatchBuilder;
use super::config::{FlushPolicy, LogConfig};
use super::partition_log::{AppendInfo, PartitionLog};

/// A producer batch of `n` records of `value_len` bytes with timestamps `ts, ts+1, ...`.
pub fn producer_batch(n: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new();
    let value = vec![0xabu8; value_len];
    for i in 0..n {
        b.push(ts + i as i64, Some(b"key"), Some(&value), &[]);
    }
    b.build()
}

/// A config with small segments and indexes so tests roll and index often.
pub fn small_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        retention_ms: None,
        retention_bytes: None,
        max_message_bytes: 1 << 20,
        message_timestamp_type_log_append: false,
        index_interval_bytes: 256,
        index_max_bytes: 64 * 1024,
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    }
}

/// Validates and appends one producer batch, as the Produce handler does.
pub fn produce(
    log: &mut PartitionLog,
    n: usize,
    value_len: usize,
    ts: i64,
    epoch: i32,
) -> AppendInfo {
    let bytes = producer_batch(n, value_len, ts);
    let headers = validate_producer_batches(&bytes, log.config().max_message_bytes)
        .expect("test batch validates");
    log.append(&bytes, &headers, epoch, ts)
        .expect("append succeeds")
}

/// Splits fetched bytes into batch headers.
pub fn headers_of(mut bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    while bytes.len() >= HEADER_SIZE {
        let h = parse_header(bytes).expect("fetched batch parses");
        assert!(super::batch::crc_matches(&bytes[..h.total_size()], &h));
        bytes = &bytes[h.total_size()..];
        out.push(h);
    }
    assert!(bytes.is_empty(), "fetch returned a partial batch");
    out
}

/// Path of the `.log` of segment `base` in `dir`.
pub fn log_file(dir: &Path, base: i64) -> std::path::PathBuf {
    dir.join(super::segment::file_name(base, super::segment::LOG_SUFFIX))
}

/// Runs `f` with a tracing subscriber that records every event, and returns the text.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::sync::{Arc, Mutex};

    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let sink = Sink(Arc::new(Mutex::new(Vec::new())));
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&sink.0.lock().expect("log sink")).into_owned();
    (result, text)
}
