//! Compression of the records section of a v2 batch, in the framings Kafka's own clients
//! read: gzip, snappy in xerial framing (as the Java producer writes it; librdkafka reads it
//! too), the LZ4 frame format with independent 64 KiB blocks (Kafka's
//! `KafkaLZ4BlockOutputStream`), and a zstd frame. Used where the broker writes batches
//! itself: a topic whose `compression.type` is a codec, and the log cleaner's rewritten
//! batches. Never on the default produce path, where batches are stored as sent.
//!
//! Invariant: whatever [`compress`] returns, `decompress::inflate_batch` inflates back to
//! the same bytes (the tests check every codec).

use std::io::Write;

/// A batch's compression codec: the low three bits of its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Codec {
    /// Every codec, in id order.
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// The codec of attribute bits `id`, if it is one.
    pub fn from_id(id: u8) -> Option<Codec> {
        Codec::ALL.get(usize::from(id)).copied()
    }

    /// The codec a topic's `compression.type` asks for: `None` for `producer` (batches are
    /// kept as sent), `Some(codec)` for a codec name (`uncompressed` is [`Codec::None`]).
    pub fn of_topic_config(name: &str) -> Option<Codec> {
        Some(match name {
            "uncompressed" => Codec::None,
            "gzip" => Codec::Gzip,
            "snappy" => Codec::Snappy,
            "lz4" => Codec::Lz4,
            "zstd" => Codec::Zstd,
            _ => return None,
        })
    }

    pub fn id(self) -> u8 {
        self as u8
    }
}

/// Size of the blocks the Java producer's snappy stream writes.
const SNAPPY_BLOCK: usize = 32 * 1024;

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The records section `records` (concatenated uncompressed records) compressed with `codec`.
pub fn compress(codec: Codec, records: &[u8]) -> std::io::Result<Vec<u8>> {
    match codec {
        Codec::None => Ok(records.to_vec()),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(records.len() / 2),
                flate2::Compression::default(),
            );
            e.write_all(records)?;
            e.finish()
        }
        Codec::Snappy => {
            // xerial framing: magic, version 1, compatible version 1, then length-prefixed
            // raw snappy blocks.
            let mut out = Vec::with_capacity(records.len() / 2 + 16);
            out.extend_from_slice(b"\x82SNAPPY\x00");
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in records.chunks(SNAPPY_BLOCK) {
                let compressed = encoder.compress_vec(block).map_err(io_error)?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        Codec::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::with_capacity(records.len() / 2))?;
            e.write_all(records)?;
            let (out, result) = e.finish();
            result.map(|_| out)
        }
        Codec::Zstd => zstd::bulk::compress(records, 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{parse_header, ATTRIBUTES_OFFSET, HEADER_SIZE};
    use crate::log::builder::RecordBatchBuilder;
    use crate::log::decompress::inflate_batch;

    #[test]
    fn every_codec_round_trips_through_inflate() {
        let mut b = RecordBatchBuilder::new();
        for i in 0..200 {
            b.push(i, Some(b"key"), Some(&vec![(i % 7) as u8; 700]), &[]);
        }
        let plain = b.build();
        let records = &plain[HEADER_SIZE..];
        for codec in Codec::ALL {
            let body = compress(codec, records).unwrap();
            let mut batch = plain[..HEADER_SIZE].to_vec();
            batch[ATTRIBUTES_OFFSET + 1] = codec.id();
            batch.extend_from_slice(&body);
            let len = (batch.len() - 12) as i32;
            batch[8..12].copy_from_slice(&len.to_be_bytes());
            let h = parse_header(&batch).unwrap();
            let (inflated, _) = inflate_batch(&batch, &h, 1 << 20).unwrap();
            assert_eq!(&inflated[HEADER_SIZE..], records, "{codec:?}");
        }
    }

    #[test]
    fn topic_config_names_map_to_codecs() {
        assert_eq!(Codec::of_topic_config("producer"), None);
        assert_eq!(Codec::of_topic_config("uncompressed"), Some(Codec::None));
        assert_eq!(Codec::of_topic_config("zstd"), Some(Codec::Zstd));
        for name in crate::config::COMPRESSION_TYPES {
            assert_eq!(Codec::of_topic_config(name).is_none(), *name == "producer");
        }
    }
}
