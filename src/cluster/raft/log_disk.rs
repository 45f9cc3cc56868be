//! The files behind the Raft log store: segment files of framed entries, the vote, the purge
//! point and the committed hint, plus recovery.
//!
//! Layout of `cluster.data_dir/raft-log/`:
//! - `LOCK`: held with `flock` while a node uses the directory (two brokers on one directory
//!   would interleave their writes).
//! - `segments/<first index, 20 digits>.seg`: entries `first, first+1, ...`, each a frame
//!   `[u32 BE payload length][u32 BE CRC-32C of the payload][payload: the entry as JSON]`.
//! - `vote.json`: the last saved vote; written to a temp file, fsynced, renamed, directory
//!   fsynced ([`write_atomically`]).
//! - `purged.json`: the id of the last purged entry, written the same way.
//! - `committed.json`: a hint of the last committed id, renamed into place without fsync
//!   (openraft tolerates a stale or missing value; it only speeds up restarts).
//!
//! Invariants:
//! - Every segment but the last is complete and fsynced: a new segment is only created after
//!   the previous one was synced. So a torn frame can only sit at the end of the last segment,
//!   and recovery cuts it off; a bad frame anywhere else is corruption and stops the node.
//! - Entry indexes strictly increase across frames and segments, and a segment's name is at
//!   most its first index. (openraft appends contiguously; its storage suite also appends
//!   with holes, which the format therefore represents.)
//! - `purged.json` is written (durably) before the segments it covers are deleted, and a
//!   truncation deletes later segments newest-first before cutting the containing one, so a
//!   crash in the middle of either leaves a log recovery accepts.
//! - Nothing here is acknowledged before it is on disk: the caller fsyncs through [`DiskLog::sync`]
//!   before it reports an append as flushed; vote, purge and truncate sync before returning.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::types::{Entry, LogId, Vote};
use crate::fsutil::write_atomically;

/// The largest entry (serialized) the log accepts or reads back.
pub const MAX_ENTRY_BYTES: usize = 64 << 20;
/// A segment is rolled once it is this large, even below its entry count.
const SEGMENT_MAX_BYTES: u64 = 64 << 20;
const FRAME_HEADER: usize = 8;

/// What can go wrong with the Raft log files.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error(
        "could not {action} {}: {source}; check that the disk is healthy, not full and \
         writable by the broker",
        path.display()
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the Raft log file {} is corrupt at byte {offset}: {reason}; this node can no longer \
         trust its Raft log. If a majority of the other nodes is healthy, stop this broker, \
         move its cluster.data_dir away and restart it to copy the log from the leader",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "the cluster data directory {} is used by another process (it holds {}); stop the \
         other broker or give this one its own cluster.data_dir",
        dir.display(),
        dir.join("LOCK").display()
    )]
    Locked { dir: PathBuf },
    #[error(
        "an earlier write to the Raft log failed ({0}); the node stopped writing to avoid \
         acknowledging data it may not hold. Fix the disk and restart the broker"
    )]
    Failed(String),
    #[error(
        "Raft log entry {got} does not come after the last entry {last}; this is a bug in the \
         caller, please report it"
    )]
    NotIncreasing { last: u64, got: u64 },
    #[error("could not encode Raft log entry {index}: {reason}")]
    Encode { index: u64, reason: String },
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> LogStoreError + 'a {
    move |source| LogStoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Serializes one entry into its on-disk frame.
