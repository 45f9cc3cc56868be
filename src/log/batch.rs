//! Kafka record batch (magic v2) headers: parsing, produce-request validation, and in-place
//! offset assignment. No per-record work happens here.
//!
//! Layout of the 61-byte header (big endian), from Kafka's `DefaultRecordBatch`:
//!
//! | bytes  | field                 |   | bytes  | field           |
//! |--------|-----------------------|---|--------|-----------------|
//! | 0..8   | baseOffset i64        |   | 27..35 | baseTimestamp   |
//! | 8..12  | batchLength i32       |   | 35..43 | maxTimestamp    |
//! | 12..16 | partitionLeaderEpoch  |   | 43..51 | producerId      |
//! | 16     | magic i8              |   | 51..53 | producerEpoch   |
//! | 17..21 | crc u32 (CRC-32C)     |   | 53..57 | baseSequence    |
//! | 21..23 | attributes i16        |   | 57..61 | recordsCount    |
//! | 23..27 | lastOffsetDelta i32   |   |        |                 |
//!
//! Invariants:
//! - `batchLength` counts the bytes after the length field, so a batch occupies
//!   `batchLength + 12` bytes ([`BatchHeader::total_size`]).
//! - The CRC covers bytes `21..` to the end of the batch. `baseOffset` and
//!   `partitionLeaderEpoch` are outside it, so the broker patches them without touching the
//!   CRC; any change to `attributes` or `maxTimestamp` recomputes it.
//! - Nothing here panics on malformed input: every length is checked before it is used.

use kafka_protocol::error::ResponseError;

/// Size of the v2 batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength` for a v2 batch (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;
/// The only message format this broker stores.
pub const MAGIC_V2: i8 = 2;

/// Byte offset of `baseOffset`.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Byte offset of `batchLength`.
pub const BATCH_LENGTH_OFFSET: usize = 8;
/// Byte offset of `partitionLeaderEpoch`.
pub const LEADER_EPOCH_OFFSET: usize = 12;
/// Byte offset of `magic`.
pub const MAGIC_OFFSET: usize = 16;
/// Byte offset of `crc`.
pub const CRC_OFFSET: usize = 17;
/// Byte offset of `attributes`; the CRC covers everything from here on.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Byte offset of `lastOffsetDelta`.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Byte offset of `baseTimestamp` (Kafka's firstTimestamp).
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Byte offset of `maxTimestamp`.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Byte offset of `producerId`.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Byte offset of `producerEpoch`.
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Byte offset of `baseSequence`.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Byte offset of `recordsCount`.
pub const RECORDS_COUNT_OFFSET: usize = 57;

/// Attribute bits 0-2: compression codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamp type (set = LogAppendTime).
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
/// Attribute bit 4: transactional batch.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;
/// Highest compression codec id Kafka defines (zstd).
pub const MAX_COMPRESSION_CODEC: u8 = 4;

/// The decoded header of one magic-v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (0 from producers; assigned by the broker).
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch of the broker that appended the batch (-1 from producers).
    pub partition_leader_epoch: i32,
    /// Message format version; always 2 once parsed.
    pub magic: i8,
    /// CRC-32C of bytes 21.. of the batch.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (Kafka's firstTimestamp).
    pub base_timestamp: i64,
    /// Largest record timestamp (or the append time for LogAppendTime batches).
    pub max_timestamp: i64,
    /// Idempotent / transactional producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 if none.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// True for control batches (transaction markers), which only the broker may write.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// True for batches written inside a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// The compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    /// True when the batch's timestamps are LogAppendTime (every record's timestamp is
    /// `max_timestamp`).
    pub fn timestamp_type_is_log_append(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset just past the batch (`last_offset() + 1`).
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Bytes the whole batch occupies (`batch_length + 12`).
    pub fn total_size(&self) -> usize {
        // batch_length is >= MIN_BATCH_LENGTH once parsed, so the cast cannot wrap.
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }

    /// Number of offsets the batch spans (`last_offset_delta + 1`).
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    /// True when the batch carries a producer id (idempotent or transactional producer).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Why a record batch was refused. Each variant maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Bytes that do not form a valid batch: truncated, bad length, bad CRC.
    #[error(
        "the record batch at byte {position} is corrupt: {reason}; the data was damaged \
         between the producer and the broker or the client has a bug, so resend it"
    )]
    CorruptMessage {
        /// Byte position of the batch in the buffer or file.
        position: usize,
        /// What is wrong.
        reason: String,
    },
    /// A batch in a message format other than v2.
    #[error(
        "the record batch at byte {position} uses message format v{magic}, but this broker \
         only accepts v2 record batches (Kafka 0.11 and later clients); upgrade the client"
    )]
    UnsupportedMagic {
        /// Byte position of the batch.
        position: usize,
        /// The magic byte found.
        magic: i8,
    },
    /// A batch larger than the topic's `max.message.bytes`.
    #[error(
        "the record batch at byte {position} is {size} bytes, more than the topic's \
         max.message.bytes of {max}; send smaller batches (lower the producer's batch.size) or \
         raise max.message.bytes"
    )]
    MessageTooLarge {
        /// Byte position of the batch.
        position: usize,
        /// The batch's total size.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A well-formed batch that breaks a produce rule (count, control, sequence, ...).
    #[error("the record batch at byte {position} is invalid: {reason}")]
    InvalidRecord {
        /// Byte position of the batch.
        position: usize,
        /// The rule it breaks and what to do.
        reason: String,
    },
}

