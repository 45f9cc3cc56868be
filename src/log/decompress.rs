//! Bounded decompression of one record batch, for the rare reads that must look inside a
//! compressed batch (ListOffsets by timestamp, max timestamp). Never on the produce or fetch
//! path: batches are stored and served as the producer compressed them.
//!
//! Invariant: no call produces more than the cap it is given, whatever the input claims (a
//! batch that would inflate beyond it is reported as [`TooLarge`](DecompressError::TooLarge)),
//! so a hostile batch cannot make the broker allocate without bound.

use std::io::Read;

use super::batch::{BatchHeader, ATTRIBUTES_OFFSET, ATTR_COMPRESSION_MASK, HEADER_SIZE};

/// Why a batch could not be decompressed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("the batch inflates beyond {0} bytes")]
    TooLarge(usize),
    #[error("the compressed records are malformed: {0}")]
    Malformed(String),
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
}

fn read_capped(reader: impl Read, cap: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    reader
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Malformed(e.to_string()))?;
    if out.len() > cap {
        return Err(DecompressError::TooLarge(cap));
    }
    Ok(out)
}

/// Snappy as Java writes it (xerial framing: a magic header, then length-prefixed raw
/// blocks) or as librdkafka writes it (one raw block).
fn snappy(input: &[u8], cap: usize) -> Result<Vec<u8>, DecompressError> {
    const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), DecompressError> {
        let len = snap::raw::decompress_len(block)
            .map_err(|e| DecompressError::Malformed(e.to_string()))?;
        if out.len() + len > cap {
            return Err(DecompressError::TooLarge(cap));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| DecompressError::Malformed(e.to_string()))?;
        Ok(())
    };
    let mut out = Vec::new();
    if input.starts_with(XERIAL_MAGIC) {
        let mut at = 16; // magic (8), version (4), compatible version (4)
        while at < input.len() {
            let len = input
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| {
                    DecompressError::Malformed("truncated xerial block length".into())
                })?;
            at += 4;
            let block = input
                .get(at..at.saturating_add(len))
                .ok_or_else(|| DecompressError::Malformed("truncated xerial block".into()))?;
            raw(block, &mut out)?;
            at += len;
        }
    } else {
        raw(input, &mut out)?;
    }
    Ok(out)
}

/// An uncompressed copy of `batch` (header with the codec bits cleared, then the inflated
/// records), at most `cap` bytes of records, for walking its records.
pub fn inflate_batch(
    batch: &[u8],
    header: &BatchHeader,
    cap: usize,
) -> Result<(Vec<u8>, BatchHeader), DecompressError> {
    let body = batch
        .get(HEADER_SIZE..header.total_size().min(batch.len()))
        .ok_or_else(|| DecompressError::Malformed("batch shorter than its header".into()))?;
    let records = match header.compression() {
        0 => body.to_vec(),
        1 => read_capped(flate2::read::GzDecoder::new(body), cap)?,
        2 => snappy(body, cap)?,
        3 => read_capped(
            lz4::Decoder::new(body).map_err(|e| DecompressError::Malformed(e.to_string()))?,
            cap,
        )?,
        4 => read_capped(
            zstd::stream::read::Decoder::new(body)
                .map_err(|e| DecompressError::Malformed(e.to_string()))?,
            cap,
        )?,
        other => return Err(DecompressError::UnknownCodec(other)),
    };
    let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
    out.extend_from_slice(&batch[..HEADER_SIZE]);
    let attributes = header.attributes & !ATTR_COMPRESSION_MASK;
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&records);
    let mut h = *header;
    h.attributes = attributes;
    Ok((out, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::parse_header;
    use crate::log::records::first_at_or_after;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..5)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32 - 1,
                timestamp: 1_000 + i * 100,
                key: Some(bytes::Bytes::from(vec![b'k'; 100])),
                value: Some(bytes::Bytes::from(vec![b'v'; 1000])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn every_codec_inflates_to_walkable_records() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(c);
            let h = parse_header(&b).unwrap();
            let (plain, ph) = inflate_batch(&b, &h, 1 << 20).unwrap();
            assert_eq!(ph.compression(), 0);
            let found = first_at_or_after(&plain, &ph, 1_250, 0).unwrap().unwrap();
            assert_eq!((found.offset, found.timestamp), (3, 1_300), "{c:?}");
        }
    }

    #[test]
    fn inflation_beyond_the_cap_is_refused() {
        for c in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(c);
            let h = parse_header(&b).unwrap();
            assert_eq!(
                inflate_batch(&b, &h, 1000).unwrap_err(),
                DecompressError::TooLarge(1000),
                "{c:?}"
            );
        }
    }
}
