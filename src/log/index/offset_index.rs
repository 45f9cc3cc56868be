//! The `.index` file ([`OffsetIndex`]): Kafka's sparse offset index, 8-byte entries of
//! relative offset (u32 BE) and file position (u32 BE), the offset being the *last* offset of
//! the batch that starts at the position.
//!
//! What always holds: offsets and positions both strictly increase from entry to entry, and
//! (checked by [`OffsetIndex::sanity_check`] before an index is trusted) every position is
//! inside the segment's `.log`.

use std::fmt;

use super::{u32_at, Index, IndexEntry};

/// Bytes per `.index` entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;

/// An `.index` entry: the last offset of the batch that starts at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset (the batch's last offset).
    pub offset: i64,
    /// File position of the batch.
    pub position: u32,
}

impl fmt::Display for OffsetPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.offset, self.position)
    }
}

impl IndexEntry for OffsetPosition {
    const SIZE: usize = OFFSET_ENTRY_SIZE;
    const RESERVED_SLOTS: usize = 0;

    fn offset(&self) -> i64 {
        self.offset
    }

    fn key(&self) -> i64 {
        self.offset
    }

    fn follows(&self, prev: &Self) -> bool {
        self.offset > prev.offset && self.position > prev.position
    }

    fn encode(&self, relative_offset: u32, out: &mut [u8]) {
        out[..4].copy_from_slice(&relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8], base_offset: i64) -> Self {
        OffsetPosition {
            offset: base_offset + i64::from(u32_at(bytes, 0)),
            position: u32_at(bytes, 4),
        }
    }
}

/// The sparse offset index of one segment. [`lookup`](Index::lookup) gives the entry with
/// the largest offset <= the target, or `None` when every entry is larger (start from
/// position 0 then).
pub type OffsetIndex = Index<OffsetPosition>;

impl Index<OffsetPosition> {
    /// Appends an entry. Returns false (and appends nothing) when the index is full, the
    /// offset does not fit the relative form, or the entry would not be strictly after the
    /// last one; the index then stays sparser there, which only costs a longer scan.
    pub fn append(&mut self, offset: i64, position: u32) -> bool {
        self.push(OffsetPosition { offset, position })
    }

    /// Removes every entry with offset >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let keep = self
            .largest_lower_bound(offset.saturating_sub(1))
            .map_or(0, |i| i + 1);
        self.truncate_entries(keep);
    }

    /// Removes every entry whose batch starts at or after `position`.
    pub fn truncate_to_position(&mut self, position: u64) {
        self.truncate_trailing(|e| u64::from(e.position) >= position);
    }

    /// Checks that the entries can be trusted for a log of `log_size` bytes: whole entries,
    /// strictly increasing offsets and positions, positions inside the log. (Whether the last
    /// entry points at a batch with that last offset is checked by the segment, which can
    /// read the log.)
    pub fn sanity_check(&self, log_size: u64) -> Result<(), String> {
        self.check_entries(|e| {
            (u64::from(e.position) >= log_size).then(|| {
                format!(
                    "points at position {} past the log end {log_size}",
                    e.position
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_finds_largest_entry_not_above_target() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::create(&dir.path().join("a.index"), 100, 1024).unwrap();
        assert_eq!(idx.lookup(150), None);
        for (off, pos) in [(110, 4000), (120, 8000), (130, 12000)] {
            assert!(idx.append(off, pos));
        }
        assert!(!idx.append(125, 13000), "out of order entry refused");
        assert_eq!(idx.lookup(105), None);
        assert_eq!(idx.lookup(110).map(|e| e.position), Some(4000));
        assert_eq!(idx.lookup(119).map(|e| e.position), Some(4000));
        assert_eq!(idx.lookup(120).map(|e| e.position), Some(8000));
        assert_eq!(idx.lookup(1_000_000).map(|e| e.position), Some(12000));
        idx.truncate_to(120);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.last_entry().map(|e| e.offset), Some(110));
    }

    #[test]
    fn offset_index_trim_and_reopen_keeps_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.index");
        let mut idx = OffsetIndex::create(&path, 0, 10 * 1024 * 1024).unwrap();
        for i in 1..=1000u32 {
            assert!(idx.append(i64::from(i) * 10, i * 100));
        }
        idx.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8000);
        drop(idx);
        let idx = OffsetIndex::open(&path, 0, None).unwrap();
        assert_eq!(idx.len(), 1000);
        assert!(idx.sanity_check(200_000).is_ok());
        assert_eq!(idx.lookup(5555).map(|e| e.offset), Some(5550));
        // Sanity fails for a shorter log.
        assert!(idx.sanity_check(50_000).is_err());
    }

    #[test]
    fn offset_index_fills_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::create(&dir.path().join("c.index"), 0, 32).unwrap();
        for i in 1..=4u32 {
            assert!(idx.append(i64::from(i), i));
        }
        assert!(idx.is_full());
        assert!(!idx.append(10, 10));
    }

    #[test]
    fn garbage_index_fails_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.index");
        std::fs::write(&path, [0xffu8; 21]).unwrap();
        let idx = OffsetIndex::open(&path, 0, None).unwrap();
        assert!(idx.sanity_check(1 << 20).is_err());
        std::fs::write(&path, [0u8; 64]).unwrap();
        let idx = OffsetIndex::open(&path, 0, None).unwrap();
        assert!(idx.sanity_check(1 << 20).is_err(), "zero entries repeat");
    }
}