impl BatchError {
    /// The Kafka error for this refusal.
    ///
    /// `UnsupportedMagic` maps to INVALID_RECORD (87), as Apache Kafka answers for a produce
    /// request of version 3 or later carrying a batch with magic other than 2
    /// (`ProduceRequest.validateRecords`). Produce v0-2 (magic 0/1) are refused by the
    /// handler with UNSUPPORTED_VERSION before they reach the log.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            BatchError::CorruptMessage { .. } => ResponseError::CorruptMessage,
            BatchError::UnsupportedMagic { .. } => ResponseError::InvalidRecord,
            BatchError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            BatchError::InvalidRecord { .. } => ResponseError::InvalidRecord,
        }
    }

    /// [`kafka_error`](Self::kafka_error) as the wire's `i16`.
    pub fn kafka_error_code(&self) -> i16 {
        self.kafka_error().code()
    }

    fn corrupt(position: usize, reason: impl Into<String>) -> Self {
        BatchError::CorruptMessage {
            position,
            reason: reason.into(),
        }
    }

    fn invalid(position: usize, reason: impl Into<String>) -> Self {
        BatchError::InvalidRecord {
            position,
            reason: reason.into(),
        }
    }
}

#[inline]
fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

#[inline]
fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[inline]
fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[inline]
fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

/// Reads `batchLength` from the start of a batch, or `None` when fewer than 12 bytes remain.
pub fn peek_batch_length(buf: &[u8]) -> Option<i32> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    Some(be_i32(buf, BATCH_LENGTH_OFFSET))
}

/// Parses the 61-byte header at the start of `buf`.
///
/// Checks only what the header itself can prove: `buf` holds a whole header, the magic byte
/// is 2 (checked first, because a legacy v0/v1 message keeps its magic at the same byte 16 but
/// may be shorter than 61 bytes), and `batchLength` is at least 49. It does not check that the
/// rest of the batch is present, nor the CRC ([`crc_matches`]).
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() > MAGIC_OFFSET {
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { position: 0, magic });
        }
    }
    if buf.len() < HEADER_SIZE {
        return Err(BatchError::corrupt(
            0,
            format!(
                "only {} bytes are present, fewer than the {HEADER_SIZE}-byte batch header",
                buf.len()
            ),
        ));
    }
    let batch_length = be_i32(buf, BATCH_LENGTH_OFFSET);
    if batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::corrupt(
            0,
            format!(
                "its batchLength is {batch_length}, less than the {MIN_BATCH_LENGTH} bytes of a \
                 v2 header"
            ),
        ));
    }
    Ok(BatchHeader {
        base_offset: be_i64(buf, BASE_OFFSET_OFFSET),
        batch_length,
        partition_leader_epoch: be_i32(buf, LEADER_EPOCH_OFFSET),
        magic: buf[MAGIC_OFFSET] as i8,
        crc: be_u32(buf, CRC_OFFSET),
        attributes: be_i16(buf, ATTRIBUTES_OFFSET),
        last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_OFFSET),
        base_timestamp: be_i64(buf, BASE_TIMESTAMP_OFFSET),
        max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
        producer_id: be_i64(buf, PRODUCER_ID_OFFSET),
        producer_epoch: be_i16(buf, PRODUCER_EPOCH_OFFSET),
        base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
        records_count: be_i32(buf, RECORDS_COUNT_OFFSET),
    })
}

