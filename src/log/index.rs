//! Sparse, memory-mapped segment indexes in Kafka's on-disk formats:
//!
//! - `.index` ([`OffsetIndex`]): 8-byte entries, relative offset (u32 BE, offset minus the
//!   segment's base offset) and file position (u32 BE). As in Kafka, the offset stored is the
//!   *last* offset of the batch that starts at the position.
//! - `.timeindex` ([`TimeIndex`]): 12-byte entries, timestamp (i64 BE) and relative offset
//!   (u32 BE) of the batch where the segment's max timestamp so far was first reached.
//!
//! Invariants:
//! - Entries are strictly increasing: offsets and positions in `.index`, timestamps in
//!   `.timeindex` (whose offsets never decrease).
//! - While a segment is active its index files are preallocated to `index_max_bytes`
//!   (rounded down to whole entries) and the number of valid entries is kept in memory; when
//!   the segment is sealed the files are trimmed to exactly the valid entries, so an index
//!   file's length tells how many entries it holds.
//! - An index is a cache: [`OffsetIndex::sanity_check`] and [`TimeIndex::sanity_check`] say
//!   whether it can be trusted, and recovery rebuilds it from the `.log` otherwise. Nothing
//!   here panics on a garbage file.
//! - The map is always dropped before the file length changes, so a shrink never leaves a
//!   mapping past the end of the file.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use super::error::LogError;

/// Bytes per `.index` entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;
/// Bytes per `.timeindex` entry.
pub const TIME_ENTRY_SIZE: usize = 12;

/// One memory-mapped index file of fixed-size entries.
#[derive(Debug)]
struct IndexFile {
    path: PathBuf,
    file: File,
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    /// False when the file length was not a whole number of entries at open.
    aligned: bool,
}

fn round_down(bytes: usize, entry_size: usize) -> usize {
    bytes / entry_size * entry_size
}

impl IndexFile {
    /// Creates (or empties) the file and preallocates `max_bytes`.
    fn create(path: &Path, entry_size: usize, max_bytes: usize) -> Result<Self, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| LogError::io("create index file", path, e))?;
        let mut index = IndexFile {
            path: path.to_path_buf(),
            file,
            mmap: None,
            entry_size,
            entries: 0,
            aligned: true,
        };
        index.set_len_and_map(round_down(max_bytes, entry_size).max(entry_size * 2))?;
        Ok(index)
    }

    /// Opens an existing file (created empty if missing). Its length decides the entry count.
    /// With `max_bytes`, the file is then grown to that size for appending.
    fn open(path: &Path, entry_size: usize, max_bytes: Option<usize>) -> Result<Self, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| LogError::io("open index file", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| LogError::io("read the size of", path, e))?
            .len() as usize;
        let mut index = IndexFile {
            path: path.to_path_buf(),
            file,
            mmap: None,
            entry_size,
            entries: len / entry_size,
            aligned: len.is_multiple_of(entry_size),
        };
        match max_bytes {
            Some(max) => index.resize(max)?,
            None => index.map_current()?,
        }
        Ok(index)
    }

    fn map_current(&mut self) -> Result<(), LogError> {
        self.mmap = None;
        let len = self
            .file
            .metadata()
            .map_err(|e| LogError::io("read the size of", &self.path, e))?
            .len();
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the index file belongs to this segment and is only resized through this
        // struct, which drops the map first. Another process truncating it underneath us is
        // outside the broker's contract (as for Apache Kafka's memory-mapped indexes).
        let map = unsafe { MmapMut::map_mut(&self.file) }
            .map_err(|e| LogError::io("memory-map", &self.path, e))?;
        self.mmap = Some(map);
        Ok(())
    }

    fn set_len_and_map(&mut self, len: usize) -> Result<(), LogError> {
        self.mmap = None;
        self.file
            .set_len(len as u64)
            .map_err(|e| LogError::io("resize index file", &self.path, e))?;
        self.map_current()
    }

    fn capacity(&self) -> usize {
        self.mmap.as_ref().map_or(0, |m| m.len() / self.entry_size)
    }

    fn entry(&self, i: usize) -> Option<&[u8]> {
        if i >= self.entries {
            return None;
        }
        let start = i * self.entry_size;
        self.mmap
            .as_ref()
            .and_then(|m| m.get(start..start + self.entry_size))
    }

    fn push(&mut self, bytes: &[u8]) -> bool {
        let at = self.entries * self.entry_size;
        let Some(map) = self.mmap.as_mut() else {
            return false;
        };
        let Some(slot) = map.get_mut(at..at + bytes.len()) else {
            return false;
        };
        slot.copy_from_slice(bytes);
        self.entries += 1;
        true
    }

    /// Keeps the first `n` entries and zeroes the rest of the previously valid region, so a
    /// crash cannot resurrect them.
    fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        let (from, to) = (n * self.entry_size, self.entries * self.entry_size);
        if let Some(region) = self.mmap.as_mut().and_then(|m| m.get_mut(from..to)) {
            region.fill(0);
        }
        self.entries = n;
    }

    /// Grows (or shrinks, never below the valid entries) the file for appending.
    fn resize(&mut self, max_bytes: usize) -> Result<(), LogError> {
        let want = round_down(max_bytes, self.entry_size)
            .max(self.entries * self.entry_size)
            .max(self.entry_size * 2);
        self.aligned = true;
        self.set_len_and_map(want)
    }

    /// Shrinks the file to exactly the valid entries.
    fn trim(&mut self) -> Result<(), LogError> {
        self.aligned = true;
        self.set_len_and_map(self.entries * self.entry_size)
    }

    fn delete(mut self) -> Result<(), LogError> {
        self.mmap = None;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::io("delete", &self.path, e)),
        }
    }

    /// Index of the last entry whose key is <= `target`, by binary search.
    fn largest_lower_bound(&self, target: i64, key: impl Fn(&[u8]) -> i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        // Invariant: entries [0, lo) have key <= target, entries [hi, n) have key > target.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let k = self.entry(mid).map(&key)?;
            if k <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

/// An `.index` entry: the last offset of the batch that starts at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset (the batch's last offset).
    pub offset: i64,
    /// File position of the batch.
    pub position: u32,
}

