//! Sequential walk over the batches of a `.log` file with positioned reads, used by segment
//! lookups (header only), recovery and the dump tool (whole batch plus CRC).
//!
//! Invariants:
//! - The scanner never reads at or past `end`, and never trusts a length from disk before
//!   checking it against the bytes that remain before `end`, so a garbage length cannot make
//!   it allocate or read more than the file holds.
//! - It reads in chunks through one reusable buffer: a header walk costs one `pread` per
//!   chunk, not one per batch.
//! - It stops at the first position that does not hold a valid batch and says why
//!   ([`Invalid::Torn`] when the file simply ends too early, [`Invalid::Corrupt`] otherwise);
//!   it does not check offset order, which is the caller's invariant.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::batch::{compute_crc, parse_header, BatchError, BatchHeader, HEADER_SIZE};

/// Why the bytes at a position are not a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The file ends before the batch does (a torn write).
    Torn(String),
    /// The bytes are there but are not a valid batch (bad magic, length or CRC).
    Corrupt(String),
}

impl Invalid {
    /// The human-readable reason.
    pub fn reason(&self) -> &str {
        match self {
            Invalid::Torn(r) | Invalid::Corrupt(r) => r,
        }
    }
}

/// What stopped a scan early.
#[derive(Debug)]
pub enum ScanError {
    /// The read itself failed.
    Io(io::Error),
    /// The bytes at `position` are not a valid batch.
    Invalid {
        /// File position of the bad batch.
        position: u64,
        /// Why.
        why: Invalid,
    },
}

/// Header-only scans read this much at a time (one index interval plus change).
pub const SMALL_CHUNK: usize = 8 * 1024;
/// Whole-batch scans (recovery, dump) read this much at a time.
pub const LARGE_CHUNK: usize = 1024 * 1024;

/// A whole batch found by a scan: its position, header and bytes.
pub type WholeBatch<'a> = (u64, BatchHeader, &'a [u8]);

/// A forward walk over the batches between two file positions.
pub struct BatchScanner<'f> {
    file: &'f File,
    next: u64,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
    buf_len: usize,
}

impl<'f> BatchScanner<'f> {
    /// Scans `file` from `start` (a batch boundary) up to `end` (normally the file size).
    pub fn new(file: &'f File, start: u64, end: u64, chunk: usize) -> Self {
        BatchScanner {
            file,
            next: start,
            end,
            chunk: chunk.max(HEADER_SIZE),
            buf: Vec::new(),
            buf_start: 0,
            buf_len: 0,
        }
    }

    /// Position of the next batch the scanner will look at (the end of the last good batch).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Makes sure `[pos, pos + need)` is buffered, reading from `pos` if it is not.
    /// The caller guarantees `pos + need <= end`.
    fn fill(&mut self, pos: u64, need: usize) -> io::Result<&[u8]> {
        let buffered =
            pos >= self.buf_start && pos + need as u64 <= self.buf_start + self.buf_len as u64;
        if !buffered {
            let remaining = (self.end - pos) as usize;
            let want = need.max(self.chunk).min(remaining.max(need));
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            self.file.read_exact_at(&mut self.buf[..want], pos)?;
            self.buf_start = pos;
            self.buf_len = want;
        }
        let from = (pos - self.buf_start) as usize;
        Ok(&self.buf[from..from + need])
    }

    fn invalid(&self, why: Invalid) -> ScanError {
        ScanError::Invalid {
            position: self.next,
            why,
        }
    }

