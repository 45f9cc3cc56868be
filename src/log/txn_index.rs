//! The aborted-transaction index of one segment, `<base_offset:020>.txnindex`, in Apache
//! Kafka's format (`TransactionIndex`): one 34-byte entry per transaction whose ABORT marker
//! is in the segment, big endian `version i16 (0)`, `producer_id i64`, `first_offset i64`,
//! `last_offset i64` (the marker's offset), `last_stable_offset i64` (the partition's last
//! stable offset once that transaction completed).
//!
//! A read_committed fetch asks for the entries overlapping the offsets it returns, so the
//! consumer can drop the records of those transactions.
//!
//! What always holds:
//! - Entries are in increasing `last_offset` order (markers are appended in log order);
//!   appending an entry at or below the last one changes nothing (a replay after a crash may
//!   offer an entry the index already holds).
//! - Every entry's `last_offset` is inside the segment: truncating the segment truncates
//!   the index with it.
//! - The file is created with the first entry (a segment without aborted transactions has
//!   none, as in Kafka). It is a cache of what the `.log` says: recovery drops damaged or
//!   out-of-range entries, and the producer-state replay adds back any that are missing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::LogError;

/// Suffix of aborted-transaction index files.
pub const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Bytes per entry.
pub const ENTRY_SIZE: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset right after the marker.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut out = [0u8; ENTRY_SIZE];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<AbortedTxn, String> {
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        if version != VERSION {
            return Err(format!("an entry has version {version}, not {VERSION}"));
        }
        Ok(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// Parses a whole `.txnindex` file: the entries before the first damaged one, and what is
/// wrong after them, if anything (for recovery and the dump tool).
pub fn parse(bytes: &[u8]) -> (Vec<AbortedTxn>, Option<String>) {
    let mut entries = Vec::with_capacity(bytes.len() / ENTRY_SIZE);
    for (i, chunk) in bytes.chunks(ENTRY_SIZE).enumerate() {
        if chunk.len() < ENTRY_SIZE {
            return (
                entries,
                Some(format!(
                    "it ends with {} bytes of a partial entry",
                    chunk.len()
                )),
            );
        }
        match AbortedTxn::decode(chunk) {
            Ok(e)
                if entries
                    .last()
                    .is_some_and(|l: &AbortedTxn| l.last_offset >= e.last_offset) =>
            {
                return (
                    entries,
                    Some(format!(
                        "entry {i} (last offset {}) is out of order",
                        e.last_offset
                    )),
                )
            }
            Ok(e) => entries.push(e),
            Err(why) => return (entries, Some(format!("entry {i}: {why}"))),
        }
    }
    (entries, None)
}

/// The aborted-transaction index of one segment, held in memory and appended to its file.
#[derive(Debug)]
pub struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
    file: Option<File>,
    dirty: bool,
}

impl TxnIndex {
    /// The index of a new segment at `path`: empty, and any leftover file removed.
    pub fn create(path: &Path) -> Result<TxnIndex, LogError> {
        remove_file_if_present(path)?;
        Ok(TxnIndex {
            path: path.to_path_buf(),
            entries: Vec::new(),
            file: None,
            dirty: false,
        })
    }

    /// Loads the index at `path` (a missing file is an empty index). A damaged tail is cut
    /// off the file and reported in the second value, so recovery can rebuild what it lost.
    pub fn open(path: &Path) -> Result<(TxnIndex, Option<String>), LogError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(LogError::io("read", path, e)),
        };
        let (entries, damage) = parse(&bytes);
        let mut index = TxnIndex {
            path: path.to_path_buf(),
            entries,
            file: None,
            dirty: false,
        };
        if damage.is_some() {
            index.rewrite()?;
        }
        Ok((index, damage))
    }

    /// Path of the `.txnindex` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, in `last_offset` order.
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// The last entry's marker offset.
    pub fn last_offset(&self) -> Option<i64> {
        self.entries.last().map(|e| e.last_offset)
    }

    /// Appends `entry`; false (and nothing written) when the index already reaches its
    /// marker offset.
    pub fn append(&mut self, entry: AbortedTxn) -> Result<bool, LogError> {
        if self.last_offset().is_some_and(|l| l >= entry.last_offset) {
            return Ok(false);
        }
        let bytes = entry.encode();
        let file = self.file()?;
        file.write_all(&bytes)
            .map_err(|e| LogError::io("append to", &self.path, e))?;
        self.entries.push(entry);
        self.dirty = true;
        Ok(true)
    }

    /// Kafka's `collectAbortedTxns`: adds to `out` the transactions that end at or after
    /// `from` and start below `to`; true when no later segment can hold more (an entry's
    /// last stable offset reached `to`).
    pub fn collect(&self, from: i64, to: i64, out: &mut Vec<AbortedTxn>) -> bool {
        for e in &self.entries {
            if e.last_offset >= from && e.first_offset < to {
                out.push(*e);
            }
            if e.last_stable_offset >= to {
                return true;
            }
        }
        false
    }

    /// Drops the entries whose marker is at or after `offset` (the segment was truncated
    /// there).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.rewrite()?;
        }
        Ok(())
    }

    /// Replaces every entry (the cleaner's rewrite of a segment keeps the transactions it
    /// still holds); `entries` must be in `last_offset` order.
    pub fn replace(&mut self, mut entries: Vec<AbortedTxn>) -> Result<(), LogError> {
        entries.sort_by_key(|e| e.last_offset);
        entries.dedup_by_key(|e| e.last_offset);
        self.entries = entries;
        self.rewrite()
    }

    /// Forces the file to disk if an entry was appended since the last flush.
    pub fn flush(&mut self) -> Result<(), LogError> {
        if self.dirty {
            if let Some(file) = &self.file {
                file.sync_data()
                    .map_err(|e| LogError::io("fsync", &self.path, e))?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// Deletes the file.
    pub fn delete(self) -> Result<(), LogError> {
        remove_file_if_present(&self.path)
    }

    fn file(&mut self) -> Result<&mut File, LogError> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| LogError::io("open", &self.path, e))?;
            self.file = Some(f);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Writes the in-memory entries as the whole file (or removes it when there are none).
    fn rewrite(&mut self) -> Result<(), LogError> {
        self.file = None;
        if self.entries.is_empty() {
            return remove_file_if_present(&self.path);
        }
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_SIZE);
        for e in &self.entries {
            bytes.extend_from_slice(&e.encode());
        }
        fs::write(&self.path, &bytes).map_err(|e| LogError::io("write", &self.path, e))?;
        self.dirty = true;
        Ok(())
    }
}

