//! Record-level access to a v2 batch and batches rebuilt from chosen records: what the log
//! cleaner, a topic's own `compression.type` and per-record validation need (Kafka's
//! `MemoryRecords.filterTo` and `LogValidator`). Never on the default produce or fetch path.
//!
//! Record layout (Kafka `DefaultRecord`): `length` (zigzag varint of the bytes after it),
//! `attributes` i8, `timestampDelta` varlong, `offsetDelta` varint, key and value (varint
//! length, -1 for null, then the bytes), then headers.
//!
//! Invariants: a rebuilt batch keeps its template's base offset, last offset delta, leader
//! epoch, producer id, epoch and base sequence, so every surviving record keeps its offset
//! and the producer state stays true (Kafka's `overrideLastOffset`); its CRC is right; the
//! walk never reads past the batch and reports malformed bytes as
//! [`BatchError::CorruptMessage`].

use std::borrow::Cow;

use super::batch::{
    BatchError, BatchHeader, ATTRIBUTES_OFFSET, ATTR_COMPRESSION_MASK, CRC_OFFSET, HEADER_SIZE,
    LOG_OVERHEAD, MAGIC_V2,
};
use super::compress::{self, Codec};
use super::decompress::{inflate_batch, DecompressError};
use super::varint::{put_zigzag, read_zigzag};

/// One record of an uncompressed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp (the batch's max timestamp for LogAppendTime batches).
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    /// False for a tombstone (a null value).
    pub has_value: bool,
    /// The whole encoded record, its length prefix included.
    pub raw: &'a [u8],
}

/// The uncompressed form of `batch` (itself when it is not compressed), at most `cap`
/// bytes of records.
pub fn uncompressed<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    cap: usize,
) -> Result<(Cow<'a, [u8]>, BatchHeader), DecompressError> {
    if header.compression() == 0 {
        return Ok((
            Cow::Borrowed(&batch[..header.total_size().min(batch.len())]),
            *header,
        ));
    }
    let (plain, h) = inflate_batch(batch, header, cap)?;
    Ok((Cow::Owned(plain), h))
}

/// Walks the records of one uncompressed batch (`plain`, described by `header`).
pub fn records<'a>(
    plain: &'a [u8],
    header: &BatchHeader,
) -> impl Iterator<Item = Result<Record<'a>, BatchError>> + 'a {
    let header = *header;
    let mut pos = HEADER_SIZE;
    let mut remaining = header.records_count.max(0);
    let corrupt = move |pos: usize, index: i32, reason: &str| BatchError::CorruptMessage {
        position: pos,
        reason: format!(
            "record {index} of the batch at offset {} {reason}",
            header.base_offset
        ),
    };
    std::iter::from_fn(move || {
        if remaining <= 0 {
            return None;
        }
        let index = header.records_count - remaining;
        let start = pos;
        let mut p = pos;
        let parsed = (|| {
            let length = read_zigzag(plain, &mut p, 5).filter(|l| *l >= 0)? as usize;
            let end = p.checked_add(length).filter(|e| *e <= plain.len())?;
            let body = &plain[..end];
            p += 1; // attributes
            let ts_delta = read_zigzag(body, &mut p, 10)?;
            let offset_delta = read_zigzag(body, &mut p, 5)?;
            let key_len = read_zigzag(body, &mut p, 5)?;
            let key = if key_len < 0 {
                None
            } else {
                let k = body.get(p..p.checked_add(key_len as usize)?)?;
                p += key_len as usize;
                Some(k)
            };
            let value_len = read_zigzag(body, &mut p, 5)?;
            if value_len > 0 {
                body.get(p..p.checked_add(value_len as usize)?)?;
            }
            let timestamp = if header.timestamp_type_is_log_append() {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(ts_delta)
            };
            Some((
                end,
                Record {
                    offset: header.base_offset + offset_delta,
                    timestamp,
                    key,
                    has_value: value_len >= 0,
                    raw: &plain[start..end],
                },
            ))
        })();
        remaining -= 1;
        match parsed {
            Some((end, record)) => {
                pos = end;
                Some(Ok(record))
            }
            None => {
                remaining = 0;
                Some(Err(corrupt(start, index, "is malformed")))
            }
        }
    })
}

