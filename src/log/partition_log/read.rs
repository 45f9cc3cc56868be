//! Fetch reads from a [`PartitionLog`]: [`PartitionLog::plan_read`] decides under the log's
//! lock which file, where and how many bytes; [`ReadPlan::execute`] does the one positioned
//! read without it.
//!
//! What always holds: a read returns whole batches only, starting with the batch that
//! contains the fetch offset, at least that one batch (Kafka's "make progress" rule), and
//! never past the end of that batch's segment; a fetch offset outside `[log start offset,
//! log end offset]` is [`LogError::OffsetOutOfRange`]; a plan stays valid while retention
//! deletes its segment and appends continue.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::super::batch::{peek_batch_length, LOG_OVERHEAD, MIN_BATCH_LENGTH};
use super::{LogError, PartitionLog};

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, starting with the batch that contains the fetch offset; empty at the
    /// log end (never "null").
    pub bytes: Bytes,
    /// The log start offset when the read was planned.
    pub log_start_offset: i64,
    /// The log end offset when the read was planned.
    pub log_end_offset: i64,
}

/// A read decided under the log's lock and carried out without it: which file, where, how
/// many bytes. It stays valid when retention deletes the segment meanwhile (the open handle
/// keeps the data) and when appends continue (bytes already written never change). A
/// truncation in between (replication only) can make it return fewer batches.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    file: Option<Arc<File>>,
    path: PathBuf,
    position: u64,
    len: usize,
    log_start_offset: i64,
    log_end_offset: i64,
}

impl ReadPlan {
    /// Bytes the read will ask for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is nothing to read (fetch at the log end).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Does the read: one positioned read into one buffer, cut back to whole batches.
    pub fn execute(self) -> Result<ReadResult, LogError> {
        let bytes = match self.file {
            Some(file) if self.len > 0 => {
                // No zero-fill: pread writes into the spare capacity and the length is set
                // to what it wrote (zeroing a fresh buffer per fetch was half the CPU of a
                // catch-up read).
                let mut buf: Vec<u8> = Vec::with_capacity(self.len);
                let mut filled = 0;
                while filled < self.len {
                    // SAFETY: the destination is the vector's unused capacity past `filled`
                    // (`self.len - filled` bytes are reserved); the kernel writes at most that
                    // many bytes, and only the bytes it reports written become part of the
                    // vector (`set_len` below).
                    let n = unsafe {
                        libc::pread(
                            file.as_raw_fd(),
                            buf.as_mut_ptr().add(filled) as *mut libc::c_void,
                            self.len - filled,
                            (self.position + filled as u64) as libc::off_t,
                        )
                    };
                    if n < 0 {
                        let e = std::io::Error::last_os_error();
                        if e.kind() == std::io::ErrorKind::Interrupted {
                            continue;
                        }
                        return Err(LogError::io("read", &self.path, e));
                    }
                    if n == 0 {
                        break;
                    }
                    filled += n as usize;
                    // SAFETY: pread initialised the first `filled` bytes.
                    unsafe { buf.set_len(filled) };
                }
                buf.truncate(filled);
                let whole = whole_batches_prefix(&buf);
                buf.truncate(whole);
                Bytes::from(buf)
            }
            _ => Bytes::new(),
        };
        Ok(ReadResult {
            bytes,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        })
    }
}

/// Length of the longest prefix of `buf` made of whole batches.
fn whole_batches_prefix(buf: &[u8]) -> usize {
    let mut at = 0usize;
    while let Some(len) = buf.get(at..).and_then(peek_batch_length) {
        if len < MIN_BATCH_LENGTH {
            break;
        }
        let end = at + len as usize + LOG_OVERHEAD;
        if end > buf.len() {
            break;
        }
        at = end;
    }
    at
}

