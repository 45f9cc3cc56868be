//! The log cleaner thread of a broker (Kafka's `LogCleaner` with one thread): every
//! `cleaner.backoff` it looks at the hosted compacted partitions, picks the dirtiest one
//! that is due (dirty ratio at least `min.cleanable.dirty.ratio`, or older than
//! `max.compaction.lag.ms`), cleans it, and looks again at once; it cleans leaders and
//! followers alike, each replica its own log below its high watermark.

use std::sync::Arc;

use crate::clock::now_ms;
use crate::config::CleanerConfig;
use crate::log::cleaner::Throttle;
use crate::replication::PartitionRegistry;

/// Cleans the dirtiest due partition, if any; whether it cleaned one.
pub fn clean_dirtiest(partitions: &PartitionRegistry, config: &CleanerConfig) -> bool {
    let now = now_ms();
    let mut best = None;
    for p in partitions.all() {
        if let Some(d) = p.dirtiness(now) {
            if d.due && best.as_ref().is_none_or(|(_, r)| d.ratio > *r) {
                best = Some((p, d.ratio));
            }
        }
    }
    let Some((partition, ratio)) = best else {
        return false;
    };
    let started = std::time::Instant::now();
    let mut throttle = Throttle::new(config.io_max_bytes_per_second);
    match partition.clean(now, config.dedupe_buffer_bytes, &mut throttle) {
        Ok(Some(s)) => {
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            tracing::info!(
                topic = %partition.topic,
                partition = partition.index,
                dirty_ratio = format!("{ratio:.2}"),
                read_mb = format!("{:.2}", s.bytes_read as f64 / 1e6),
                written_mb = format!("{:.2}", s.bytes_written as f64 / 1e6),
                mb_per_s = format!("{:.1}", s.bytes_read as f64 / 1e6 / secs),
                records_kept = s.records_kept,
                records_removed = s.records_removed,
                tombstones_removed = s.tombstones_removed,
                keys = s.keys_mapped,
                groups = s.groups,
                clean_up_to = s.end_offset,
                "cleaned a compacted log"
            );
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "log cleaning failed");
            false
        }
    }
}

/// The cleaner loop, on a blocking thread: cleans while something is due, then waits
/// `backoff`.
pub async fn run(partitions: Arc<PartitionRegistry>, config: CleanerConfig) {
    loop {
        let p = partitions.clone();
        let c = config.clone();
        let cleaned = tokio::task::spawn_blocking(move || clean_dirtiest(&p, &c))
            .await
            .unwrap_or(false);
        if !cleaned {
            tokio::time::sleep(config.backoff).await;
        }
    }
}