/// `raw` (one whole record) with its timestamp delta moved from `old_base` to `new_base`,
/// appended to `out`, so that the record keeps its timestamp under a new base timestamp.
pub fn rebase_record(raw: &[u8], old_base: i64, new_base: i64, out: &mut Vec<u8>) {
    let mut p = 0;
    let Some(length) = read_zigzag(raw, &mut p, 5) else {
        out.extend_from_slice(raw);
        return;
    };
    let body_start = p;
    let attributes = raw[p];
    p += 1;
    let Some(ts_delta) = read_zigzag(raw, &mut p, 10) else {
        out.extend_from_slice(raw);
        return;
    };
    let rest = &raw[p..body_start + length as usize];
    let mut body = Vec::with_capacity(rest.len() + 11);
    body.push(attributes);
    put_zigzag(
        &mut body,
        old_base.wrapping_add(ts_delta).wrapping_sub(new_base),
    );
    body.extend_from_slice(rest);
    put_zigzag(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// What a rebuilt batch changes relative to its template.
#[derive(Debug, Clone, Copy)]
pub struct Rebuild {
    pub codec: Codec,
    /// The base timestamp field (the records' deltas must be relative to it).
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    /// Attribute bits to set besides the codec (e.g. the delete-horizon flag).
    pub extra_attributes: i16,
}

/// A batch with `template`'s offsets, epoch and producer fields holding `count` records
/// (`records`, concatenated whole records), compressed with `rebuild.codec`.
pub fn build(
    template: &BatchHeader,
    records: &[u8],
    count: i32,
    rebuild: Rebuild,
) -> std::io::Result<Vec<u8>> {
    let body: Cow<[u8]> = if count == 0 || rebuild.codec == Codec::None {
        Cow::Borrowed(records)
    } else {
        Cow::Owned(compress::compress(rebuild.codec, records)?)
    };
    let codec = if count == 0 { 0 } else { rebuild.codec.id() };
    let attributes = (template.attributes & !ATTR_COMPRESSION_MASK)
        | i16::from(codec)
        | rebuild.extra_attributes;
    let mut out = Vec::with_capacity(HEADER_SIZE + body.len());
    out.extend_from_slice(&template.base_offset.to_be_bytes());
    out.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&template.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&template.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&rebuild.base_timestamp.to_be_bytes());
    out.extend_from_slice(&rebuild.max_timestamp.to_be_bytes());
    out.extend_from_slice(&template.producer_id.to_be_bytes());
    out.extend_from_slice(&template.producer_epoch.to_be_bytes());
    out.extend_from_slice(&template.base_sequence.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// `batch` with its records compressed with `codec` instead (Kafka's recompression to a
/// topic's `compression.type`); the records and every header field but the codec, the
/// length and the CRC stay as they were.
pub fn recompress(
    batch: &[u8],
    header: &BatchHeader,
    codec: Codec,
    cap: usize,
) -> Result<Vec<u8>, RewriteError> {
    let (plain, h) = uncompressed(batch, header, cap)?;
    build(
        &h,
        &plain[HEADER_SIZE..],
        h.records_count,
        Rebuild {
            codec,
            base_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            extra_attributes: 0,
        },
    )
    .map_err(|e| RewriteError::Compress(e.to_string()))
}

/// Why a batch could not be rewritten.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("compressing the rewritten batch failed: {0}")]
    Compress(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{assign_offsets, crc_matches, parse_header};
    use crate::log::builder::RecordBatchBuilder;

    fn batch() -> Vec<u8> {
        let mut b = RecordBatchBuilder::new().producer(7, 1, 10);
        b.push(1_000, Some(b"a"), Some(b"1"), &[("h", Some(b"x"))]);
        b.push(1_005, None, Some(b"2"), &[]);
        b.push(990, Some(b"c"), None, &[]);
        let mut bytes = b.build();
        assign_offsets(&mut bytes, 100, 3, None);
        bytes
    }

    #[test]
    fn records_show_keys_values_offsets_and_timestamps() {
        let bytes = batch();
        let h = parse_header(&bytes).unwrap();
        let rs: Vec<Record> = records(&bytes, &h).map(|r| r.unwrap()).collect();
        assert_eq!(rs.len(), 3);
        assert_eq!(
            rs.iter()
                .map(|r| (r.offset, r.timestamp, r.key, r.has_value))
                .collect::<Vec<_>>(),
            vec![
                (100, 1_000, Some(&b"a"[..]), true),
                (101, 1_005, None, true),
                (102, 990, Some(&b"c"[..]), false),
            ]
        );
        let total: usize = rs.iter().map(|r| r.raw.len()).sum();
        assert_eq!(total, bytes.len() - HEADER_SIZE);
    }

    #[test]
    fn a_rebuilt_subset_keeps_offsets_producer_fields_and_timestamps_in_every_codec() {
        let bytes = batch();
        let h = parse_header(&bytes).unwrap();
        let rs: Vec<Record> = records(&bytes, &h).map(|r| r.unwrap()).collect();
        for codec in Codec::ALL {
            let mut kept = Vec::new();
            rebase_record(rs[2].raw, h.base_timestamp, 5_000, &mut kept);
            let out = build(
                &h,
                &kept,
                1,
                Rebuild {
                    codec,
                    base_timestamp: 5_000,
                    max_timestamp: 990,
                    extra_attributes: 0,
                },
            )
            .unwrap();
            let nh = parse_header(&out).unwrap();
            assert!(crc_matches(&out, &nh));
            assert_eq!(
                (
                    nh.base_offset,
                    nh.last_offset(),
                    nh.producer_id,
                    nh.base_sequence
                ),
                (100, 102, 7, 10)
            );
            assert_eq!(nh.compression(), codec.id());
            let (plain, ph) = uncompressed(&out, &nh, 1 << 20).unwrap();
            let got: Vec<Record> = records(&plain, &ph).map(|r| r.unwrap()).collect();
            assert_eq!(got.len(), 1);
            assert_eq!(
                (got[0].offset, got[0].timestamp, got[0].key),
                (102, 990, Some(&b"c"[..]))
            );
            assert!(!got[0].has_value);
        }
    }

    #[test]
    fn recompress_changes_only_the_codec() {
        let bytes = batch();
        let h = parse_header(&bytes).unwrap();
        let z = recompress(&bytes, &h, Codec::Zstd, 1 << 20).unwrap();
        let zh = parse_header(&z).unwrap();
        assert_eq!(zh.compression(), 4);
        let back = recompress(&z, &zh, Codec::None, 1 << 20).unwrap();
        assert_eq!(back, bytes);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut bytes = batch();
        let h = parse_header(&bytes).unwrap();
        bytes.truncate(HEADER_SIZE + 4);
        assert!(records(&bytes, &h).any(|r| r.is_err()));
    }
}