impl PartitionLog {
    /// Plans a read of whole batches starting with the batch that contains `fetch_offset`,
    /// up to `max_bytes`, but always at least that one whole batch even when it is larger
    /// (Kafka's "make progress" rule). A read stops at the end of the segment holding that
    /// batch; the client's next fetch continues in the next segment. `fetch_offset` equal to
    /// the log end offset gives an empty read; below the log start offset or above the log
    /// end offset it is [`LogError::OffsetOutOfRange`].
    pub fn plan_read(&self, fetch_offset: i64, max_bytes: usize) -> Result<ReadPlan, LogError> {
        let (lso, leo) = (self.log_start_offset, self.log_end_offset);
        if fetch_offset < lso || fetch_offset > leo {
            return Err(LogError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: lso,
                log_end_offset: leo,
                dir: self.dir.clone(),
            });
        }
        let empty = ReadPlan {
            file: None,
            path: self.dir.clone(),
            position: 0,
            len: 0,
            log_start_offset: lso,
            log_end_offset: leo,
        };
        if fetch_offset == leo {
            return Ok(empty);
        }
        let start = self
            .segments
            .range(..=fetch_offset)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        for seg in self.segments.range(start..).map(|(_, s)| s) {
            if let Some((pos, h)) = seg.find_batch(fetch_offset)? {
                let available = seg.size().saturating_sub(pos);
                let wanted = (max_bytes as u64).min(available);
                let len = wanted.max(h.total_size() as u64) as usize;
                return Ok(ReadPlan {
                    file: Some(Arc::clone(seg.file())),
                    path: seg.log_path().to_path_buf(),
                    position: pos,
                    len,
                    log_start_offset: lso,
                    log_end_offset: leo,
                });
            }
        }
        Ok(empty)
    }

    /// [`plan_read`](Self::plan_read) that returns no batch at or above `max_offset` (a
    /// consumer reads only up to the high watermark, which is always a batch boundary).
    /// A fetch offset between `max_offset` and the log end offset reads nothing.
    pub fn plan_read_below(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadPlan, LogError> {
        if max_offset >= self.log_end_offset {
            return self.plan_read(fetch_offset, max_bytes);
        }
        if fetch_offset >= max_offset && fetch_offset <= self.log_end_offset {
            return self.plan_read(self.log_end_offset, max_bytes);
        }
        let mut plan = self.plan_read(fetch_offset, max_bytes)?;
        let stop = self
            .segments
            .range(..=max_offset)
            .next_back()
            .map(|(_, seg)| seg)
            .filter(|seg| seg.log_path() == plan.path)
            .map(|seg| seg.find_batch(max_offset))
            .transpose()?
            .flatten();
        if let Some((stop_at, _)) = stop {
            if stop_at >= plan.position {
                plan.len = plan.len.min((stop_at - plan.position) as usize);
            }
        }
        Ok(plan)
    }

    /// [`plan_read`](Self::plan_read) and [`ReadPlan::execute`] in one call.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        self.plan_read(fetch_offset, max_bytes)?.execute()
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::log::partition_log::test_support::open;
    use crate::log::partition_log::LogConfig;
    use crate::log::test_util::{headers_of, produce, producer_batch, small_config};

    #[test]
    fn read_returns_the_whole_batch_containing_a_mid_batch_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        produce(&mut log, 10, 50, 1, 0);
        produce(&mut log, 10, 50, 2, 0);
        for offset in [5, 9] {
            let hs = headers_of(&log.read(offset, 1 << 20).unwrap().bytes);
            assert_eq!(
                hs[0].base_offset, 0,
                "batch containing {offset}, not the next"
            );
        }
        let hs = headers_of(&log.read(13, 1 << 20).unwrap().bytes);
        assert_eq!(hs[0].base_offset, 10);
        assert_eq!(hs.len(), 1);
    }

    #[test]
    fn read_returns_at_least_one_whole_batch_and_only_whole_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        for i in 0..4 {
            produce(&mut log, 5, 200, i, 0);
        }
        let one = log.read(0, 1).unwrap().bytes;
        let hs = headers_of(&one);
        assert_eq!(
            hs.len(),
            1,
            "a batch larger than max_bytes is still returned whole"
        );
        let size = hs[0].total_size();
        let r = log.read(0, size * 2 + size / 2).unwrap().bytes;
        assert_eq!(headers_of(&r).len(), 2, "a partial third batch is cut off");
        assert_eq!(r.len(), size * 2);
    }

    #[test]
    fn read_at_the_end_is_empty_and_outside_the_log_is_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        assert!(log.read(0, 100).unwrap().bytes.is_empty());
        produce(&mut log, 3, 10, 1, 0);
        assert!(log.read(3, 100).unwrap().bytes.is_empty());
        let e = log.read(4, 100).unwrap_err();
        assert!(matches!(e, LogError::OffsetOutOfRange { .. }));
        assert_eq!(e.kafka_error_code(), 1);
        assert!(log.read(-1, 100).is_err());
    }

    #[test]
    fn index_lookup_finds_every_offset_among_many_small_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config(1 << 20));
        for i in 0..500 {
            produce(&mut log, 2, 20, i, 0);
        }
        for offset in (0..1000).step_by(7) {
            let hs = headers_of(&log.read(offset, 1).unwrap().bytes);
            assert_eq!(hs[0].base_offset, offset / 2 * 2);
        }
    }

    #[test]
    fn read_plan_survives_retention_deleting_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let mut config = small_config(batch_size);
        config.retention_bytes = Some(0);
        let mut log = open(dir.path(), config);
        produce(&mut log, 5, 100, 0, 0);
        produce(&mut log, 5, 100, 1, 0);
        let plan = log.plan_read(0, 1 << 20).unwrap();
        log.apply_retention(0).unwrap();
        let r = plan.execute().unwrap();
        assert_eq!(headers_of(&r.bytes)[0].base_offset, 0);
    }
}
