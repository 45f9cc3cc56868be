//! Appending to a [`PartitionLog`]: the leader's append of a produce request
//! ([`PartitionLog::append`], Kafka's `appendAsLeader`) and a follower's append of batches
//! fetched from the leader ([`PartitionLog::append_replicated`], `appendAsFollower`).
//!
//! What always holds: nothing is written unless the headers describe the payload exactly;
//! the leader assigns offsets consecutively from the log end offset and refuses an epoch
//! older than the latest, and a follower's batches must continue the log end offset
//! exactly; a new epoch is persisted before the first batch that carries it; idempotent
//! producer batches are checked before the write (a duplicate writes nothing) and applied to
//! the producer state after it; an ABORT marker that ends a transaction gets its `.txnindex`
//! entry right after the write, on the leader and on followers alike; the caller's buffer is
//! never changed (only copies of the batch headers are patched).

use super::super::batch::{self, peek_batch_length, BatchHeader, ATTR_TIMESTAMP_TYPE, CRC_OFFSET};
use super::super::producer_state::{AppendOrigin, Checked, ProducerBatch};
use super::{LogError, PartitionLog};

/// What an append produced (the Produce response fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first appended record.
    pub base_offset: i64,
    /// Offset of the last appended record.
    pub last_offset: i64,
    /// The broker time stamped on the batches, or -1 for CreateTime.
    pub log_append_time: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
    /// True when the batch repeated one an idempotent producer had already written: nothing
    /// was written, and the offsets (and, for LogAppendTime, the time) are the original
    /// append's. Produce answers it with NONE, as Kafka does.
    pub duplicate: bool,
}

impl PartitionLog {
    /// Appends the records of one produce request (already checked with
    /// `batch::validate_producer_batches`, which returned `headers`).
    ///
    /// Batches with a producer id are first checked against the idempotent-producer state
    /// (see `producer_state`): an older producer epoch is [`LogError::InvalidProducerEpoch`],
    /// a sequence gap [`LogError::OutOfOrderSequence`], and a repeat of one of the producer's
    /// last five batches writes nothing and returns that batch's original offsets with
    /// [`AppendInfo::duplicate`] set.
    ///
    /// Assigns offsets consecutively from the log end offset and writes `leader_epoch` into
    /// each batch, in copies of their headers (`records` is not changed); with LogAppendTime configured, stamps `now_ms` and
    /// recomputes the CRC. Records a newer `leader_epoch` in the epoch history first. Rolls
    /// the active segment when the payload would push it past `segment_bytes`, when the last
    /// offset would not fit the 4-byte relative offset, or when an index is full. Then writes
    /// `records` with one write (no copy), updates the indexes and applies the flush policy
    /// ([`FlushPolicy::Always`]: `fdatasync` before returning; `EveryMessages(n)`: once `n`
    /// records are unflushed).
    pub fn append(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_from(records, headers, leader_epoch, now_ms, AppendOrigin::Client)
    }