pub fn encode_frame(entry: &Entry) -> Result<Vec<u8>, LogStoreError> {
    let index = entry.log_id.index;
    let payload = serde_json::to_vec(entry).map_err(|e| LogStoreError::Encode {
        index,
        reason: e.to_string(),
    })?;
    if payload.len() > MAX_ENTRY_BYTES {
        return Err(LogStoreError::Encode {
            index,
            reason: format!(
                "{} bytes is above the limit of {MAX_ENTRY_BYTES} bytes",
                payload.len()
            ),
        });
    }
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Why a frame could not be read.
enum FrameProblem {
    /// The frame reaches past the end of the file (or its header does).
    PastEnd,
    /// The frame is complete but wrong.
    Bad(String),
}

/// Reads the frame at the start of `bytes`: the entry and the frame's length.
fn decode_frame(bytes: &[u8]) -> Result<(Entry, usize), FrameProblem> {
    let Some(header) = bytes.get(..FRAME_HEADER) else {
        return Err(FrameProblem::PastEnd);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_ENTRY_BYTES {
        return Err(FrameProblem::Bad(format!("implausible frame length {len}")));
    }
    let Some(payload) = bytes.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Err(FrameProblem::PastEnd);
    };
    if crc32c::crc32c(payload) != crc {
        return Err(FrameProblem::Bad("CRC-32C mismatch".into()));
    }
    let entry: Entry = serde_json::from_slice(payload)
        .map_err(|e| FrameProblem::Bad(format!("entry does not decode: {e}")))?;
    Ok((entry, FRAME_HEADER + len))
}

/// One segment file.
struct Segment {
    path: PathBuf,
    file: File,
    /// `(entry index, byte offset)` of every frame, in file order.
    frames: Vec<(u64, u64)>,
    /// Bytes of complete frames.
    len: u64,
}

impl Segment {
    fn last_index(&self) -> Option<u64> {
        self.frames.last().map(|(i, _)| *i)
    }
}

/// What the files held when the log was opened.
pub struct Recovered {
    /// Entries above the purge point, by index.
    pub entries: BTreeMap<u64, Entry>,
    pub purged: Option<LogId>,
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
}

/// The Raft log files. Synchronous; one thread owns it (see `log_store`).
pub struct DiskLog {
    dir: PathBuf,
    segment_dir: PathBuf,
    segments: BTreeMap<u64, Segment>,
    entries_per_segment: u64,
    /// Segments written since the last sync.
    dirty: BTreeSet<u64>,
    /// Whether files were created or deleted since the last directory sync.
    dir_dirty: bool,
    /// Set after the first failed write; every later operation fails with it.
    failed: Option<String>,
    /// Held for the lifetime of this value; closing it releases the `flock`.
    _lock: File,
}

fn segment_name(base: u64) -> String {
    format!("{base:020}.seg")
}

fn sync_dir(dir: &Path) -> Result<(), LogStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn lock_dir(dir: &Path) -> Result<File, LogStoreError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    // SAFETY: flock is called on a file descriptor this function owns and keeps open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Err(LogStoreError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        return Err(io_err("lock", &path)(err));
    }
    Ok(file)
}

fn read_json_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, LogStoreError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LogStoreError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

