//! Sparse, memory-mapped segment indexes in Kafka's on-disk formats, as one generic
//! [`Index`] over a fixed-size entry type ([`IndexEntry`]):
//!
//! - `.index` ([`OffsetIndex`], in `offset_index`): 8-byte entries, relative offset (u32 BE,
//!   offset minus the segment's base offset) and file position (u32 BE). As in Kafka, the
//!   offset stored is the *last* offset of the batch that starts at the position.
//! - `.timeindex` ([`TimeIndex`], in `time_index`): 12-byte entries, timestamp (i64 BE) and
//!   relative offset (u32 BE) of the batch where the segment's max timestamp so far was first
//!   reached.
//!
//! This file owns what the two share: the file and its map, the entry count, appending,
//! binary-search lookup by the entry's key, truncation, trimming, resizing and the shape of
//! the sanity check. The entry types say how an entry is encoded and ordered.
//!
//! Invariants:
//! - Entries are strictly increasing in the sense of [`IndexEntry::follows`]: offsets and
//!   positions in `.index`, timestamps in `.timeindex` (whose offsets never decrease). So the
//!   lookup key ([`IndexEntry::key`]) is sorted and can be binary-searched.
//! - While a segment is active its index files are preallocated to `index_max_bytes`
//!   (rounded down to whole entries) and the number of valid entries is kept in memory; when
//!   the segment is sealed the files are trimmed to exactly the valid entries, so an index
//!   file's length tells how many entries it holds.
//! - An index is a cache: [`OffsetIndex::sanity_check`] and [`TimeIndex::sanity_check`] say
//!   whether it can be trusted, and recovery rebuilds it from the `.log` otherwise. Nothing
//!   here panics on a garbage file.
//! - The map is always dropped before the file length changes, so a shrink never leaves a
//!   mapping past the end of the file.

mod offset_index;
mod time_index;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use super::error::LogError;

pub use offset_index::{OffsetIndex, OffsetPosition, OFFSET_ENTRY_SIZE};
pub use time_index::{TimeIndex, TimestampOffset, TIME_ENTRY_SIZE};

/// The largest entry size of any index, for the encode buffer.
const MAX_ENTRY_SIZE: usize = 16;

/// One fixed-size entry of an index file.
pub trait IndexEntry: Copy + fmt::Debug + fmt::Display {
    /// Bytes per entry on disk.
    const SIZE: usize;
    /// Slots at the end of the file that ordinary appends leave free (the time index keeps
    /// one for the final entry written at roll).
    const RESERVED_SLOTS: usize;
    /// The absolute offset the entry names (stored relative to the segment's base offset).
    fn offset(&self) -> i64;
    /// What lookups compare: the offset for `.index`, the timestamp for `.timeindex`.
    fn key(&self) -> i64;
    /// True when `self` may stand right after `prev` (the file's order).
    fn follows(&self, prev: &Self) -> bool;
    /// Writes the entry, with `relative_offset` in place of its offset, into `out`
    /// (`SIZE` bytes).
    fn encode(&self, relative_offset: u32, out: &mut [u8]);
    /// Reads an entry from `bytes` (`SIZE` bytes) of a segment starting at `base_offset`.
    fn decode(bytes: &[u8], base_offset: i64) -> Self;
}

/// One memory-mapped index file of fixed-size entries of type `E`.
#[derive(Debug)]
pub struct Index<E: IndexEntry> {
    path: PathBuf,
    file: File,
    mmap: Option<MmapMut>,
    base_offset: i64,
    entries: usize,
    /// False when the file length was not a whole number of entries at open.
    aligned: bool,
    entry: PhantomData<E>,
}