    /// [`PartitionLog::append`] for batches from `origin`: a coordinator's batches (markers,
    /// transactional offset commits) skip the sequence checks.
    pub fn append_from(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        leader_epoch: i32,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendInfo, LogError> {
        self.check_online()?;
        let count = self.check_append_args(records, headers, leader_epoch)?;
        let base = self.log_end_offset;
        let last = base + count - 1;
        let log_append_time = self
            .config
            .message_timestamp_type_log_append
            .then_some(now_ms);

        let mut producer_batches = Vec::new();
        let (mut next, mut at) = (base, 0usize);
        for h in headers {
            let max_timestamp = log_append_time.unwrap_or(h.max_timestamp);
            let bytes = &records[at..at + h.total_size()];
            producer_batches.extend(ProducerBatch::of(h, bytes, next, max_timestamp));
            next += h.offset_count();
            at += h.total_size();
        }
        let pending = if producer_batches.is_empty() {
            None
        } else {
            match self
                .producers
                .check_append_from(&producer_batches, origin)?
            {
                Checked::Append(pending) => Some(pending),
                Checked::Duplicate(original) => {
                    return Ok(AppendInfo {
                        base_offset: original.first_offset,
                        last_offset: original.last_offset,
                        log_append_time: log_append_time.map_or(-1, |_| original.max_timestamp),
                        log_start_offset: self.log_start_offset,
                        duplicate: true,
                    });
                }
            }
        };

        let newest = log_append_time
            .unwrap_or_else(|| headers.iter().map(|h| h.max_timestamp).max().unwrap_or(-1));
        self.roll_if_needed(base, last, records.len(), newest)?;

        if self
            .epoch_cache
            .latest_epoch()
            .is_none_or(|latest| leader_epoch > latest)
        {
            self.epoch_cache.assign(leader_epoch, base);
            let r = self.epoch_cache.persist();
            self.guard(r)?;
        }

        // Only each batch's 61-byte header is copied and patched; the record bytes are
        // written from the caller's buffer by one vectored write.
        let mut assigned: Vec<BatchHeader> = headers.to_vec();
        let mut patched: Vec<[u8; batch::HEADER_SIZE]> = Vec::with_capacity(headers.len());
        let (mut at, mut next) = (0usize, base);
        for h in assigned.iter_mut() {
            let size = h.total_size();
            let mut header = [0u8; batch::HEADER_SIZE];
            header.copy_from_slice(&records[at..at + batch::HEADER_SIZE]);
            let body = &records[at + batch::HEADER_SIZE..at + size];
            batch::assign_offsets_split(&mut header, body, next, leader_epoch, log_append_time);
            h.base_offset = next;
            h.partition_leader_epoch = leader_epoch;
            if let Some(now) = log_append_time {
                h.attributes |= ATTR_TIMESTAMP_TYPE;
                h.max_timestamp = now;
                h.crc = u32::from_be_bytes([
                    header[CRC_OFFSET],
                    header[CRC_OFFSET + 1],
                    header[CRC_OFFSET + 2],
                    header[CRC_OFFSET + 3],
                ]);
            }
            patched.push(header);
            next += h.offset_count();
            at += size;
        }
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(headers.len() * 2);
        let mut at = 0usize;
        for (h, header) in assigned.iter().zip(patched.iter()) {
            let size = h.total_size();
            pieces.push(header);
            pieces.push(&records[at + batch::HEADER_SIZE..at + size]);
            at += size;
        }

        let r = self
            .active_mut()
            .and_then(|seg| seg.append_pieces(&pieces, &assigned));
        self.guard(r)?;
        self.log_end_offset = next;
        if let Some(pending) = pending {
            let completed = self.producers.commit(pending, now_ms);
            let r = self.index_aborted(&completed);
            self.guard(r)?;
        }
        self.after_write(count, now_ms)?;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: next - 1,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Appends batches fetched from the partition leader (a follower's write): they keep
    /// the offsets, leader epochs and timestamps the leader gave them, and must start at
    /// this log's end offset (or after it: a compacted leader log has gaps). Each new leader epoch goes into the epoch history at its first
    /// batch, and producer batches update the idempotent-producer state as they do on the
    /// leader, so a follower that becomes leader still recognises retries.
    pub fn append_replicated(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<(), LogError> {
        self.check_online()?;
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
            return Ok(());
        };
        // A compacted leader log has gaps between batches (whole batches cleaned away), so
        // batches may start after the log end and after each other, never before.
        if first.base_offset < self.log_end_offset {
            return Err(self.invalid_append(format!(
                "replicated batches start at offset {} but the log ends at {}",
                first.base_offset, self.log_end_offset
            )));
        }
        let mut expected = first.base_offset;
        let mut total = 0usize;
        for h in headers {
            if h.base_offset < expected || h.last_offset_delta < 0 {
                return Err(self.invalid_append(format!(
                    "replicated batch at offset {} does not follow offset {}",
                    h.base_offset,
                    expected - 1
                )));
            }
            expected = h.next_offset();
            total += h.total_size();
        }
        if total != records.len() {
            return Err(self.invalid_append(format!(
                "the headers describe {total} bytes but the payload has {}",
                records.len()
            )));
        }
        let newest = headers.iter().map(|h| h.max_timestamp).max().unwrap_or(-1);
        self.roll_if_needed(first.base_offset, last.last_offset(), records.len(), newest)?;
        let mut epochs_changed = false;
        for h in headers {
            let epoch = h.partition_leader_epoch;
            if epoch >= 0 && self.epoch_cache.latest_epoch().is_none_or(|e| epoch > e) {
                epochs_changed |= self.epoch_cache.assign(epoch, h.base_offset);
            }
        }
        if epochs_changed {
            let r = self.epoch_cache.persist();
            self.guard(r)?;
        }
        let r = self
            .active_mut()
            .and_then(|seg| seg.append_batches(records, headers));
        self.guard(r)?;
        self.log_end_offset = last.next_offset();
        let mut completed = Vec::new();
        let mut at = 0usize;
        for h in headers {
            let bytes = &records[at..at + h.total_size()];
            at += h.total_size();
            if let Some(batch) = ProducerBatch::stored(h, bytes) {
                completed.extend(self.producers.replay(&batch, now_ms));
            }
        }
        let r = self.index_aborted(&completed);
        self.guard(r)?;
        self.after_write(last.next_offset() - first.base_offset, now_ms)
    }

    /// Checks that `headers` describe `records` exactly; returns the number of offsets.
    fn check_append_args(
        &self,
        records: &[u8],
        headers: &[BatchHeader],
        leader_epoch: i32,
    ) -> Result<i64, LogError> {
        if headers.is_empty() {
            return Err(self.invalid_append("no batch headers were given".to_string()));
        }
        if leader_epoch < 0 {
            return Err(self.invalid_append(format!(
                "leader epoch {leader_epoch} is negative; the leader must pass its epoch"
            )));
        }
        if let Some(latest) = self.epoch_cache.latest_epoch() {
            if leader_epoch < latest {
                return Err(LogError::StaleLeaderEpoch {
                    dir: self.dir.clone(),
                    epoch: leader_epoch,
                    latest,
                });
            }
        }
        let (mut at, mut count) = (0usize, 0i64);
        for h in headers {
            let size = h.total_size();
            let slice = records.get(at..at.saturating_add(size));
            if slice.and_then(peek_batch_length) != Some(h.batch_length) {
                return Err(self.invalid_append(format!(
                    "the header of batch {} does not match the bytes at position {at}",
                    count
                )));
            }
            if h.last_offset_delta < 0 {
                return Err(self.invalid_append(format!(
                    "a batch header has lastOffsetDelta {}",
                    h.last_offset_delta
                )));
            }
            count += h.offset_count();
            at += size;
        }
        if at != records.len() {
            return Err(self.invalid_append(format!(
                "the headers describe {at} bytes but the payload has {}",
                records.len()
            )));
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::log::batch::validate_producer_batches;
    use crate::log::partition_log::test_support::open;
    use crate::log::partition_log::LogConfig;
    use crate::log::test_util::{headers_of, produce, producer_batch, small_config};

    #[test]
    fn append_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        let mut sent = Vec::new();
        for i in 0..3 {
            let mut bytes = producer_batch(4, 100, 1_000 + i);
            let headers = validate_producer_batches(&bytes, 1 << 20).unwrap();
            let info = log.append(&bytes, &headers, 7, 5_000).unwrap();
            assert_eq!(info.base_offset, i * 4);
            assert_eq!(info.last_offset, i * 4 + 3);
            assert_eq!(info.log_append_time, -1);
            assert_eq!(info.log_start_offset, 0);
            // The caller's buffer is untouched; the log stores it with offsets assigned.
            batch::assign_offsets(&mut bytes, i * 4, 7, None);
            sent.extend_from_slice(&bytes);
        }
        assert_eq!(log.log_end_offset(), 12);
        let got = log.read(0, 1 << 20).unwrap();
        assert_eq!(
            &got.bytes[..],
            &sent[..],
            "stored exactly as sent after patching"
        );
        assert_eq!((got.log_start_offset, got.log_end_offset), (0, 12));
        let hs = headers_of(&got.bytes);
        assert_eq!(
            hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
            vec![0, 4, 8]
        );
        assert!(hs.iter().all(|h| h.partition_leader_epoch == 7));
    }

    #[test]
    fn a_follower_copy_matches_the_leader_and_reads_stop_at_the_high_watermark() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(ldir.path(), small_config(4096));
        let mut follower = open(fdir.path(), small_config(4096));
        for i in 0..20 {
            produce(&mut leader, 3, 200, 1_000 + i, if i < 10 { 1 } else { 2 });
        }
        leader.begin_leader_epoch(3).unwrap();
        // Replicate in fetch-sized pieces, as the fetcher does.
        while follower.log_end_offset() < leader.log_end_offset() {
            let got = leader.read(follower.log_end_offset(), 1500).unwrap();
            let (headers, len) = batch::split_whole_batches(&got.bytes).unwrap();
            follower
                .append_replicated(&got.bytes[..len], &headers, 9_000)
                .unwrap();
        }
        assert_eq!(
            leader.read(0, 1 << 20).unwrap().bytes,
            follower.read(0, 1 << 20).unwrap().bytes
        );
        assert_eq!(follower.end_offset_for_epoch(1), (1, 30));
        assert_eq!(follower.latest_epoch(), Some(2));
        assert_eq!(leader.latest_epoch(), Some(3));
        assert!(
            follower.segment_base_offsets().len() > 1,
            "the follower rolls too"
        );
        // Replicated batches must continue the log exactly.
        let again = leader.read(0, 1 << 20).unwrap();
        let (headers, len) = batch::split_whole_batches(&again.bytes).unwrap();
        assert!(follower
            .append_replicated(&again.bytes[..len], &headers, 9_000)
            .is_err());
        // A consumer read never passes the high watermark (a batch boundary).
        let below = leader
            .plan_read_below(0, 1 << 20, 9)
            .unwrap()
            .execute()
            .unwrap();
        let hs = headers_of(&below.bytes);
        assert_eq!(hs.last().unwrap().next_offset(), 9);
        let at_hw = leader
            .plan_read_below(9, 1 << 20, 9)
            .unwrap()
            .execute()
            .unwrap();
        assert!(at_hw.bytes.is_empty());
        assert!(leader.plan_read_below(61, 1 << 20, 9).is_err());
    }

    #[test]
    fn log_append_time_stamps_the_batch_and_keeps_it_valid() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            message_timestamp_type_log_append: true,
            ..LogConfig::default()
        };
        let mut log = open(dir.path(), config);
        let bytes = producer_batch(3, 10, 5);
        let headers = validate_producer_batches(&bytes, 1 << 20).unwrap();
        let info = log.append(&bytes, &headers, 0, 777_000).unwrap();
        assert_eq!(info.log_append_time, 777_000);
        let hs = headers_of(&log.read(0, 1 << 20).unwrap().bytes);
        assert!(hs[0].timestamp_type_is_log_append());
        assert_eq!(hs[0].max_timestamp, 777_000);
        assert_eq!(log.offset_for_timestamp(700_000), Some((0, 777_000)));
        drop(log);
        let log = open(dir.path(), LogConfig::default());
        assert_eq!(
            log.log_end_offset(),
            3,
            "the recomputed CRC survives recovery"
        );
    }

    #[test]
    fn append_refuses_headers_that_do_not_match_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        let a = producer_batch(2, 10, 0);
        let hs = validate_producer_batches(&a, 1 << 20).unwrap();
        let b = producer_batch(3, 30, 0);
        assert!(matches!(
            log.append(&b, &hs, 0, 0),
            Err(LogError::InvalidAppend { .. })
        ));
        assert!(log.append(&a, &hs, -1, 0).is_err());
        assert_eq!(log.log_end_offset(), 0);
    }
}