/// The whole batches at the start of `buf` (as a leader sends them to a follower): their
/// headers and the number of bytes they span. A trailing partial batch is left out, as
/// consumers do; a batch that is not magic v2 or whose CRC does not match is an error.
pub fn split_whole_batches(buf: &[u8]) -> Result<(Vec<BatchHeader>, usize), BatchError> {
    let mut headers = Vec::new();
    let mut at = 0usize;
    while let Some(length) = peek_batch_length(&buf[at..]) {
        let size = LOG_OVERHEAD + length.max(0) as usize;
        if buf.len() - at < size || buf.len() - at < HEADER_SIZE {
            break;
        }
        let batch = &buf[at..at + size];
        let header = parse_header(batch).map_err(|e| BatchError::corrupt(at, e.to_string()))?;
        if !crc_matches(batch, &header) {
            return Err(BatchError::corrupt(
                at,
                "its CRC does not match".to_string(),
            ));
        }
        headers.push(header);
        at += size;
    }
    Ok((headers, at))
}

/// CRC-32C of a whole batch's checksummed region (bytes 21 to the end of `batch`).
/// Returns `None` when `batch` is shorter than a header.
pub fn compute_crc(batch: &[u8]) -> Option<u32> {
    batch.get(ATTRIBUTES_OFFSET..).map(crc32c::crc32c)
}

/// True when `batch` (exactly one whole batch) carries the CRC that matches its bytes.
pub fn crc_matches(batch: &[u8], header: &BatchHeader) -> bool {
    compute_crc(batch) == Some(header.crc)
}

/// Validates a produce request's records for one partition, as Apache Kafka does before it
/// appends them (`ProduceRequest.validateRecords`, `UnifiedLog.analyzeAndValidateRecords`,
/// `LogValidator.validateBatch`), at the header level only:
///
/// - at least one batch, exactly one batch (magic v2 produce requests carry one batch per
///   partition), and no bytes after it;
/// - magic 2 ([`BatchError::UnsupportedMagic`]);
/// - `batchLength` at least 49 and not past the end of the buffer
///   ([`BatchError::CorruptMessage`]);
/// - total size at most `max_message_bytes` ([`BatchError::MessageTooLarge`], checked before
///   the CRC as Kafka does);
/// - CRC-32C ([`BatchError::CorruptMessage`]);
/// - `baseOffset` 0, `recordsCount > 0` and equal to `lastOffsetDelta + 1`, not a control
///   batch, a producer id when transactional, and a non-negative base sequence when a
///   producer id is set ([`BatchError::InvalidRecord`]);
/// - a known compression codec ([`BatchError::CorruptMessage`]).
///
/// Returns the parsed headers in order. Per-record checks (record offset deltas, timestamp
/// bounds, key presence on compacted topics) are not done: they need per-record work.
pub fn validate_producer_batches(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::invalid(
            0,
            "the produce request has no record batch for this partition; send at least one",
        ));
    }
    let mut headers = Vec::with_capacity(1);
    let mut position = 0usize;
    while position < records.len() {
        let rest = &records[position..];
        if !headers.is_empty() {
            // Something follows the first batch. Kafka refuses a second whole batch as an
            // invalid record and trailing garbage as corrupt.
            let whole_batch_follows = peek_batch_length(rest)
                .map(|len| len >= MIN_BATCH_LENGTH && len as usize + LOG_OVERHEAD <= rest.len())
                .unwrap_or(false);
            if whole_batch_follows {
                return Err(BatchError::invalid(
                    position,
                    "a produce request may carry exactly one record batch per partition; send \
                     each batch in its own request or merge them",
                ));
            }
            return Err(BatchError::corrupt(
                position,
                format!(
                    "{} bytes after the last whole batch do not form a batch",
                    rest.len()
                ),
            ));
        }
        let header = parse_header(rest).map_err(|e| at_position(e, position))?;
        let size = header.total_size();
        if size > rest.len() {
            return Err(BatchError::corrupt(
                position,
                format!(
                    "its batchLength says {size} bytes but only {} bytes are left in the request",
                    rest.len()
                ),
            ));
        }
        if size > max_message_bytes {
            return Err(BatchError::MessageTooLarge {
                position,
                size,
                max: max_message_bytes,
            });
        }
        let batch = &rest[..size];
        if !crc_matches(batch, &header) {
            return Err(BatchError::corrupt(
                position,
                format!(
                    "its stored CRC-32C is {:#010x} but its bytes give {:#010x}",
                    header.crc,
                    compute_crc(batch).unwrap_or(0)
                ),
            ));
        }
        check_producer_rules(&header, position)?;
        headers.push(header);
        position += size;
    }
    Ok(headers)
}

