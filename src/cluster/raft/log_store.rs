//! The durable Raft log and vote store (openraft's `RaftLogStorage`).
//!
//! Shape (after neon's safekeeper): the entries above the purge point live in memory, where
//! readers (replication tasks) take them; every change to the files goes through one writer
//! thread that owns the [`DiskLog`], in the order openraft asked for it. Appends are batched:
//! the writer drains its queue, writes every frame, fsyncs once and only then reports the
//! appends as flushed.
//!
//! Invariants:
//! - An append is reported flushed (its `LogFlushed` callback) only after its frames are
//!   fsynced; `save_vote`, `truncate` and `purge` return only after their change is fsynced.
//!   A vote that is not durable would let a restarted node vote twice in one term.
//! - All writes are applied to the files in call order (one queue, one thread), so a vote
//!   saved after an append is never on disk before it, as openraft requires.
//! - Entry indexes strictly increase (openraft appends contiguously after a truncate).
//! - Memory changes before the call returns (entries are readable as soon as `append`
//!   returns), and memory and files hold the same entries once the queue is drained.
//! - After one failed write the store fails every later write: an fsync that failed once may
//!   have dropped pages the kernel will not report again.
//! - No lock is held across an `.await`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{mpsc, Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use tokio::sync::oneshot;

use super::log_disk::{encode_frame, DiskLog, LogStoreError};
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Operations per writer batch (one fsync covers them).
const MAX_BATCH: usize = 1024;

#[derive(Default)]
struct Memory {
    entries: BTreeMap<u64, Entry>,
    purged: Option<LogId>,
}

type Shared = Arc<RwLock<Memory>>;

fn read(shared: &Shared) -> RwLockReadGuard<'_, Memory> {
    shared.read().unwrap_or_else(|p| p.into_inner())
}

fn write(shared: &Shared) -> RwLockWriteGuard<'_, Memory> {
    shared.write().unwrap_or_else(|p| p.into_inner())
}

enum Op {
    Append {
        frames: Vec<(u64, Vec<u8>)>,
        callback: LogFlushed<TypeConfig>,
    },
    Truncate {
        since: u64,
        done: oneshot::Sender<Result<(), LogStoreError>>,
    },
    Purge {
        upto: LogId,
        done: oneshot::Sender<Result<(), LogStoreError>>,
    },
    SaveVote {
        vote: Vote,
        done: oneshot::Sender<Result<(), LogStoreError>>,
    },
    SaveCommitted {
        committed: Option<LogId>,
    },
}

/// A reader of the log, handed to replication tasks.
#[derive(Clone)]
pub struct LogReader {
    shared: Shared,
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read(&self.shared)
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

/// The Raft log and vote of one node, stored under `cluster.data_dir/raft-log/`.
pub struct LogStore {
    shared: Shared,
    vote: Option<Vote>,
    committed: Option<LogId>,
    tx: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
}

fn storage_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: &LogStoreError) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(e)).into()
}

fn stopped() -> LogStoreError {
    LogStoreError::Failed("the Raft log writer thread has stopped".into())
}

