//! The `.timeindex` file ([`TimeIndex`]): Kafka's sparse time index, 12-byte entries of
//! timestamp (i64 BE) and relative offset (u32 BE) of the batch where the segment's max
//! timestamp so far was first reached.
//!
//! What always holds: timestamps strictly increase and offsets never decrease from entry to
//! entry; no entry has a negative timestamp; ordinary appends leave the last slot free for
//! the final entry written when the segment rolls (Kafka's `TimeIndex.isFull`); and
//! (checked by [`TimeIndex::sanity_check`] before an index is trusted) every offset is below
//! the segment's end.

use std::fmt;

use super::{i64_at, u32_at, Index, IndexEntry};

/// Bytes per `.timeindex` entry.
pub const TIME_ENTRY_SIZE: usize = 12;

/// A `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The segment's max timestamp so far.
    pub timestamp: i64,
    /// Absolute offset (last offset of the batch that first reached `timestamp`).
    pub offset: i64,
}

impl fmt::Display for TimestampOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.timestamp, self.offset)
    }
}

impl IndexEntry for TimestampOffset {
    const SIZE: usize = TIME_ENTRY_SIZE;
    const RESERVED_SLOTS: usize = 1;

    fn offset(&self) -> i64 {
        self.offset
    }

    fn key(&self) -> i64 {
        self.timestamp
    }

    fn follows(&self, prev: &Self) -> bool {
        self.timestamp > prev.timestamp && self.offset >= prev.offset
    }

    fn encode(&self, relative_offset: u32, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&relative_offset.to_be_bytes());
    }

    fn decode(bytes: &[u8], base_offset: i64) -> Self {
        TimestampOffset {
            timestamp: i64_at(bytes, 0),
            offset: base_offset + i64::from(u32_at(bytes, 8)),
        }
    }
}

/// The sparse time index of one segment. [`lookup`](Index::lookup) gives the entry with the
/// largest timestamp <= the target, or `None`.
pub type TimeIndex = Index<TimestampOffset>;

impl Index<TimestampOffset> {
    /// Appends `(timestamp, offset)` if `timestamp` is larger than the last entry's (and
    /// non-negative, so batches without timestamps add nothing), as Kafka's
    /// `TimeIndex.maybeAppend`. `on_roll` may use the slot kept for the final entry.
    /// Returns whether an entry was added.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, on_roll: bool) -> bool {
        if !on_roll && self.is_full() {
            return false;
        }
        if self.is_empty() && timestamp < 0 {
            return false;
        }
        self.push(TimestampOffset { timestamp, offset })
    }

    /// Removes every entry with offset >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        self.truncate_trailing(|e| e.offset >= offset);
    }

    /// Checks that entries are whole, timestamps strictly increase, offsets never decrease,
    /// and every offset is below `next_offset` (the segment's end).
    pub fn sanity_check(&self, next_offset: i64) -> Result<(), String> {
        self.check_entries(|e| {
            (e.offset >= next_offset).then(|| {
                format!(
                    "names offset {} at or past the segment end {next_offset}",
                    e.offset
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_index_appends_only_increasing_timestamps_and_looks_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::create(&dir.path().join("a.timeindex"), 0, 1024).unwrap();
        assert!(!idx.maybe_append(-1, 0, false), "no timestamp, no entry");
        assert!(idx.maybe_append(1000, 9, false));
        assert!(!idx.maybe_append(1000, 19, false));
        assert!(!idx.maybe_append(900, 29, false));
        assert!(idx.maybe_append(2000, 39, false));
        assert!(idx.maybe_append(3000, 49, false));
        assert_eq!(idx.lookup(999), None);
        assert_eq!(idx.lookup(1500).map(|e| e.offset), Some(9));
        assert_eq!(idx.lookup(2000).map(|e| e.offset), Some(39));
        assert_eq!(idx.lookup(i64::MAX).map(|e| e.offset), Some(49));
        assert!(idx.sanity_check(50).is_ok());
        assert!(idx.sanity_check(49).is_err());
        idx.truncate_to(39);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn time_index_keeps_last_slot_for_roll() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::create(&dir.path().join("b.timeindex"), 0, 36).unwrap();
        assert!(idx.maybe_append(1, 1, false));
        assert!(idx.maybe_append(2, 2, false));
        assert!(idx.is_full());
        assert!(!idx.maybe_append(3, 3, false));
        assert!(idx.maybe_append(3, 3, true));
    }
}