fn check_producer_rules(h: &BatchHeader, position: usize) -> Result<(), BatchError> {
    if h.compression() > MAX_COMPRESSION_CODEC {
        return Err(BatchError::corrupt(
            position,
            format!(
                "it names compression codec {}, which does not exist",
                h.compression()
            ),
        ));
    }
    if h.base_offset != 0 {
        return Err(BatchError::invalid(
            position,
            format!(
                "its baseOffset is {} but producers must send 0; the broker assigns offsets",
                h.base_offset
            ),
        ));
    }
    if h.last_offset_delta < 0 {
        return Err(BatchError::invalid(
            position,
            format!(
                "its lastOffsetDelta is {}, so it spans no offsets",
                h.last_offset_delta
            ),
        ));
    }
    if h.records_count <= 0 {
        return Err(BatchError::invalid(
            position,
            format!(
                "it reports {} records; a produced batch must hold at least one",
                h.records_count
            ),
        ));
    }
    if i64::from(h.records_count) != h.offset_count() {
        return Err(BatchError::invalid(
            position,
            format!(
                "it reports {} records but spans {} offsets (lastOffsetDelta {}); the two must agree",
                h.records_count,
                h.offset_count(),
                h.last_offset_delta
            ),
        ));
    }
    if h.is_control() {
        return Err(BatchError::invalid(
            position,
            "clients may not write control batches; only the transaction coordinator writes \
             transaction markers",
        ));
    }
    if h.is_transactional() && !h.has_producer_id() {
        // Kafka's LogValidator: a transactional batch needs the producer id of its
        // transaction.
        return Err(BatchError::invalid(
            position,
            "it is transactional but has no producer id; a transactional producer must send              the producer id InitProducerId gave it",
        ));
    }
    if h.has_producer_id() && h.base_sequence < 0 {
        return Err(BatchError::invalid(
            position,
            format!(
                "it has producer id {} but the invalid base sequence {}",
                h.producer_id, h.base_sequence
            ),
        ));
    }
    Ok(())
}

fn at_position(e: BatchError, position: usize) -> BatchError {
    match e {
        BatchError::CorruptMessage { reason, .. } => {
            BatchError::CorruptMessage { position, reason }
        }
        BatchError::UnsupportedMagic { magic, .. } => {
            BatchError::UnsupportedMagic { position, magic }
        }
        BatchError::MessageTooLarge { size, max, .. } => BatchError::MessageTooLarge {
            position,
            size,
            max,
        },
        BatchError::InvalidRecord { reason, .. } => BatchError::InvalidRecord { position, reason },
    }
}