/// A `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The segment's max timestamp so far.
    pub timestamp: i64,
    /// Absolute offset (last offset of the batch that first reached `timestamp`).
    pub offset: i64,
}

/// Converts an absolute offset to the 4-byte relative form, if it fits (Kafka keeps relative
/// offsets within `i32::MAX`).
pub fn relative_offset(base_offset: i64, offset: i64) -> Option<u32> {
    let rel = offset.checked_sub(base_offset)?;
    if (0..=i64::from(i32::MAX)).contains(&rel) {
        Some(rel as u32)
    } else {
        None
    }
}

/// The sparse offset index of one segment.
#[derive(Debug)]
pub struct OffsetIndex {
    file: IndexFile,
    base_offset: i64,
}

impl OffsetIndex {
    /// Creates an empty index preallocated to `max_bytes`.
    pub fn create(path: &Path, base_offset: i64, max_bytes: usize) -> Result<Self, LogError> {
        Ok(OffsetIndex {
            file: IndexFile::create(path, OFFSET_ENTRY_SIZE, max_bytes)?,
            base_offset,
        })
    }

    /// Opens an existing index; `max_bytes = Some(_)` prepares it for appending.
    pub fn open(path: &Path, base_offset: i64, max_bytes: Option<usize>) -> Result<Self, LogError> {
        Ok(OffsetIndex {
            file: IndexFile::open(path, OFFSET_ENTRY_SIZE, max_bytes)?,
            base_offset,
        })
    }

