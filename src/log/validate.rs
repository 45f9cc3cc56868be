//! Per-record validation of a produced batch and its rewrite to the topic's codec, as Apache
//! Kafka's `LogValidator` does them, only for the topics that need them: a compacted topic
//! (every record must have a key) and a topic whose `compression.type` is a codec other than
//! the batch's (the batch is stored recompressed). Every other batch stays on the zero-copy
//! path: [`RecordRules::applies_to`] is false and nothing here runs.
//!
//! What is checked, for a batch that passed `batch::validate_producer_batches`:
//! - the records section (inflated if compressed, at most [`inflate_cap`] bytes) holds
//!   exactly `recordsCount` well-formed records ([`Refused::Invalid`], Kafka's
//!   `InvalidRecordException` from `DefaultRecordBatch`'s iterator); a payload that does not
//!   inflate is [`Refused::Corrupt`];
//! - on a compacted topic every record has a key; the keyless ones are listed by index with
//!   Kafka's message ([`Refused::Records`], Kafka's `RecordValidationException`);
//! - the inner offset deltas of a compressed batch are `0, 1, 2, ...`; when they are not,
//!   the batch is rebuilt with them renumbered, as Kafka does (it rewrites rather than
//!   refuses, for old clients), in the codec it is stored in.
//!
//! What is rewritten: a batch in a codec other than the topic's is rebuilt in the topic's
//! codec (`uncompressed` stores it uncompressed) with its records, producer fields and
//! `lastOffsetDelta` unchanged and `maxTimestamp` the largest record timestamp (Kafka's
//! `buildRecordsAndAssignOffsets`); the append path then assigns offsets and the leader epoch
//! as for any batch. A rebuilt batch larger than `max.message.bytes` is
//! [`Refused::TooLarge`] (Kafka's `RecordTooLargeException` after recompression).
//!
//! Not done (Kafka does them on every batch, this broker on none): the record timestamp
//! bounds (`message.timestamp.*.max.ms`, not a topic config here) and the refusal of
//! producer batches stamped LogAppendTime.

use std::borrow::Cow;
use std::fmt;

use kafka_protocol::error::ResponseError;

use super::batch::{parse_header, BatchHeader, HEADER_SIZE};
use super::compress::Codec;
use super::decompress::DecompressError;
use super::rewrite::{self, Rebuild};
use super::varint::{put_zigzag, read_zigzag};

/// Smallest bound on a batch's inflated records: compressed batches legitimately inflate
/// well past `max.message.bytes` (it bounds the compressed size).
pub const MIN_INFLATE_CAP: usize = 64 << 20;

/// What a topic asks of each produced record beyond the header checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRules {
    /// `cleanup.policy` holds `compact`: every record needs a key.
    pub compacted: bool,
    /// The codec batches are stored in (`compression.type`); `None` for `producer`.
    pub codec: Option<Codec>,
    /// `max.message.bytes`: a rebuilt batch must still fit.
    pub max_message_bytes: usize,
}

impl RecordRules {
    /// The rules of a topic with these settings (`compression_type` as the topic config
    /// spells it).
    pub fn new(compacted: bool, compression_type: &str, max_message_bytes: usize) -> Self {
        RecordRules {
            compacted,
            codec: Codec::of_topic_config(compression_type),
            max_message_bytes,
        }
    }

    /// The codec `header`'s batch must be rebuilt in, if it is not stored in its own.
    fn rebuild_codec(&self, header: &BatchHeader) -> Option<Codec> {
        self.codec.filter(|c| c.id() != header.compression())
    }

    /// True when a batch with this header needs the record pass ([`check`]); false keeps it
    /// on the zero-copy path.
    pub fn applies_to(&self, header: &BatchHeader) -> bool {
        self.compacted || self.rebuild_codec(header).is_some()
    }
}

/// How many bytes of records a batch may inflate to under `rules`. A batch stored
/// uncompressed must fit `max.message.bytes` anyway, so that is its bound.
pub fn inflate_cap(rules: &RecordRules, header: &BatchHeader) -> usize {
    match rules.rebuild_codec(header) {
        Some(Codec::None) => rules.max_message_bytes,
        _ => MIN_INFLATE_CAP.max(rules.max_message_bytes.saturating_mul(4)),
    }
}

