//! Encodes *uncompressed* magic-v2 record batches: for tests, benchmarks, and broker-internal
//! writers (for example the group coordinator's `__consumer_offsets` records).
//!
//! Invariants: every batch built here parses with `batch::parse_header`, carries the right
//! CRC-32C, has `recordsCount == lastOffsetDelta + 1`, offset deltas `0..n`, and
//! `baseTimestamp` equal to the first record's timestamp (the Java producer's convention).
//! The builder never compresses; [`RecordBatchBuilder::attributes`] only sets header bits,
//! which is how tests fake a compressed batch for header-level code paths.

use super::batch::{
    ATTRIBUTES_OFFSET, CRC_OFFSET, HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2, MIN_BATCH_LENGTH,
};
use super::varint::put_zigzag;

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_zigzag(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_zigzag(out, -1),
    }
}

/// Builds one uncompressed v2 record batch.
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    body: Vec<u8>,
    scratch: Vec<u8>,
    count: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    attributes: i16,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    base_offset: i64,
    leader_epoch: i32,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordBatchBuilder {
    /// A builder for a batch as a plain (non-idempotent) producer sends it: base offset 0,
    /// leader epoch -1, no producer id.
    pub fn new() -> Self {
        RecordBatchBuilder {
            body: Vec::new(),
            scratch: Vec::new(),
            count: 0,
            base_timestamp: None,
            max_timestamp: -1,
            attributes: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            base_offset: 0,
            leader_epoch: -1,
        }
    }

    /// Sets the idempotent producer fields.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the raw attribute bits (compression codec, timestamp type, transactional,
    /// control). The record bytes are never compressed by this builder.
    pub fn attributes(mut self, attributes: i16) -> Self {
        self.attributes = attributes;
        self
    }

    /// Sets the base offset (for batches that are already "on disk").
    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Sets the partition leader epoch (for batches that are already "on disk").
    pub fn leader_epoch(mut self, epoch: i32) -> Self {
        self.leader_epoch = epoch;
        self
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch [`build`](Self::build) would return now.
    pub fn estimated_size(&self) -> usize {
        HEADER_SIZE + self.body.len()
    }

    /// Appends one record.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        let base = *self.base_timestamp.get_or_insert(timestamp);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let rec = &mut self.scratch;
        rec.clear();
        rec.push(0); // record attributes
        put_zigzag(rec, timestamp.wrapping_sub(base));
        put_zigzag(rec, i64::from(self.count));
        put_bytes(rec, key);
        put_bytes(rec, value);
        put_zigzag(rec, headers.len() as i64);
        for (k, v) in headers {
            put_bytes(rec, Some(k.as_bytes()));
            put_bytes(rec, *v);
        }
        put_zigzag(&mut self.body, rec.len() as i64);
        self.body.extend_from_slice(rec);
        self.count += 1;
    }

    /// Encodes the batch with its CRC.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_SIZE + self.body.len());
        let batch_length = (HEADER_SIZE - LOG_OVERHEAD + self.body.len()) as i32;
        debug_assert!(batch_length >= MIN_BATCH_LENGTH);
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.leader_epoch.to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes()); // CRC, filled below
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&(self.count - 1).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.unwrap_or(-1).to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.body);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{crc_matches, parse_header, validate_producer_batches};

    #[test]
    fn varints_match_kafka_zigzag() {
        let mut out = Vec::new();
        for (v, want) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (63, vec![126]),
            (64, vec![128, 1]),
            (-65, vec![129, 1]),
        ] {
            out.clear();
            put_zigzag(&mut out, v);
            assert_eq!(out, want, "varint of {v}");
        }
    }

    #[test]
    fn built_batches_validate() {
        let mut b = RecordBatchBuilder::new();
        for i in 0..16 {
            b.push(i, Some(b"k"), Some(&[0u8; 1024]), &[]);
        }
        let bytes = b.build();
        assert_eq!(bytes.len(), b.estimated_size());
        let h = parse_header(&bytes).unwrap();
        assert!(crc_matches(&bytes, &h));
        assert_eq!(h.records_count, 16);
        validate_producer_batches(&bytes, 1 << 20).unwrap();
    }
}