fn remove_file_if_present(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("delete", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_round_trip_in_kafkas_34_byte_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::create(&path).unwrap();
        assert!(!path.exists(), "no file before the first entry");
        assert!(index.append(txn(7, 0, 5, 6)).unwrap());
        assert!(index.append(txn(8, 2, 9, 10)).unwrap());
        assert!(!index.append(txn(8, 2, 9, 10)).unwrap(), "a replayed entry");
        index.flush().unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * ENTRY_SIZE);
        assert_eq!(&bytes[0..2], &[0, 0], "version 0");
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &5i64.to_be_bytes());
        let (back, damage) = TxnIndex::open(&path).unwrap();
        assert!(damage.is_none());
        assert_eq!(back.entries(), index.entries());
    }

    #[test]
    fn collect_returns_overlapping_transactions_and_stops_at_the_upper_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::create(&dir.path().join("x.txnindex")).unwrap();
        index.append(txn(1, 0, 3, 4)).unwrap();
        index.append(txn(2, 5, 8, 9)).unwrap();
        index.append(txn(3, 10, 12, 13)).unwrap();
        let mut out = Vec::new();
        assert!(
            index.collect(4, 9, &mut out),
            "the second entry's LSO reaches 9"
        );
        assert_eq!(out, vec![txn(2, 5, 8, 9)]);
        let mut out = Vec::new();
        assert!(
            !index.collect(0, 100, &mut out),
            "a later segment may hold more"
        );
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn truncation_and_damage_drop_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txnindex");
        let mut index = TxnIndex::create(&path).unwrap();
        for i in 0..3 {
            index
                .append(txn(i, i * 10, i * 10 + 5, i * 10 + 6))
                .unwrap();
        }
        index.truncate_to(16).unwrap();
        assert_eq!(index.entries().len(), 2);
        assert_eq!(fs::read(&path).unwrap().len(), 2 * ENTRY_SIZE);
        // A torn append: half an entry at the end.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0u8; 10]).unwrap();
        drop(f);
        let (index, damage) = TxnIndex::open(&path).unwrap();
        assert!(damage.unwrap().contains("partial entry"));
        assert_eq!(index.entries().len(), 2);
        assert_eq!(fs::read(&path).unwrap().len(), 2 * ENTRY_SIZE, "cut back");
        let mut index = index;
        index.truncate_to(0).unwrap();
        assert!(!path.exists(), "an empty index has no file");
    }
}