    /// Path of the `.index` file.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.file.entries
    }

    /// True when the index holds no entry.
    pub fn is_empty(&self) -> bool {
        self.file.entries == 0
    }

    /// True when no further entry fits (the segment should roll).
    pub fn is_full(&self) -> bool {
        self.file.entries >= self.file.capacity()
    }

    /// The `i`-th entry.
    pub fn entry(&self, i: usize) -> Option<OffsetPosition> {
        self.file.entry(i).map(|b| OffsetPosition {
            offset: self.base_offset + i64::from(u32_at(b, 0)),
            position: u32_at(b, 4),
        })
    }

    /// The last entry.
    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.len().checked_sub(1).and_then(|i| self.entry(i))
    }

    /// Appends an entry. Returns false (and appends nothing) when the index is full, the
    /// offset does not fit the relative form, or the entry would not be strictly after the
    /// last one; the index then stays sparser there, which only costs a longer scan.
    pub fn append(&mut self, offset: i64, position: u32) -> bool {
        let Some(rel) = relative_offset(self.base_offset, offset) else {
            return false;
        };
        if let Some(last) = self.last_entry() {
            if offset <= last.offset || position <= last.position {
                return false;
            }
        }
        let mut entry = [0u8; OFFSET_ENTRY_SIZE];
        entry[..4].copy_from_slice(&rel.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        self.file.push(&entry)
    }

    /// The entry with the largest offset <= `target`, or `None` when every entry is larger
    /// (start from position 0 then).
    pub fn lookup(&self, target: i64) -> Option<OffsetPosition> {
        let base = self.base_offset;
        self.file
            .largest_lower_bound(target, |b| base + i64::from(u32_at(b, 0)))
            .and_then(|i| self.entry(i))
    }

    /// Removes every entry with offset >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let base = self.base_offset;
        let keep = self
            .file
            .largest_lower_bound(offset.saturating_sub(1), |b| base + i64::from(u32_at(b, 0)))
            .map_or(0, |i| i + 1);
        self.file.truncate_entries(keep);
    }

    /// Removes every entry whose batch starts at or after `position`.
    pub fn truncate_to_position(&mut self, position: u64) {
        let mut keep = self.len();
        while keep > 0 {
            match self.entry(keep - 1) {
                Some(e) if u64::from(e.position) >= position => keep -= 1,
                _ => break,
            }
        }
        self.file.truncate_entries(keep);
    }

    /// Drops all entries (before a rebuild).
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Shrinks the file to the valid entries (segment sealed).
    pub fn trim(&mut self) -> Result<(), LogError> {
        self.file.trim()
    }

    /// Grows the file to `max_bytes` for appending (segment active again).
    pub fn resize(&mut self, max_bytes: usize) -> Result<(), LogError> {
        self.file.resize(max_bytes)
    }

    /// Deletes the file.
    pub fn delete(self) -> Result<(), LogError> {
        self.file.delete()
    }

    /// Checks that the entries can be trusted for a log of `log_size` bytes: whole entries,
    /// strictly increasing offsets and positions, positions inside the log. (Whether the last
    /// entry points at a batch with that last offset is checked by the segment, which can
    /// read the log.)
    pub fn sanity_check(&self, log_size: u64) -> Result<(), String> {
        if !self.file.aligned {
            return Err(format!(
                "its length is not a multiple of {OFFSET_ENTRY_SIZE} bytes"
            ));
        }
        let mut prev: Option<OffsetPosition> = None;
        for i in 0..self.len() {
            let Some(e) = self.entry(i) else {
                return Err(format!("entry {i} cannot be read"));
            };
            if u64::from(e.position) >= log_size {
                return Err(format!(
                    "entry {i} points at position {} past the log end {log_size}",
                    e.position
                ));
            }
            if let Some(p) = prev {
                if e.offset <= p.offset || e.position <= p.position {
                    return Err(format!(
                        "entry {i} ({}, {}) does not follow entry {} ({}, {})",
                        e.offset,
                        e.position,
                        i - 1,
                        p.offset,
                        p.position
                    ));
                }
            }
            prev = Some(e);
        }
        Ok(())
    }
}

/// The sparse time index of one segment.
#[derive(Debug)]
pub struct TimeIndex {
    file: IndexFile,
    base_offset: i64,
}

impl TimeIndex {
    /// Creates an empty index preallocated to `max_bytes`.
    pub fn create(path: &Path, base_offset: i64, max_bytes: usize) -> Result<Self, LogError> {
        Ok(TimeIndex {
            file: IndexFile::create(path, TIME_ENTRY_SIZE, max_bytes)?,
            base_offset,
        })
    }

