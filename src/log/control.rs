//! Transaction markers: the control batches a transaction coordinator writes to every
//! partition of a transaction when it ends (Kafka's `EndTransactionMarker`).
//!
//! A marker is a batch with the transactional and control attribute bits (0x30), the
//! producer id and epoch of the transaction, base sequence -1, and one record whose key is
//! `version i16 (0), type i16 (0 abort, 1 commit)` and whose value is
//! `version i16 (0), coordinator_epoch i32`, all big endian, as Kafka encodes them.

use super::batch::{BatchHeader, ATTR_CONTROL, ATTR_TRANSACTIONAL, HEADER_SIZE};
use super::builder::RecordBatchBuilder;
use super::varint::read_zigzag;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    /// The type as stored in a marker's key.
    pub fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// A decoded marker record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub control: ControlType,
    pub coordinator_epoch: i32,
}

/// Encodes the marker batch that ends producer `producer_id`'s transaction (base offset 0,
/// leader epoch -1: the log assigns both).
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    control: ControlType,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&control.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut builder = RecordBatchBuilder::new()
        .producer(producer_id, producer_epoch, -1)
        .attributes(ATTR_TRANSACTIONAL | ATTR_CONTROL);
    builder.push(timestamp, Some(&key), Some(&value), &[]);
    builder.build()
}

/// The control type in a control record's key: `None` when the key is not a marker key
/// (Kafka ignores unknown control types; version 0 is the only one).
pub fn parse_control_key(key: &[u8]) -> Option<ControlType> {
    if key.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    }
}

/// A whole marker record: its key and value.
pub fn parse_marker(key: &[u8], value: &[u8]) -> Option<Marker> {
    let control = parse_control_key(key)?;
    if value.len() < 6 {
        return None;
    }
    Some(Marker {
        control,
        coordinator_epoch: i32::from_be_bytes([value[2], value[3], value[4], value[5]]),
    })
}

/// The marker in a whole control batch (`batch`, described by `h`): its first record's key
/// and value. `None` for a batch without records (the cleaner may leave one), a compressed
/// one (markers are written uncompressed) or a record that is not a marker.
pub fn parse_marker_batch(batch: &[u8], h: &BatchHeader) -> Option<Marker> {
    if !h.is_control() || h.records_count < 1 || h.compression() != 0 {
        return None;
    }
    let body = batch.get(..h.total_size().min(batch.len()))?;
    let mut pos = HEADER_SIZE;
    let length = usize::try_from(read_zigzag(body, &mut pos, 5)?).ok()?;
    let end = pos.checked_add(length).filter(|e| *e <= body.len())?;
    let record = &body[..end];
    pos += 1; // attributes
    read_zigzag(record, &mut pos, 10)?; // timestamp delta
    read_zigzag(record, &mut pos, 5)?; // offset delta
    let key_len = usize::try_from(read_zigzag(record, &mut pos, 5)?).ok()?;
    let key = record.get(pos..pos.checked_add(key_len)?)?;
    pos += key_len;
    let value_len = usize::try_from(read_zigzag(record, &mut pos, 5)?).ok()?;
    let value = record.get(pos..pos.checked_add(value_len)?)?;
    parse_marker(key, value)
}

/// A control record's type as text, for the dump tool.
pub fn describe(marker: &Marker) -> String {
    let kind = match marker.control {
        ControlType::Abort => "ABORT",
        ControlType::Commit => "COMMIT",
    };
    format!("{kind} coordinatorEpoch: {}", marker.coordinator_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::parse_header;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn markers_round_trip_and_carry_the_control_bits() {
        let bytes = marker_batch(42, 3, 7, ControlType::Commit, 1_000);
        let h = parse_header(&bytes).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, -1)
        );
        let mut buf = bytes::Bytes::from(bytes);
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        let r = &set.records[0];
        let m = parse_marker(r.key.as_ref().unwrap(), r.value.as_ref().unwrap()).unwrap();
        assert_eq!(m.control, ControlType::Commit);
        assert_eq!(m.coordinator_epoch, 7);
        let raw = marker_batch(42, 3, 9, ControlType::Abort, 1_000);
        let m = parse_marker_batch(&raw, &parse_header(&raw).unwrap()).unwrap();
        assert_eq!((m.control, m.coordinator_epoch), (ControlType::Abort, 9));
        assert!(parse_marker_batch(&raw[..raw.len() - 2], &parse_header(&raw).unwrap()).is_none());
    }
}