impl DiskLog {
    /// Opens (or creates) the log under `dir` and recovers it: a torn tail of the last
    /// segment is cut off, segments left behind by an interrupted purge are deleted.
    pub fn open(
        dir: &Path,
        entries_per_segment: u64,
    ) -> Result<(DiskLog, Recovered), LogStoreError> {
        let segment_dir = dir.join("segments");
        fs::create_dir_all(&segment_dir).map_err(io_err("create directory", &segment_dir))?;
        let lock = lock_dir(dir)?;

        let vote: Option<Vote> = read_json_file(&dir.join("vote.json"))?;
        let purged: Option<LogId> = read_json_file(&dir.join("purged.json"))?;
        // Only a hint: a damaged file reads as "unknown".
        let committed: Option<LogId> = match read_json_file(&dir.join("committed.json")) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the committed-index hint of the Raft log");
                None
            }
        };

        let mut bases = Vec::new();
        for item in fs::read_dir(&segment_dir).map_err(io_err("list", &segment_dir))? {
            let item = item.map_err(io_err("list", &segment_dir))?;
            let name = item.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
                continue; // temp files and strangers
            };
            if let Ok(base) = stem.parse::<u64>() {
                bases.push(base);
            }
        }
        bases.sort_unstable();

        let mut log = DiskLog {
            dir: dir.to_path_buf(),
            segment_dir,
            segments: BTreeMap::new(),
            entries_per_segment: entries_per_segment.max(1),
            dirty: BTreeSet::new(),
            dir_dirty: false,
            failed: None,
            _lock: lock,
        };
        let purged_index = purged.map(|p| p.index);
        let mut entries = BTreeMap::new();
        for (i, base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let (segment, found) = log.recover_segment(*base, is_last)?;
            let fully_purged = match (found.last(), purged_index) {
                (Some(last), Some(p)) => last.log_id.index <= p,
                (None, _) => !is_last,
                (Some(_), None) => false,
            };
            if let (Some(first), Some((&last, _))) = (found.first(), entries.last_key_value()) {
                if first.log_id.index <= last {
                    return Err(LogStoreError::Corrupt {
                        path: segment.path.clone(),
                        offset: 0,
                        reason: format!(
                            "starts with entry {} but an earlier segment ends with entry {last}",
                            first.log_id.index
                        ),
                    });
                }
            }
            if fully_purged {
                fs::remove_file(&segment.path).map_err(io_err("delete", &segment.path))?;
                log.dir_dirty = true;
                continue;
            }
            for entry in found {
                if purged_index.is_some_and(|p| entry.log_id.index <= p) {
                    continue;
                }
                entries.insert(entry.log_id.index, entry);
            }
            log.segments.insert(*base, segment);
        }
        if log.dir_dirty {
            sync_dir(&log.segment_dir)?;
            log.dir_dirty = false;
        }
        Ok((
            log,
            Recovered {
                entries,
                purged,
                vote,
                committed,
            },
        ))
    }

    fn recover_segment(
        &self,
        base: u64,
        is_last: bool,
    ) -> Result<(Segment, Vec<Entry>), LogStoreError> {
        let path = self.segment_dir.join(segment_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        let mut frames: Vec<(u64, u64)> = Vec::new();
        let mut found = Vec::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let problem = match decode_frame(&bytes[pos..]) {
                Ok((entry, n)) => {
                    let index = entry.log_id.index;
                    let floor = frames.last().map_or(base, |(i, _)| i + 1);
                    if index < floor {
                        FrameProblem::Bad(format!(
                            "holds entry {index} where an entry from {floor} on belongs"
                        ))
                    } else {
                        frames.push((index, pos as u64));
                        found.push(entry);
                        pos += n;
                        continue;
                    }
                }
                Err(p) => p,
            };
            // A crash mid-append leaves a partial last frame, or a complete-length frame whose
            // tail never reached the disk, or zeroes the file system allocated.
            let frame_end = bytes.get(pos..pos + FRAME_HEADER).map(|h| {
                pos + FRAME_HEADER + u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize
            });
            let torn = match &problem {
                FrameProblem::PastEnd => true,
                FrameProblem::Bad(_) => {
                    frame_end.is_some_and(|end| end >= bytes.len())
                        || bytes[pos..].iter().all(|b| *b == 0)
                }
            };
            if !(is_last && torn) {
                let reason = match problem {
                    FrameProblem::PastEnd => "the last frame is incomplete".to_string(),
                    FrameProblem::Bad(r) => r,
                };
                return Err(LogStoreError::Corrupt {
                    path,
                    offset: pos as u64,
                    reason,
                });
            }
            tracing::warn!(
                file = %path.display(),
                offset = pos,
                dropped_bytes = bytes.len() - pos,
                "dropping a torn tail of the Raft log (a write that never completed)"
            );
            file.set_len(pos as u64)
                .map_err(io_err("truncate", &path))?;
            file.sync_all().map_err(io_err("fsync", &path))?;
            break;
        }
        Ok((
            Segment {
                path,
                file,
                frames,
                len: pos as u64,
            },
            found,
        ))
    }

    fn check_ok(&self) -> Result<(), LogStoreError> {
        match &self.failed {
            Some(msg) => Err(LogStoreError::Failed(msg.clone())),
            None => Ok(()),
        }
    }

    /// Remembers a failure; every later operation fails with it.
    pub fn fail(&mut self, err: &LogStoreError) {
        if self.failed.is_none() {
            tracing::error!(error = %err, "the Raft log stopped accepting writes");
            self.failed = Some(err.to_string());
        }
    }

    fn guard<T>(&mut self, result: Result<T, LogStoreError>) -> Result<T, LogStoreError> {
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// Writes frames (`(index, frame)`) after the last entry, without syncing.
    pub fn append(&mut self, frames: &[(u64, Vec<u8>)]) -> Result<(), LogStoreError> {
        self.check_ok()?;
        let result = self.append_inner(frames);
        self.guard(result)
    }

    fn append_inner(&mut self, frames: &[(u64, Vec<u8>)]) -> Result<(), LogStoreError> {
        for (index, frame) in frames {
            let base = self.segment_for(*index)?;
            let Some(segment) = self.segments.get_mut(&base) else {
                return Err(LogStoreError::Failed("segment vanished".into()));
            };
            segment
                .file
                .write_all_at(frame, segment.len)
                .map_err(io_err("append to", &segment.path))?;
            segment.frames.push((*index, segment.len));
            segment.len += frame.len() as u64;
            self.dirty.insert(base);
        }
        Ok(())
    }

    /// The base of the segment entry `index` goes into, rolling to a new segment if needed.
    fn segment_for(&mut self, index: u64) -> Result<u64, LogStoreError> {
        if let Some((&base, segment)) = self.segments.last_key_value() {
            match segment.last_index() {
                Some(last) if index <= last => {
                    return Err(LogStoreError::NotIncreasing { last, got: index })
                }
                Some(_) => {
                    let full = segment.frames.len() as u64 >= self.entries_per_segment
                        || segment.len >= SEGMENT_MAX_BYTES;
                    if !full {
                        return Ok(base);
                    }
                }
                None if index >= base => return Ok(base),
                None => {
                    // An empty segment named above the entry: start a correctly named one.
                    let path = segment.path.clone();
                    self.segments.remove(&base);
                    self.dirty.remove(&base);
                    fs::remove_file(&path).map_err(io_err("delete", &path))?;
                    self.dir_dirty = true;
                }
            }
        }
        // Only the last segment may be torn: make the current one durable before rolling.
        self.sync_files()?;
        let path = self.segment_dir.join(segment_name(index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        self.segments.insert(
            index,
            Segment {
                path,
                file,
                frames: Vec::new(),
                len: 0,
            },
        );
        self.dir_dirty = true;
        Ok(index)
    }

    fn sync_files(&mut self) -> Result<(), LogStoreError> {
        for base in std::mem::take(&mut self.dirty) {
            if let Some(segment) = self.segments.get(&base) {
                segment
                    .file
                    .sync_data()
                    .map_err(io_err("fsync", &segment.path))?;
            }
        }
        Ok(())
    }

    /// Makes every append so far durable (data, then new or deleted file names).
    pub fn sync(&mut self) -> Result<(), LogStoreError> {
        self.check_ok()?;
        let mut result = self.sync_files();
        if result.is_ok() && self.dir_dirty {
            result = sync_dir(&self.segment_dir);
            self.dir_dirty = false;
        }
        self.guard(result)
    }

    /// Deletes entries `since..`, durably.
    pub fn truncate(&mut self, since: u64) -> Result<(), LogStoreError> {
        self.check_ok()?;
        let result = self.truncate_inner(since);
        self.guard(result)
    }

    fn truncate_inner(&mut self, since: u64) -> Result<(), LogStoreError> {
        self.sync()?;
        let doomed: Vec<u64> = self
            .segments
            .range(since..)
            .map(|(b, _)| *b)
            .rev()
            .collect();
        for base in doomed {
            if let Some(segment) = self.segments.remove(&base) {
                fs::remove_file(&segment.path).map_err(io_err("delete", &segment.path))?;
                self.dir_dirty = true;
            }
        }
        if let Some((_, segment)) = self.segments.range_mut(..since).next_back() {
            let keep = segment.frames.partition_point(|(i, _)| *i < since);
            if let Some(&(_, cut)) = segment.frames.get(keep) {
                segment
                    .file
                    .set_len(cut)
                    .map_err(io_err("truncate", &segment.path))?;
                segment
                    .file
                    .sync_all()
                    .map_err(io_err("fsync", &segment.path))?;
                segment.frames.truncate(keep);
                segment.len = cut;
            }
        }
        self.sync()
    }

    /// Records `upto` as purged (durably), then deletes the segments it covers entirely.
    pub fn purge(&mut self, upto: &LogId) -> Result<(), LogStoreError> {
        self.check_ok()?;
        let result = self.purge_inner(upto);
        self.guard(result)
    }

    fn purge_inner(&mut self, upto: &LogId) -> Result<(), LogStoreError> {
        self.sync()?;
        let path = self.dir.join("purged.json");
        let bytes = serde_json::to_vec(upto).map_err(|e| LogStoreError::Encode {
            index: upto.index,
            reason: e.to_string(),
        })?;
        write_atomically(&path, &bytes).map_err(io_err("write", &path))?;
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .filter(|(base, s)| s.last_index().unwrap_or(**base) <= upto.index)
            .map(|(b, _)| *b)
            .collect();
        for base in doomed {
            if let Some(segment) = self.segments.remove(&base) {
                self.dirty.remove(&base);
                fs::remove_file(&segment.path).map_err(io_err("delete", &segment.path))?;
                self.dir_dirty = true;
            }
        }
        self.sync()
    }

    /// Saves the vote durably.
    pub fn save_vote(&mut self, vote: &Vote) -> Result<(), LogStoreError> {
        self.check_ok()?;
        let path = self.dir.join("vote.json");
        let result = serde_json::to_vec(vote)
            .map_err(|e| LogStoreError::Encode {
                index: 0,
                reason: e.to_string(),
            })
            .and_then(|bytes| write_atomically(&path, &bytes).map_err(io_err("write", &path)));
        self.guard(result)
    }

    /// Saves the committed hint: renamed into place, not fsynced (a stale hint is harmless).
    pub fn save_committed(&mut self, committed: Option<&LogId>) -> Result<(), LogStoreError> {
        self.check_ok()?;
        let path = self.dir.join("committed.json");
        let tmp = self.dir.join("committed.json.tmp");
        let bytes = serde_json::to_vec(&committed).map_err(|e| LogStoreError::Encode {
            index: committed.map_or(0, |c| c.index),
            reason: e.to_string(),
        })?;
        File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn append(log: &mut DiskLog, range: std::ops::Range<u64>) {
        let frames: Vec<_> = range
            .map(|i| (i, encode_frame(&entry(1, i)).unwrap()))
            .collect();
        log.append(&frames).unwrap();
        log.sync().unwrap();
    }

    fn indexes(r: &Recovered) -> Vec<u64> {
        r.entries.keys().copied().collect()
    }

    #[test]
    fn recovery_truncates_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(dir.path(), 100).unwrap();
        append(&mut log, 1..4);
        drop(log);
        let seg = dir.path().join("segments").join(segment_name(1));
        let full = fs::read(&seg).unwrap();
        // A torn write: the first half of a fourth frame.
        let extra = encode_frame(&entry(1, 4)).unwrap();
        let mut torn = full.clone();
        torn.extend_from_slice(&extra[..extra.len() / 2]);
        fs::write(&seg, &torn).unwrap();
        let (mut log, rec) = DiskLog::open(dir.path(), 100).unwrap();
        assert_eq!(indexes(&rec), vec![1, 2, 3]);
        assert_eq!(fs::read(&seg).unwrap(), full, "the torn tail is cut off");
        append(&mut log, 4..6);
        drop(log);
        let (_, rec) = DiskLog::open(dir.path(), 100).unwrap();
        assert_eq!(indexes(&rec), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn recovery_drops_a_complete_last_frame_with_a_bad_crc_and_zero_fill() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(dir.path(), 100).unwrap();
        append(&mut log, 1..3);
        drop(log);
        let seg = dir.path().join("segments").join(segment_name(1));
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        let (_, rec) = DiskLog::open(dir.path(), 100).unwrap();
        assert_eq!(indexes(&rec), vec![1]);

        // Zeroes a file system allocated past the last complete frame.
        let mut bytes = fs::read(&seg).unwrap();
        bytes.extend_from_slice(&[0u8; 300]);
        fs::write(&seg, &bytes).unwrap();
        let (_, rec) = DiskLog::open(dir.path(), 100).unwrap();
        assert_eq!(indexes(&rec), vec![1]);
    }

    #[test]
    fn corruption_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(dir.path(), 100).unwrap();
        append(&mut log, 1..4);
        drop(log);
        let seg = dir.path().join("segments").join(segment_name(1));
        let mut bytes = fs::read(&seg).unwrap();
        bytes[FRAME_HEADER + 2] ^= 0xff; // inside the first payload
        fs::write(&seg, &bytes).unwrap();
        match DiskLog::open(dir.path(), 100) {
            Err(LogStoreError::Corrupt { offset, .. }) => assert_eq!(offset, 0),
            other => panic!("expected corruption, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn segments_roll_truncate_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(dir.path(), 4).unwrap();
        append(&mut log, 1..12); // segments 1, 5, 9
        assert_eq!(
            log.segments.keys().copied().collect::<Vec<_>>(),
            vec![1, 5, 9]
        );
        log.truncate(6).unwrap(); // keeps 1..=5
        assert_eq!(log.segments.keys().copied().collect::<Vec<_>>(), vec![1, 5]);
        append(&mut log, 6..10);
        log.purge(&LogId::new(CommittedLeaderId::new(1, 1), 5))
            .unwrap();
        // Segment 1 (1..=4) is gone, segment 5 (5..=8) still holds 6..=8.
        assert_eq!(log.segments.keys().copied().collect::<Vec<_>>(), vec![5, 9]);
        drop(log);
        let (mut log, rec) = DiskLog::open(dir.path(), 4).unwrap();
        assert_eq!(indexes(&rec), vec![6, 7, 8, 9]);
        assert_eq!(rec.purged.map(|p| p.index), Some(5));
        // Purging past the end leaves no entries; appends continue after the purge point.
        log.purge(&LogId::new(CommittedLeaderId::new(1, 1), 20))
            .unwrap();
        append(&mut log, 21..23);
        drop(log);
        let (_, rec) = DiskLog::open(dir.path(), 4).unwrap();
        assert_eq!(indexes(&rec), vec![21, 22]);
    }

    #[test]
    fn vote_survives_reopen_and_the_directory_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, rec) = DiskLog::open(dir.path(), 4).unwrap();
        assert!(rec.vote.is_none());
        let vote = Vote::new(7, 2);
        log.save_vote(&vote).unwrap();
        assert!(matches!(
            DiskLog::open(dir.path(), 4),
            Err(LogStoreError::Locked { .. })
        ));
        drop(log);
        let (_, rec) = DiskLog::open(dir.path(), 4).unwrap();
        assert_eq!(rec.vote, Some(vote));
    }
}