/// One refused record: its index in the batch and why (Kafka's `ProduceResponse.RecordError`,
/// sent as `record_errors` from Produce v8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

/// Why a batch was refused by the record pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Records that break a rule of the topic (INVALID_RECORD with `record_errors`); the
    /// partition's error message is Kafka's summary of them ([`fmt::Display`]).
    Records(Vec<RecordError>),
    /// The records section does not hold the records the header declares (INVALID_RECORD).
    Invalid(String),
    /// The compressed payload does not inflate (CORRUPT_MESSAGE).
    Corrupt(String),
    /// The batch inflates past [`inflate_cap`], or is larger than `max.message.bytes` once
    /// rebuilt (MESSAGE_TOO_LARGE).
    TooLarge(String),
    /// Compressing the rebuilt batch failed (UNKNOWN_SERVER_ERROR).
    Internal(String),
}

impl Refused {
    /// The Kafka error the partition is answered with.
    pub fn error(&self) -> ResponseError {
        match self {
            Refused::Records(_) | Refused::Invalid(_) => ResponseError::InvalidRecord,
            Refused::Corrupt(_) => ResponseError::CorruptMessage,
            Refused::TooLarge(_) => ResponseError::MessageTooLarge,
            Refused::Internal(_) => ResponseError::UnknownServerError,
        }
    }

    /// The refused records, for `record_errors` (empty unless [`Refused::Records`]).
    pub fn record_errors(&self) -> &[RecordError] {
        match self {
            Refused::Records(errors) => errors,
            _ => &[],
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Kafka's LogValidator.processRecordErrors, with RecordError's and List's
            // toString.
            Refused::Records(errors) => {
                write!(
                    f,
                    "One or more records have been rejected due to {} record errors in total, \
                     and only showing the first three errors at most: [",
                    errors.len()
                )?;
                for (i, e) in errors.iter().take(3).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(
                        f,
                        "RecordError(batchIndex={}, message='{}')",
                        e.batch_index, e.message
                    )?;
                }
                f.write_str("]")
            }
            Refused::Invalid(m) | Refused::Corrupt(m) | Refused::TooLarge(m) => f.write_str(m),
            Refused::Internal(m) => f.write_str(m),
        }
    }
}

/// Kafka's message for a keyless record on a compacted topic (`LogValidator.validateKey`;
/// since Kafka 3.5 it has no final period, which the Scala validator before it had).
pub fn no_key_message(topic: &str, partition: i32) -> String {
    format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
    )
}