fn round_down(bytes: usize, entry_size: usize) -> usize {
    bytes / entry_size * entry_size
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

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

impl<E: IndexEntry> Index<E> {
    /// Creates (or empties) the file and preallocates `max_bytes`.
    pub fn create(path: &Path, base_offset: i64, max_bytes: usize) -> Result<Self, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| LogError::io("create index file", path, e))?;
        let mut index = Self::new(path, file, base_offset, 0, true);
        index.set_len_and_map(round_down(max_bytes, E::SIZE).max(E::SIZE * 2))?;
        Ok(index)
    }

    /// Opens an existing index (created empty if missing); its length decides the entry
    /// count. `max_bytes = Some(_)` then grows the file to that size for appending.
    pub fn open(path: &Path, base_offset: i64, max_bytes: Option<usize>) -> Result<Self, LogError> {
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
        let mut index = Self::new(
            path,
            file,
            base_offset,
            len / E::SIZE,
            len.is_multiple_of(E::SIZE),
        );
        match max_bytes {
            Some(max) => index.resize(max)?,
            None => index.map_current()?,
        }
        Ok(index)
    }

    fn new(path: &Path, file: File, base_offset: i64, entries: usize, aligned: bool) -> Self {
        Index {
            path: path.to_path_buf(),
            file,
            mmap: None,
            base_offset,
            entries,
            aligned,
            entry: PhantomData,
        }
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
        self.mmap.as_ref().map_or(0, |m| m.len() / E::SIZE)
    }

    /// Path of the index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True when the index holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// True when no further ordinary append fits (the segment should roll). For the time
    /// index, only the slot kept for the final entry written at roll is left then (Kafka's
    /// `TimeIndex.isFull`).
    pub fn is_full(&self) -> bool {
        self.entries + E::RESERVED_SLOTS >= self.capacity()
    }

    /// The `i`-th entry.
    pub fn entry(&self, i: usize) -> Option<E> {
        if i >= self.entries {
            return None;
        }
        let start = i * E::SIZE;
        self.mmap
            .as_ref()
            .and_then(|m| m.get(start..start + E::SIZE))
            .map(|b| E::decode(b, self.base_offset))
    }

    /// The last entry.
    pub fn last_entry(&self) -> Option<E> {
        self.len().checked_sub(1).and_then(|i| self.entry(i))
    }

    /// The entry with the largest key <= `target`, or `None` when every entry is larger.
    pub fn lookup(&self, target: i64) -> Option<E> {
        self.largest_lower_bound(target).and_then(|i| self.entry(i))
    }

    /// Appends `entry` if its offset fits the relative form, it follows the last entry and
    /// there is room; returns whether it did. (Whether an ordinary append may use the
    /// reserved slots is the caller's to check with [`is_full`](Self::is_full).)
    fn push(&mut self, entry: E) -> bool {
        let Some(rel) = relative_offset(self.base_offset, entry.offset()) else {
            return false;
        };
        if self.last_entry().is_some_and(|last| !entry.follows(&last)) {
            return false;
        }
        let at = self.entries * E::SIZE;
        let Some(slot) = self.mmap.as_mut().and_then(|m| m.get_mut(at..at + E::SIZE)) else {
            return false;
        };
        let mut bytes = [0u8; MAX_ENTRY_SIZE];
        entry.encode(rel, &mut bytes[..E::SIZE]);
        slot.copy_from_slice(&bytes[..E::SIZE]);
        self.entries += 1;
        true
    }

    /// Index of the last entry whose key is <= `target`, by binary search.
    fn largest_lower_bound(&self, target: i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        // Invariant: entries [0, lo) have key <= target, entries [hi, n) have key > target.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let k = self.entry(mid)?.key();
            if k <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Keeps the first `n` entries and zeroes the rest of the previously valid region, so a
    /// crash cannot resurrect them.
    fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        let (from, to) = (n * E::SIZE, self.entries * E::SIZE);
        if let Some(region) = self.mmap.as_mut().and_then(|m| m.get_mut(from..to)) {
            region.fill(0);
        }
        self.entries = n;
    }

    /// Removes the trailing entries for which `drop` holds, from the last one back.
    fn truncate_trailing(&mut self, drop: impl Fn(&E) -> bool) {
        let mut keep = self.len();
        while keep > 0 {
            match self.entry(keep - 1) {
                Some(e) if drop(&e) => keep -= 1,
                _ => break,
            }
        }
        self.truncate_entries(keep);
    }

    /// Drops all entries (before a rebuild).
    pub fn reset(&mut self) {
        self.truncate_entries(0);
    }

    /// Grows (or shrinks, never below the valid entries) the file to `max_bytes` for
    /// appending (segment active again).
    pub fn resize(&mut self, max_bytes: usize) -> Result<(), LogError> {
        let want = round_down(max_bytes, E::SIZE)
            .max(self.entries * E::SIZE)
            .max(E::SIZE * 2);
        self.aligned = true;
        self.set_len_and_map(want)
    }

    /// Shrinks the file to exactly the valid entries (segment sealed).
    pub fn trim(&mut self) -> Result<(), LogError> {
        self.aligned = true;
        self.set_len_and_map(self.entries * E::SIZE)
    }

    /// Deletes the file.
    pub fn delete(mut self) -> Result<(), LogError> {
        self.mmap = None;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::io("delete", &self.path, e)),
        }
    }

    /// The shared part of the sanity checks: whole entries, each one readable, inside the
    /// segment (`outside` says why not, or `None`), and following the one before it.
    fn check_entries(&self, outside: impl Fn(&E) -> Option<String>) -> Result<(), String> {
        if !self.aligned {
            return Err(format!("its length is not a multiple of {} bytes", E::SIZE));
        }
        let mut prev: Option<E> = None;
        for i in 0..self.len() {
            let Some(e) = self.entry(i) else {
                return Err(format!("entry {i} cannot be read"));
            };
            if let Some(why) = outside(&e) {
                return Err(format!("entry {i} {why}"));
            }
            if let Some(p) = prev {
                if !e.follows(&p) {
                    return Err(format!("entry {i} {e} does not follow entry {} {p}", i - 1));
                }
            }
            prev = Some(e);
        }
        Ok(())
    }
}