    /// Reads and checks the header at the current position without loading the body.
    fn header_here(&mut self) -> Result<Option<BatchHeader>, ScanError> {
        let pos = self.next;
        if pos >= self.end {
            return Ok(None);
        }
        let remaining = self.end - pos;
        if remaining < HEADER_SIZE as u64 {
            return Err(self.invalid(Invalid::Torn(format!(
                "only {remaining} bytes remain, fewer than a {HEADER_SIZE}-byte batch header"
            ))));
        }
        let header = match self.fill(pos, HEADER_SIZE) {
            Ok(bytes) => parse_header(bytes),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(self.invalid(Invalid::Torn(
                    "the file is shorter than its recorded size".to_string(),
                )))
            }
            Err(e) => return Err(ScanError::Io(e)),
        };
        let header = header.map_err(|e| self.invalid(Invalid::Corrupt(short_reason(&e))))?;
        if header.total_size() as u64 > remaining {
            return Err(self.invalid(Invalid::Torn(format!(
                "the batch claims {} bytes but only {remaining} remain",
                header.total_size()
            ))));
        }
        if header.last_offset_delta < 0 {
            return Err(self.invalid(Invalid::Corrupt(format!(
                "lastOffsetDelta is {}",
                header.last_offset_delta
            ))));
        }
        Ok(Some(header))
    }

    /// The next batch's position and header; checks structure but not the CRC.
    pub fn next_header(&mut self) -> Result<Option<(u64, BatchHeader)>, ScanError> {
        let Some(header) = self.header_here()? else {
            return Ok(None);
        };
        let pos = self.next;
        self.next += header.total_size() as u64;
        Ok(Some((pos, header)))
    }

    /// The next whole batch with its bytes; checks structure and CRC.
    pub fn next_batch(&mut self) -> Result<Option<WholeBatch<'_>>, ScanError> {
        self.next_whole_batch(true)
    }

    /// The next whole batch with its bytes, checking structure but not the CRC (the dump
    /// tool reports bad CRCs and carries on).
    pub fn next_batch_unverified(&mut self) -> Result<Option<WholeBatch<'_>>, ScanError> {
        self.next_whole_batch(false)
    }

    fn next_whole_batch(&mut self, verify_crc: bool) -> Result<Option<WholeBatch<'_>>, ScanError> {
        let Some(header) = self.header_here()? else {
            return Ok(None);
        };
        let pos = self.next;
        let size = header.total_size();
        match self.fill(pos, size) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(self.invalid(Invalid::Torn(
                    "the file is shorter than its recorded size".to_string(),
                )))
            }
            Err(e) => return Err(ScanError::Io(e)),
        }
        let from = (pos - self.buf_start) as usize;
        let computed = compute_crc(&self.buf[from..from + size]);
        if verify_crc && computed != Some(header.crc) {
            return Err(self.invalid(Invalid::Corrupt(format!(
                "the stored CRC-32C {:#010x} does not match the computed {:#010x}",
                header.crc,
                computed.unwrap_or(0)
            ))));
        }
        self.next += size as u64;
        Ok(Some((pos, header, &self.buf[from..from + size])))
    }
}

fn short_reason(e: &BatchError) -> String {
    match e {
        BatchError::CorruptMessage { reason, .. } | BatchError::InvalidRecord { reason, .. } => {
            reason.clone()
        }
        BatchError::UnsupportedMagic { magic, .. } => format!("the magic byte is {magic}, not 2"),
        BatchError::MessageTooLarge { size, max, .. } => {
            format!("the batch is {size} bytes, over {max}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::builder::RecordBatchBuilder;
    use std::io::Write;

    fn file_with(batches: &[Vec<u8>], tail: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for b in batches {
            f.write_all(b).unwrap();
        }
        f.write_all(tail).unwrap();
        f.flush().unwrap();
        let len = f.as_file().metadata().unwrap().len();
        (f, len)
    }

    fn batch(base: i64, n: usize, value: usize) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new().base_offset(base).leader_epoch(0);
        for i in 0..n {
            b.push(i as i64, None, Some(&vec![3u8; value]), &[]);
        }
        b.build()
    }

    #[test]
    fn walks_headers_across_chunk_boundaries() {
        let batches: Vec<_> = (0..50).map(|i| batch(i * 3, 3, 100 + i as usize)).collect();
        let (f, len) = file_with(&batches, &[]);
        let mut s = BatchScanner::new(f.as_file(), 0, len, 200);
        let mut n = 0;
        while let Some((_, h)) = s.next_header().unwrap() {
            assert_eq!(h.base_offset, n * 3);
            n += 1;
        }
        assert_eq!(n, 50);
        assert_eq!(s.position(), len);
    }

    #[test]
    fn torn_tail_and_bad_crc_are_told_apart() {
        let good = batch(0, 2, 50);
        let torn = batch(2, 2, 50);
        let (f, len) = file_with(std::slice::from_ref(&good), &torn[..30]);
        let mut s = BatchScanner::new(f.as_file(), 0, len, LARGE_CHUNK);
        assert!(s.next_batch().unwrap().is_some());
        match s.next_batch() {
            Err(ScanError::Invalid {
                position,
                why: Invalid::Torn(_),
            }) => assert_eq!(position, good.len() as u64),
            other => panic!("expected torn, got {other:?}"),
        }

        let mut bad = batch(2, 2, 50);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let (f, len) = file_with(&[good.clone(), bad], &[]);
        let mut s = BatchScanner::new(f.as_file(), 0, len, LARGE_CHUNK);
        assert!(s.next_batch().unwrap().is_some());
        assert!(matches!(
            s.next_batch(),
            Err(ScanError::Invalid {
                why: Invalid::Corrupt(_),
                ..
            })
        ));
    }

    #[test]
    fn garbage_length_does_not_allocate_past_the_file() {
        let mut b = batch(0, 1, 10);
        b[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        let (f, len) = file_with(&[b], &[]);
        let mut s = BatchScanner::new(f.as_file(), 0, len, SMALL_CHUNK);
        assert!(matches!(
            s.next_batch(),
            Err(ScanError::Invalid {
                why: Invalid::Torn(_),
                ..
            })
        ));
    }
}