    /// Opens an existing index; `max_bytes = Some(_)` prepares it for appending.
    pub fn open(path: &Path, base_offset: i64, max_bytes: Option<usize>) -> Result<Self, LogError> {
        Ok(TimeIndex {
            file: IndexFile::open(path, TIME_ENTRY_SIZE, max_bytes)?,
            base_offset,
        })
    }

    /// Path of the `.timeindex` file.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.file.entries
    }

    /// True when the index holds no entry.
    pub fn is_empty(&self) -> bool {
        self.file.entries == 0
    }

    /// True when only the slot kept for the final entry written at roll is left (Kafka's
    /// `TimeIndex.isFull`).
    pub fn is_full(&self) -> bool {
        self.file.entries + 1 >= self.file.capacity()
    }

    /// The `i`-th entry.
    pub fn entry(&self, i: usize) -> Option<TimestampOffset> {
        self.file.entry(i).map(|b| TimestampOffset {
            timestamp: i64_at(b, 0),
            offset: self.base_offset + i64::from(u32_at(b, 8)),
        })
    }

    /// The last entry.
    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.len().checked_sub(1).and_then(|i| self.entry(i))
    }

    /// Appends `(timestamp, offset)` if `timestamp` is larger than the last entry's (and
    /// non-negative, so batches without timestamps add nothing), as Kafka's
    /// `TimeIndex.maybeAppend`. `on_roll` may use the slot kept for the final entry.
    /// Returns whether an entry was added.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, on_roll: bool) -> bool {
        if !on_roll && self.is_full() {
            return false;
        }
        let Some(rel) = relative_offset(self.base_offset, offset) else {
            return false;
        };
        match self.last_entry() {
            Some(last) if timestamp <= last.timestamp || offset < last.offset => return false,
            None if timestamp < 0 => return false,
            _ => {}
        }
        let mut entry = [0u8; TIME_ENTRY_SIZE];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&rel.to_be_bytes());
        self.file.push(&entry)
    }

    /// The entry with the largest timestamp <= `target`, or `None`.
    pub fn lookup(&self, target: i64) -> Option<TimestampOffset> {
        self.file
            .largest_lower_bound(target, |b| i64_at(b, 0))
            .and_then(|i| self.entry(i))
    }

    /// Removes every entry with offset >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let mut keep = self.len();
        while keep > 0 {
            match self.entry(keep - 1) {
                Some(e) if e.offset >= offset => keep -= 1,
                _ => break,
            }
        }
        self.file.truncate_entries(keep);
    }

    /// Drops all entries (before a rebuild).
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Shrinks the file to the valid entries (segment sealed).
    pub fn trim(&mut self) -> Result<(), LogError> {
        self.file.trim()
    }

    /// Grows the file to `max_bytes` for appending (segment active again).
    pub fn resize(&mut self, max_bytes: usize) -> Result<(), LogError> {
        self.file.resize(max_bytes)
    }

    /// Deletes the file.
    pub fn delete(self) -> Result<(), LogError> {
        self.file.delete()
    }

    /// Checks that entries are whole, timestamps strictly increase, offsets never decrease,
    /// and every offset is below `next_offset` (the segment's end).
    pub fn sanity_check(&self, next_offset: i64) -> Result<(), String> {
        if !self.file.aligned {
            return Err(format!(
                "its length is not a multiple of {TIME_ENTRY_SIZE} bytes"
            ));
        }
        let mut prev: Option<TimestampOffset> = None;
        for i in 0..self.len() {
            let Some(e) = self.entry(i) else {
                return Err(format!("entry {i} cannot be read"));
            };
            if e.offset >= next_offset {
                return Err(format!(
                    "entry {i} names offset {} at or past the segment end {next_offset}",
                    e.offset
                ));
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.offset < p.offset {
                    return Err(format!(
                        "entry {i} ({}, {}) does not follow entry {} ({}, {})",
                        e.timestamp,
                        e.offset,
                        i - 1,
                        p.timestamp,
                        p.offset
                    ));
                }
            }
            prev = Some(e);
        }
        Ok(())
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
