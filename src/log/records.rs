//! Walks the records inside one *uncompressed* v2 batch, reading only what timestamp lookups
//! need (offset delta and timestamp delta). Used by ListOffsets-style queries, never on the
//! append or fetch path.
//!
//! Record layout (Kafka `DefaultRecord`): `length` (zigzag varint, bytes after itself),
//! `attributes` i8, `timestampDelta` (zigzag varlong), `offsetDelta` (zigzag varint), then key,
//! value and headers, which are skipped using `length`.
//!
//! Invariants: the walker never reads past the batch, never yields more than `recordsCount`
//! records, and reports malformed bytes as [`BatchError::CorruptMessage`] instead of
//! panicking. Compressed batches must not be passed in (their record bytes are compressed).

use super::batch::{BatchError, BatchHeader, HEADER_SIZE};
use super::varint::read_zigzag;

/// Timestamp and offset of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPoint {
    /// Absolute offset of the record.
    pub offset: i64,
    /// Absolute timestamp of the record (the batch's max timestamp for LogAppendTime batches).
    pub timestamp: i64,
}

/// Iterates over the records of one uncompressed batch.
pub struct RecordWalker<'a> {
    batch: &'a [u8],
    header: BatchHeader,
    pos: usize,
    remaining: i32,
}

impl<'a> RecordWalker<'a> {
    /// Starts a walk over `batch` (exactly one whole batch) described by `header`.
    pub fn new(batch: &'a [u8], header: &BatchHeader) -> Self {
        RecordWalker {
            batch,
            header: *header,
            pos: HEADER_SIZE,
            remaining: header.records_count.max(0),
        }
    }

    fn corrupt(&self, reason: &str) -> BatchError {
        BatchError::CorruptMessage {
            position: self.pos,
            reason: format!(
                "record {} of the batch at offset {} {reason}",
                self.header.records_count - self.remaining,
                self.header.base_offset
            ),
        }
    }
}

impl Iterator for RecordWalker<'_> {
    type Item = Result<RecordPoint, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            return None;
        }
        let mut pos = self.pos;
        let length = match read_zigzag(self.batch, &mut pos, 5) {
            Some(l) if l >= 0 => l as usize,
            _ => {
                self.remaining = 0;
                return Some(Err(self.corrupt("has an unreadable length")));
            }
        };
        let body_start = pos;
        let body_end = match body_start.checked_add(length) {
            Some(end) if end <= self.batch.len() => end,
            _ => {
                self.remaining = 0;
                return Some(Err(self.corrupt("runs past the end of the batch")));
            }
        };
        let body = &self.batch[..body_end];
        let mut p = body_start + 1; // attributes
        let ts_delta = read_zigzag(body, &mut p, 10);
        let offset_delta = read_zigzag(body, &mut p, 5);
        let (Some(ts_delta), Some(offset_delta)) = (ts_delta, offset_delta) else {
            self.remaining = 0;
            return Some(Err(
                self.corrupt("has an unreadable timestamp or offset delta")
            ));
        };
        self.pos = body_end;
        self.remaining -= 1;
        let timestamp = if self.header.timestamp_type_is_log_append() {
            self.header.max_timestamp
        } else {
            self.header.base_timestamp.wrapping_add(ts_delta)
        };
        Some(Ok(RecordPoint {
            offset: self.header.base_offset + offset_delta,
            timestamp,
        }))
    }
}

/// The first record with `timestamp >= target` and `offset >= min_offset`, if any.
pub fn first_at_or_after(
    batch: &[u8],
    header: &BatchHeader,
    target: i64,
    min_offset: i64,
) -> Result<Option<RecordPoint>, BatchError> {
    for record in RecordWalker::new(batch, header) {
        let record = record?;
        if record.timestamp >= target && record.offset >= min_offset {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

/// The first record whose timestamp equals `timestamp`, if any.
pub fn first_with_timestamp(
    batch: &[u8],
    header: &BatchHeader,
    timestamp: i64,
) -> Result<Option<RecordPoint>, BatchError> {
    for record in RecordWalker::new(batch, header) {
        let record = record?;
        if record.timestamp == timestamp {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{assign_offsets, parse_header};
    use crate::log::builder::RecordBatchBuilder;

    #[test]
    fn walker_yields_each_record_timestamp() {
        let mut b = RecordBatchBuilder::new();
        for ts in [100, 90, 300, 200] {
            b.push(ts, Some(b"k"), Some(&[1u8; 300]), &[("h", Some(b"v"))]);
        }
        let mut bytes = b.build();
        assign_offsets(&mut bytes, 50, 0, None);
        let h = parse_header(&bytes).unwrap();
        let points: Vec<_> = RecordWalker::new(&bytes, &h).map(|r| r.unwrap()).collect();
        assert_eq!(
            points
                .iter()
                .map(|p| (p.offset, p.timestamp))
                .collect::<Vec<_>>(),
            vec![(50, 100), (51, 90), (52, 300), (53, 200)]
        );
        assert_eq!(
            first_at_or_after(&bytes, &h, 150, 0)
                .unwrap()
                .map(|p| p.offset),
            Some(52)
        );
        assert_eq!(
            first_at_or_after(&bytes, &h, 95, 51)
                .unwrap()
                .map(|p| p.offset),
            Some(52)
        );
        assert_eq!(first_at_or_after(&bytes, &h, 301, 0).unwrap(), None);
        assert_eq!(
            first_with_timestamp(&bytes, &h, 300)
                .unwrap()
                .map(|p| p.offset),
            Some(52)
        );
    }

    #[test]
    fn walker_reports_garbage_instead_of_panicking() {
        let mut b = RecordBatchBuilder::new();
        b.push(1, None, Some(b"abc"), &[]);
        b.push(2, None, Some(b"def"), &[]);
        let mut bytes = b.build();
        let h = parse_header(&bytes).unwrap();
        // Claim a huge first record length.
        bytes[HEADER_SIZE] = 0xfe;
        bytes[HEADER_SIZE + 1] = 0xff;
        bytes[HEADER_SIZE + 2] = 0x7f;
        let results: Vec<_> = RecordWalker::new(&bytes, &h).collect();
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
        // A truncated batch.
        let short = &bytes[..HEADER_SIZE + 1];
        assert!(RecordWalker::new(short, &h).any(|r| r.is_err()));
    }
}