impl LogStore {
    /// Opens (or creates) the store in `dir`, recovering the files (blocking I/O: call it
    /// from `spawn_blocking` or before the runtime is busy). A new segment file is started
    /// every `entries_per_segment` entries; purging deletes whole segments.
    pub fn open(dir: &Path, entries_per_segment: u64) -> Result<LogStore, LogStoreError> {
        let (disk, recovered) = DiskLog::open(dir, entries_per_segment)?;
        tracing::debug!(
            dir = %dir.display(),
            entries = recovered.entries.len(),
            purged = ?recovered.purged.map(|p| p.index),
            "opened the Raft log"
        );
        let shared = Arc::new(RwLock::new(Memory {
            entries: recovered.entries,
            purged: recovered.purged,
        }));
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer_loop(disk, rx))
            .map_err(|source| LogStoreError::Io {
                action: "start the writer thread for",
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(LogStore {
            shared,
            vote: recovered.vote,
            committed: recovered.committed,
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    fn send(&self, op: Op) -> Result<(), LogStoreError> {
        match &self.tx {
            Some(tx) => tx.send(op).map_err(|_| stopped()),
            None => Err(stopped()),
        }
    }

    /// Sends `op` (built around a reply channel) and waits for the writer's answer.
    async fn call(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), LogStoreError>>) -> Op,
    ) -> Result<(), LogStoreError> {
        let (done, rx) = oneshot::channel();
        self.send(make(done))?;
        rx.await.map_err(|_| stopped())?
    }
}

impl Drop for LogStore {
    /// Lets the writer drain its queue and waits for it, so the files (and the directory
    /// lock) are released when the store is gone. Bounded by one batch of writes.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(handle) = self.writer.take() {
            if handle.join().is_err() {
                tracing::error!("the Raft log writer thread panicked");
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read(&self.shared)
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let mem = read(&self.shared);
        let last = mem
            .entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(mem.purged);
        Ok(LogState {
            last_purged_log_id: mem.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    /// Durable before it returns.
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let v = *vote;
        self.call(|done| Op::SaveVote { vote: v, done })
            .await
            .map_err(|e| storage_err(ErrorSubject::Vote, ErrorVerb::Write, &e))?;
        self.vote = Some(v);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.vote)
    }

    /// A hint for restarts: queued behind earlier appends, not waited for, not fsynced.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.committed = committed;
        self.send(Op::SaveCommitted { committed })
            .map_err(|e| storage_err(ErrorSubject::Store, ErrorVerb::Write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.committed)
    }

    /// Readable at once; `callback` fires once the entries are fsynced.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut frames = Vec::with_capacity(entries.len());
        for entry in &entries {
            let frame = encode_frame(entry)
                .map_err(|e| storage_err(ErrorSubject::Log(entry.log_id), ErrorVerb::Write, &e))?;
            frames.push((entry.log_id.index, frame));
        }
        {
            let mut mem = write(&self.shared);
            // Check the whole batch before changing anything.
            let mut last = mem.entries.last_key_value().map(|(i, _)| *i);
            for (index, _) in &frames {
                if let Some(l) = last {
                    if *index <= l {
                        let e = LogStoreError::NotIncreasing {
                            last: l,
                            got: *index,
                        };
                        return Err(storage_err(ErrorSubject::Logs, ErrorVerb::Write, &e));
                    }
                }
                last = Some(*index);
            }
            for entry in entries {
                mem.entries.insert(entry.log_id.index, entry);
            }
        }
        self.send(Op::Append { frames, callback })
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, &e))
    }

    /// Deletes `log_id..` from memory at once and from disk (fsynced) before returning.
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        drop(write(&self.shared).entries.split_off(&log_id.index));
        let since = log_id.index;
        self.call(|done| Op::Truncate { since, done })
            .await
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))
    }

    /// Forgets `..=log_id`: the purge point is durable before this returns.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut mem = write(&self.shared);
            if mem.purged.is_some_and(|p| p.index >= log_id.index) {
                return Ok(());
            }
            let rest = mem.entries.split_off(&(log_id.index + 1));
            mem.entries = rest;
            mem.purged = Some(log_id);
        }
        self.call(|done| Op::Purge { upto: log_id, done })
            .await
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))
    }
}

fn to_io(e: &LogStoreError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Syncs the appends written so far and answers their callbacks.
fn flush(disk: &mut DiskLog, pending: &mut Vec<LogFlushed<TypeConfig>>) {
    if pending.is_empty() {
        return;
    }
    let result = disk.sync();
    for callback in pending.drain(..) {
        callback.log_io_completed(result.as_ref().map(|_| ()).map_err(to_io));
    }
}

fn reply(done: oneshot::Sender<Result<(), LogStoreError>>, result: Result<(), LogStoreError>) {
    // The caller may have gone away (shutdown); nothing to do then.
    let _ = done.send(result);
}

/// The writer thread: applies operations in order, one fsync per batch of appends.
///
/// The committed hint of a batch is written after the batch's appends are synced, so it never
/// names an entry the files do not hold durably.
fn writer_loop(mut disk: DiskLog, rx: mpsc::Receiver<Op>) {
    let mut pending = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut committed_hint = None;
        let mut next = Some(first);
        let mut n = 0;
        while let Some(op) = next.take() {
            match op {
                Op::Append { frames, callback } => match disk.append(&frames) {
                    Ok(()) => pending.push(callback),
                    Err(e) => {
                        flush(&mut disk, &mut pending);
                        callback.log_io_completed(Err(to_io(&e)));
                    }
                },
                Op::Truncate { since, done } => {
                    flush(&mut disk, &mut pending);
                    reply(done, disk.truncate(since));
                }
                Op::Purge { upto, done } => {
                    flush(&mut disk, &mut pending);
                    reply(done, disk.purge(&upto));
                }
                Op::SaveVote { vote, done } => {
                    flush(&mut disk, &mut pending);
                    reply(done, disk.save_vote(&vote));
                }
                Op::SaveCommitted { committed } => committed_hint = Some(committed),
            }
            n += 1;
            if n < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut disk, &mut pending);
        if let Some(committed) = committed_hint {
            if let Err(e) = disk.save_committed(committed.as_ref()) {
                tracing::warn!(error = %e, "could not save the committed-index hint");
            }
        }
    }
}