/// `raw` (one whole record, walked by `rewrite::records`) with offset delta `delta`,
/// appended to `out`.
fn renumber_record(raw: &[u8], delta: i32, out: &mut Vec<u8>) {
    let mut p = 0;
    let fields = (|| {
        read_zigzag(raw, &mut p, 5)?;
        let attributes_at = p;
        p += 1;
        read_zigzag(raw, &mut p, 10)?;
        let delta_at = p;
        read_zigzag(raw, &mut p, 5)?;
        Some((attributes_at, delta_at, p))
    })();
    let Some((attributes_at, delta_at, rest_at)) = fields else {
        // Unreachable for a record the walk accepted; keep it as it is.
        out.extend_from_slice(raw);
        return;
    };
    let mut body = Vec::with_capacity(raw.len() + 5);
    body.extend_from_slice(&raw[attributes_at..delta_at]);
    put_zigzag(&mut body, i64::from(delta));
    body.extend_from_slice(&raw[rest_at..]);
    put_zigzag(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// The record pass over one batch (`batch`, exactly the bytes `header` describes, as
/// `validate_producer_batches` returned them) of partition `partition` of `topic`.
///
/// `Ok(None)`: store the batch as sent. `Ok(Some(bytes))`: store `bytes` instead, one
/// rebuilt batch with the same base offset, `lastOffsetDelta` and producer fields.
pub fn check(
    batch: &[u8],
    header: &BatchHeader,
    rules: &RecordRules,
    topic: &str,
    partition: i32,
) -> Result<Option<Vec<u8>>, Refused> {
    let rebuild_codec = rules.rebuild_codec(header);
    if !rules.compacted && rebuild_codec.is_none() {
        return Ok(None);
    }
    let cap = inflate_cap(rules, header);
    let (plain, h): (Cow<[u8]>, BatchHeader) =
        rewrite::uncompressed(batch, header, cap).map_err(|e| match e {
            DecompressError::TooLarge(_) => Refused::TooLarge(format!(
                "the record batch inflates to more than {cap} bytes of records, more than this \
                 broker inflates to validate or recompress a batch for this topic; send \
                 smaller batches"
            )),
            other => Refused::Corrupt(format!(
                "the records of the {} batch do not inflate: {other}",
                codec_name(header.compression())
            )),
        })?;
    let body_len = plain.len().saturating_sub(HEADER_SIZE);

    let mut errors = Vec::new();
    let mut consumed = 0usize;
    let mut consecutive = true;
    let mut max_timestamp = -1i64;
    for (index, r) in rewrite::records(&plain, &h).enumerate() {
        let r = r.map_err(|e| {
            let at_end = matches!(
                e,
                super::batch::BatchError::CorruptMessage { position, .. } if position >= plain.len()
            );
            Refused::Invalid(if at_end {
                format!(
                    "Incorrect declared batch size, premature EOF reached: the batch declares {} \
                     records but holds {index}",
                    h.records_count
                )
            } else {
                format!("Found invalid record structure: record {index} of the batch is malformed")
            })
        })?;
        consumed += r.raw.len();
        consecutive &= r.offset - h.base_offset == index as i64;
        max_timestamp = max_timestamp.max(r.timestamp);
        if rules.compacted && r.key.is_none() {
            errors.push(RecordError {
                batch_index: index as i32,
                message: no_key_message(topic, partition),
            });
        }
    }
    if consumed != body_len {
        return Err(Refused::Invalid(format!(
            "Incorrect declared batch size, records still remaining in file: {} bytes follow \
             the {} records the batch declares",
            body_len - consumed,
            h.records_count
        )));
    }
    if !errors.is_empty() {
        return Err(Refused::Records(errors));
    }

    // Kafka rebuilds a batch stored in another codec, and a compressed one whose inner
    // offsets are not consecutive; an uncompressed one kept in place keeps its deltas.
    let codec = match rebuild_codec {
        Some(codec) => codec,
        None if !consecutive && header.compression() != 0 => {
            Codec::from_id(header.compression()).unwrap_or(Codec::None)
        }
        None => return Ok(None),
    };
    let records: Cow<[u8]> = if consecutive {
        Cow::Borrowed(&plain[HEADER_SIZE..])
    } else {
        let mut out = Vec::with_capacity(body_len + h.records_count.max(0) as usize);
        for (index, r) in rewrite::records(&plain, &h).enumerate() {
            // Every record was walked above.
            if let Ok(r) = r {
                renumber_record(r.raw, index as i32, &mut out);
            }
        }
        Cow::Owned(out)
    };
    let out = rewrite::build(
        &h,
        &records,
        h.records_count,
        Rebuild {
            codec,
            base_timestamp: h.base_timestamp,
            max_timestamp,
            extra_attributes: 0,
        },
    )
    .map_err(|e| Refused::Internal(format!("compressing the rebuilt batch failed: {e}")))?;
    if out.len() > rules.max_message_bytes {
        return Err(Refused::TooLarge(format!(
            "the record batch is {} bytes once stored {} as the topic's compression.type asks, \
             more than its max.message.bytes of {}",
            out.len(),
            codec_name(codec.id()),
            rules.max_message_bytes
        )));
    }
    Ok(Some(out))
}

/// A partition's produce data with some batches rebuilt: what to append instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub records: Vec<u8>,
    pub headers: Vec<BatchHeader>,
}

/// The record pass over every batch of one partition's produce data (`records`, with the
/// `headers` `validate_producer_batches` returned). `Ok(None)` keeps the data as sent;
/// `Ok(Some(rebuilt))` replaces it.
pub fn check_all(
    records: &[u8],
    headers: &[BatchHeader],
    rules: &RecordRules,
    topic: &str,
    partition: i32,
) -> Result<Option<Rebuilt>, Refused> {
    if !headers.iter().any(|h| rules.applies_to(h)) {
        return Ok(None);
    }
    let mut rebuilt: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut at = 0usize;
    for (i, h) in headers.iter().enumerate() {
        let size = h.total_size();
        let batch = records
            .get(at..at + size)
            .ok_or_else(|| Refused::Invalid("a batch header does not match its bytes".into()))?;
        if let Some(bytes) = check(batch, h, rules, topic, partition)? {
            rebuilt.push((i, bytes));
        }
        at += size;
    }
    if rebuilt.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut new_headers = Vec::with_capacity(headers.len());
    let mut at = 0usize;
    let mut next = rebuilt.into_iter().peekable();
    for (i, h) in headers.iter().enumerate() {
        let size = h.total_size();
        match next.next_if(|(j, _)| *j == i) {
            Some((_, bytes)) => {
                let nh = parse_header(&bytes)
                    .map_err(|e| Refused::Internal(format!("a rebuilt batch is invalid: {e}")))?;
                out.extend_from_slice(&bytes);
                new_headers.push(nh);
            }
            None => {
                out.extend_from_slice(&records[at..at + size]);
                new_headers.push(*h);
            }
        }
        at += size;
    }
    Ok(Some(Rebuilt {
        records: out,
        headers: new_headers,
    }))
}

fn codec_name(id: u8) -> &'static str {
    match Codec::from_id(id) {
        Some(Codec::None) => "uncompressed",
        Some(Codec::Gzip) => "gzip",
        Some(Codec::Snappy) => "snappy",
        Some(Codec::Lz4) => "lz4",
        Some(Codec::Zstd) => "zstd",
        None => "unknown-codec",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{crc_matches, validate_producer_batches};
    use crate::log::builder::RecordBatchBuilder;

    const CODECS: [Codec; 5] = Codec::ALL;

    fn plain(keys: &[Option<&str>]) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new().producer(9, 0, 5);
        for (i, k) in keys.iter().enumerate() {
            b.push(
                1_000 + i as i64,
                k.map(str::as_bytes),
                Some(b"value"),
                &[("h", Some(b"x"))],
            );
        }
        b.build()
    }

    fn in_codec(batch: &[u8], codec: Codec) -> Vec<u8> {
        let h = parse_header(batch).unwrap();
        rewrite::recompress(batch, &h, codec, 1 << 20).unwrap()
    }

    fn rules(compacted: bool, compression: &str) -> RecordRules {
        RecordRules::new(compacted, compression, 1 << 20)
    }

    fn run(batch: &[u8], r: &RecordRules) -> Result<Option<Vec<u8>>, Refused> {
        let h = validate_producer_batches(batch, 1 << 20).unwrap()[0];
        check(batch, &h, r, "t", 3)
    }

    /// (offset delta, key) of every record.
    fn records_of(batch: &[u8]) -> Vec<(i64, Option<Vec<u8>>)> {
        let h = parse_header(batch).unwrap();
        let (p, ph) = rewrite::uncompressed(batch, &h, 1 << 20).unwrap();
        rewrite::records(&p, &ph)
            .map(|r| r.unwrap())
            .map(|r| (r.offset - ph.base_offset, r.key.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn only_compacted_topics_and_other_codecs_take_the_record_pass() {
        let b = in_codec(&plain(&[Some("k")]), Codec::Lz4);
        let h = parse_header(&b).unwrap();
        assert!(!rules(false, "producer").applies_to(&h));
        assert!(!rules(false, "lz4").applies_to(&h));
        assert!(rules(false, "zstd").applies_to(&h));
        assert!(rules(false, "uncompressed").applies_to(&h));
        assert!(rules(true, "producer").applies_to(&h));
    }

    #[test]
    fn keyless_records_on_a_compacted_topic_are_listed_in_every_codec() {
        for codec in CODECS {
            let b = in_codec(&plain(&[Some("a"), None, Some("c"), None]), codec);
            let refused = run(&b, &rules(true, "producer")).unwrap_err();
            assert_eq!(refused.error(), ResponseError::InvalidRecord, "{codec:?}");
            let msg = "Compacted topic cannot accept message without key in topic partition t-3";
            assert_eq!(
                refused.record_errors(),
                &[
                    RecordError {
                        batch_index: 1,
                        message: msg.into()
                    },
                    RecordError {
                        batch_index: 3,
                        message: msg.into()
                    }
                ]
            );
            assert_eq!(
                refused.to_string(),
                format!(
                    "One or more records have been rejected due to 2 record errors in total, and \
                     only showing the first three errors at most: [RecordError(batchIndex=1, \
                     message='{msg}'), RecordError(batchIndex=3, message='{msg}')]"
                )
            );
        }
    }

    #[test]
    fn the_summary_shows_three_errors_at_most() {
        let b = plain(&[None; 5]);
        let refused = run(&b, &rules(true, "producer")).unwrap_err();
        assert_eq!(refused.record_errors().len(), 5);
        let s = refused.to_string();
        assert!(s.contains("due to 5 record errors"));
        assert_eq!(s.matches("RecordError(").count(), 3);
    }

    #[test]
    fn keyed_batches_on_a_compacted_topic_are_stored_as_sent() {
        for codec in CODECS {
            let b = in_codec(&plain(&[Some("a"), Some("b")]), codec);
            assert_eq!(run(&b, &rules(true, "producer")), Ok(None), "{codec:?}");
            let same = Codec::of_topic_config(match codec {
                Codec::None => "uncompressed",
                Codec::Gzip => "gzip",
                Codec::Snappy => "snappy",
                Codec::Lz4 => "lz4",
                Codec::Zstd => "zstd",
            });
            let r = RecordRules {
                codec: same,
                ..rules(true, "producer")
            };
            assert_eq!(run(&b, &r), Ok(None), "{codec:?}");
        }
    }

    #[test]
    fn a_batch_in_another_codec_is_rebuilt_in_the_topics() {
        let original = plain(&[Some("a"), None, Some("c")]);
        for from in CODECS {
            for (to, name) in [
                (Codec::None, "uncompressed"),
                (Codec::Gzip, "gzip"),
                (Codec::Snappy, "snappy"),
                (Codec::Lz4, "lz4"),
                (Codec::Zstd, "zstd"),
            ] {
                let b = in_codec(&original, from);
                let got = run(&b, &rules(false, name)).unwrap();
                let Some(out) = got else {
                    assert_eq!(from, to);
                    continue;
                };
                assert_ne!(from, to);
                let h = parse_header(&out).unwrap();
                let bh = parse_header(&b).unwrap();
                assert!(crc_matches(&out, &h));
                assert_eq!(h.compression(), to.id());
                assert_eq!(
                    (
                        h.last_offset_delta,
                        h.records_count,
                        h.producer_id,
                        h.producer_epoch,
                        h.base_sequence,
                        h.base_timestamp,
                        h.max_timestamp
                    ),
                    (
                        bh.last_offset_delta,
                        bh.records_count,
                        bh.producer_id,
                        bh.producer_epoch,
                        bh.base_sequence,
                        bh.base_timestamp,
                        bh.max_timestamp
                    )
                );
                assert_eq!(records_of(&out), records_of(&original));
                validate_producer_batches(&out, 1 << 20).unwrap();
            }
        }
    }

    #[test]
    fn a_record_count_that_does_not_match_the_records_is_invalid() {
        for codec in [Codec::None, Codec::Zstd] {
            // Declares 3 records, holds 2: premature EOF.
            let mut short = plain(&[Some("a"), Some("b")]);
            short[57..61].copy_from_slice(&3i32.to_be_bytes());
            short[23..27].copy_from_slice(&2i32.to_be_bytes());
            let short = in_codec(&fix_crc(short), codec);
            let e = run(&short, &rules(true, "producer")).unwrap_err();
            assert_eq!(e.error(), ResponseError::InvalidRecord);
            assert!(e
                .to_string()
                .starts_with("Incorrect declared batch size, premature EOF"));
            assert!(e.record_errors().is_empty());
            // Declares 1 record, holds 2: records remain.
            let mut long = plain(&[Some("a"), Some("b")]);
            long[57..61].copy_from_slice(&1i32.to_be_bytes());
            long[23..27].copy_from_slice(&0i32.to_be_bytes());
            let long = in_codec(&fix_crc(long), codec);
            let e = run(&long, &rules(false, "lz4")).unwrap_err();
            assert_eq!(e.error(), ResponseError::InvalidRecord);
            assert!(e
                .to_string()
                .starts_with("Incorrect declared batch size, records still remaining"));
        }
    }

    fn fix_crc(mut b: Vec<u8>) -> Vec<u8> {
        let crc = crate::log::batch::compute_crc(&b).unwrap();
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn a_payload_that_does_not_inflate_is_corrupt() {
        let mut b = in_codec(&plain(&[Some("a")]), Codec::Zstd);
        for byte in &mut b[HEADER_SIZE..] {
            *byte ^= 0x55;
        }
        let b = fix_crc(b);
        let e = run(&b, &rules(true, "producer")).unwrap_err();
        assert_eq!(e.error(), ResponseError::CorruptMessage);
    }

    #[test]
    fn a_batch_too_large_once_uncompressed_is_refused() {
        let mut b = RecordBatchBuilder::new();
        for i in 0..64 {
            b.push(i, Some(b"k"), Some(&[0u8; 1024]), &[]);
        }
        let z = in_codec(&b.build(), Codec::Zstd);
        assert!(z.len() < 4096);
        let r = RecordRules::new(false, "uncompressed", 8192);
        let h = parse_header(&z).unwrap();
        let e = check(&z, &h, &r, "t", 0).unwrap_err();
        assert_eq!(e.error(), ResponseError::MessageTooLarge);
        let r = RecordRules::new(false, "gzip", 8192);
        assert!(check(&z, &h, &r, "t", 0).unwrap().is_some());
    }

    /// A compressed batch whose inner offset deltas are all 0 (as some old clients wrote).
    fn zero_deltas(codec: Codec) -> Vec<u8> {
        let original = plain(&[Some("a"), Some("b"), Some("c")]);
        let h = parse_header(&original).unwrap();
        let mut records = Vec::new();
        for r in rewrite::records(&original, &h) {
            renumber_record(r.unwrap().raw, 0, &mut records);
        }
        rewrite::build(
            &h,
            &records,
            3,
            Rebuild {
                codec,
                base_timestamp: h.base_timestamp,
                max_timestamp: h.max_timestamp,
                extra_attributes: 0,
            },
        )
        .unwrap()
    }

    #[test]
    fn inner_offsets_of_a_compressed_batch_are_renumbered_as_kafka_does() {
        let b = zero_deltas(Codec::Lz4);
        assert_eq!(
            records_of(&b).iter().map(|r| r.0).collect::<Vec<_>>(),
            [0, 0, 0]
        );
        let out = run(&b, &rules(true, "producer")).unwrap().unwrap();
        let h = parse_header(&out).unwrap();
        assert_eq!(h.compression(), Codec::Lz4.id());
        assert!(crc_matches(&out, &h));
        assert_eq!(
            records_of(&out),
            records_of(&plain(&[Some("a"), Some("b"), Some("c")]))
        );
        // Recompressed: renumbered too.
        let out = run(&b, &rules(false, "gzip")).unwrap().unwrap();
        assert_eq!(
            records_of(&out).iter().map(|r| r.0).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Uncompressed and kept in place: as sent (Kafka does not look at the deltas).
        let u = zero_deltas(Codec::None);
        assert_eq!(run(&u, &rules(true, "producer")), Ok(None));
    }

    #[test]
    fn check_all_replaces_only_rebuilt_batches() {
        let b = in_codec(&plain(&[Some("a")]), Codec::Gzip);
        let headers = validate_producer_batches(&b, 1 << 20).unwrap();
        assert_eq!(
            check_all(&b, &headers, &rules(true, "producer"), "t", 0),
            Ok(None)
        );
        let Rebuilt {
            records: out,
            headers: hs,
        } = check_all(&b, &headers, &rules(true, "lz4"), "t", 0)
            .unwrap()
            .unwrap();
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].compression(), Codec::Lz4.id());
        assert_eq!(hs[0].total_size(), out.len());
    }
}