/// Writes the broker-assigned fields into one batch in place.
///
/// `batch` must be exactly one whole batch that passed [`validate_producer_batches`] (or
/// recovery). `baseOffset` and `partitionLeaderEpoch` lie outside the CRC and are written
/// without recomputing it. With `log_append_time = Some(now)`, the batch becomes a
/// LogAppendTime batch the way Kafka's `LogValidator` does it (`setMaxTimestamp`): the
/// timestamp-type attribute bit is set, `maxTimestamp` becomes `now`, `baseTimestamp` is left
/// as the producer sent it, and the CRC is recomputed (skipped when nothing changed).
///
/// A buffer shorter than a batch header is left untouched (it cannot have passed validation).
pub fn assign_offsets(
    batch: &mut [u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) {
    debug_assert!(
        batch.len() >= HEADER_SIZE,
        "assign_offsets on a partial batch"
    );
    if batch.len() < HEADER_SIZE {
        return;
    }
    let (header, body) = batch.split_at_mut(HEADER_SIZE);
    assign_offsets_split(header, body, base_offset, leader_epoch, log_append_time);
}

/// [`assign_offsets`] for a batch whose 61-byte header was copied out of a shared buffer:
/// only `header` is written; `body` (the records after the header) is read for the CRC
/// when LogAppendTime changes the header. This keeps record bytes where the producer's
/// request put them, so the append writes them without copying.
pub fn assign_offsets_split(
    header: &mut [u8],
    body: &[u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) {
    if header.len() < HEADER_SIZE {
        return;
    }
    header[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    header[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(now) = log_append_time {
        let attributes = be_i16(header, ATTRIBUTES_OFFSET);
        let max_timestamp = be_i64(header, MAX_TIMESTAMP_OFFSET);
        if attributes & ATTR_TIMESTAMP_TYPE != 0 && max_timestamp == now {
            return;
        }
        let attributes = attributes | ATTR_TIMESTAMP_TYPE;
        header[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        header[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now.to_be_bytes());
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&header[ATTRIBUTES_OFFSET..HEADER_SIZE]),
            body,
        );
        header[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::builder::RecordBatchBuilder;

    fn batch(n: usize) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new();
        for i in 0..n {
            b.push(1_000 + i as i64, Some(b"key"), Some(&[7u8; 20]), &[]);
        }
        b.build()
    }

    #[test]
    fn split_assignment_matches_in_place_assignment() {
        for lat in [None, Some(1_234_567i64)] {
            let mut whole = batch(5);
            let original = whole.clone();
            assign_offsets(&mut whole, 42, 3, lat);
            let mut header = [0u8; HEADER_SIZE];
            header.copy_from_slice(&original[..HEADER_SIZE]);
            assign_offsets_split(&mut header, &original[HEADER_SIZE..], 42, 3, lat);
            assert_eq!(&header[..], &whole[..HEADER_SIZE]);
            assert_eq!(&original[HEADER_SIZE..], &whole[HEADER_SIZE..]);
            assert!(crc_matches(&whole, &parse_header(&whole).unwrap()));
        }
    }

    #[test]
    fn parse_header_reads_every_field() {
        let mut b = RecordBatchBuilder::new()
            .producer(42, 3, 17)
            .attributes(ATTR_TRANSACTIONAL);
        b.push(500, None, Some(b"a"), &[]);
        b.push(700, None, Some(b"b"), &[]);
        b.push(600, None, Some(b"c"), &[]);
        let bytes = b.build();
        let h = parse_header(&bytes).unwrap();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.total_size(), bytes.len());
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(h.magic, 2);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 500);
        assert_eq!(h.max_timestamp, 700);
        assert_eq!(h.producer_id, 42);
        assert_eq!(h.producer_epoch, 3);
        assert_eq!(h.base_sequence, 17);
        assert_eq!(h.records_count, 3);
        assert!(h.is_transactional());
        assert!(!h.is_control());
        assert_eq!(h.compression(), 0);
        assert!(crc_matches(&bytes, &h));
    }

    #[test]
    fn valid_single_batch_is_accepted() {
        let bytes = batch(5);
        let headers = validate_producer_batches(&bytes, 1 << 20).unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].records_count, 5);
    }

    #[test]
    fn compressed_attribute_is_accepted_without_decompressing() {
        let mut b = RecordBatchBuilder::new().attributes(4); // zstd bits, body left as is
        b.push(1, None, Some(b"x"), &[]);
        let bytes = b.build();
        let headers = validate_producer_batches(&bytes, 1 << 20).unwrap();
        assert_eq!(headers[0].compression(), 4);
    }

    #[test]
    fn empty_payload_is_invalid_record() {
        let e = validate_producer_batches(&[], 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::InvalidRecord);
    }

    #[test]
    fn torn_batch_is_corrupt() {
        let bytes = batch(3);
        for cut in [1, 11, 12, 40, 60, bytes.len() - 1] {
            let e = validate_producer_batches(&bytes[..cut], 1 << 20).unwrap_err();
            assert_eq!(
                e.kafka_error(),
                ResponseError::CorruptMessage,
                "cut at {cut}: {e}"
            );
        }
    }

    #[test]
    fn flipped_bit_fails_crc() {
        let mut bytes = batch(3);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let e = validate_producer_batches(&bytes, 1 << 20).unwrap_err();
        assert!(matches!(e, BatchError::CorruptMessage { .. }), "{e}");
        assert!(e.to_string().contains("CRC"));
    }

    #[test]
    fn short_batch_length_is_corrupt() {
        let mut bytes = batch(1);
        bytes[8..12].copy_from_slice(&20i32.to_be_bytes());
        let e = validate_producer_batches(&bytes, 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::CorruptMessage);
    }

    #[test]
    fn legacy_magic_is_refused() {
        // A v1 message: offset, size, crc, magic 1, ... shorter than a v2 header.
        let mut legacy = vec![0u8; 34];
        legacy[8..12].copy_from_slice(&22i32.to_be_bytes());
        legacy[16] = 1;
        let e = validate_producer_batches(&legacy, 1 << 20).unwrap_err();
        assert_eq!(
            e,
            BatchError::UnsupportedMagic {
                position: 0,
                magic: 1
            }
        );
        assert_eq!(e.kafka_error(), ResponseError::InvalidRecord);
    }

    #[test]
    fn oversized_batch_is_message_too_large() {
        let bytes = batch(10);
        let e = validate_producer_batches(&bytes, bytes.len() - 1).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::MessageTooLarge);
        assert!(validate_producer_batches(&bytes, bytes.len()).is_ok());
    }

    #[test]
    fn two_batches_are_invalid_record() {
        let mut bytes = batch(2);
        bytes.extend_from_slice(&batch(2));
        let e = validate_producer_batches(&bytes, 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::InvalidRecord);
        assert!(e.to_string().contains("exactly one"));
    }

    #[test]
    fn trailing_garbage_is_corrupt() {
        let mut bytes = batch(2);
        bytes.extend_from_slice(&[1, 2, 3]);
        let e = validate_producer_batches(&bytes, 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::CorruptMessage);
    }

    fn rewrite(bytes: &mut [u8], at: usize, value: &[u8]) {
        bytes[at..at + value.len()].copy_from_slice(value);
        let crc = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn count_mismatch_is_invalid_record() {
        let mut bytes = batch(3);
        rewrite(&mut bytes, RECORDS_COUNT_OFFSET, &4i32.to_be_bytes());
        let e = validate_producer_batches(&bytes, 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::InvalidRecord);

        let mut bytes = batch(3);
        rewrite(&mut bytes, RECORDS_COUNT_OFFSET, &0i32.to_be_bytes());
        rewrite(&mut bytes, LAST_OFFSET_DELTA_OFFSET, &(-1i32).to_be_bytes());
        let e = validate_producer_batches(&bytes, 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::InvalidRecord);
    }

    #[test]
    fn control_batch_from_client_is_invalid_record() {
        let mut bytes = batch(1);
        rewrite(&mut bytes, ATTRIBUTES_OFFSET, &ATTR_CONTROL.to_be_bytes());
        let e = validate_producer_batches(&bytes, 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::InvalidRecord);
    }

    #[test]
    fn nonzero_base_offset_from_client_is_invalid_record() {
        let mut bytes = batch(1);
        bytes[0..8].copy_from_slice(&5i64.to_be_bytes()); // outside the CRC
        let e = validate_producer_batches(&bytes, 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::InvalidRecord);
    }

    #[test]
    fn producer_id_with_negative_sequence_is_invalid_record() {
        let mut b = RecordBatchBuilder::new().producer(7, 0, -1);
        b.push(1, None, Some(b"x"), &[]);
        let e = validate_producer_batches(&b.build(), 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::InvalidRecord);
    }

    #[test]
    fn unknown_codec_is_corrupt() {
        let mut bytes = batch(1);
        rewrite(&mut bytes, ATTRIBUTES_OFFSET, &7i16.to_be_bytes());
        let e = validate_producer_batches(&bytes, 1 << 20).unwrap_err();
        assert_eq!(e.kafka_error(), ResponseError::CorruptMessage);
    }

    #[test]
    fn assign_offsets_keeps_crc_for_create_time() {
        let mut bytes = batch(4);
        let before = parse_header(&bytes).unwrap();
        assign_offsets(&mut bytes, 1234, 9, None);
        let h = parse_header(&bytes).unwrap();
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.last_offset(), 1237);
        assert_eq!(h.partition_leader_epoch, 9);
        assert_eq!(h.crc, before.crc);
        assert!(crc_matches(&bytes, &h));
        assert!(!h.timestamp_type_is_log_append());
    }

    #[test]
    fn assign_offsets_applies_log_append_time_and_recomputes_crc() {
        let mut bytes = batch(4);
        let before = parse_header(&bytes).unwrap();
        assign_offsets(&mut bytes, 10, 1, Some(99_999));
        let h = parse_header(&bytes).unwrap();
        assert!(h.timestamp_type_is_log_append());
        assert_eq!(h.max_timestamp, 99_999);
        assert_eq!(h.base_timestamp, before.base_timestamp);
        assert_ne!(h.crc, before.crc);
        assert!(crc_matches(&bytes, &h));
    }

    #[test]
    fn assign_offsets_ignores_a_partial_buffer_in_release() {
        // In debug builds the debug_assert fires; the release behaviour is a no-op.
        if cfg!(debug_assertions) {
            return;
        }
        let mut tiny = [0u8; 10];
        assign_offsets(&mut tiny, 1, 1, Some(1));
        assert_eq!(tiny, [0u8; 10]);
    }
}
