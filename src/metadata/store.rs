//! The durable metadata log of a single node: commands appended to a file and fsynced
//! before they are applied, with a snapshot of the image every so often.
//!
//! Layout in `<data_dir>/__metadata/`: `commands.log` (one JSON record per line:
//! `{"index": N, "command": {...}}`) and `image.json` (the image after command
//! `applied`). On open, the snapshot is loaded and every logged command with a higher index
//! is applied again; a torn last line (a crash mid-write) is cut off.
//!
//! Invariants: a command is acknowledged only after its line is fsynced; the image a reader
//! sees is always the result of a prefix of the log. The Raft cluster will replace this
//! log with a replicated one, behind the same `propose` / `image` surface.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::command::MetadataCommand;
use super::image::{ApplyError, MetadataImage};

/// Commands between two snapshots.
const SNAPSHOT_EVERY: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata store I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata file {path} is corrupt at line {line}: {message}; restore it from a backup or remove the data directory")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

#[derive(Serialize, Deserialize)]
struct LogRecord {
    index: u64,
    command: MetadataCommand,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    applied: u64,
    image: MetadataImage,
}

struct Writer {
    file: File,
    next_index: u64,
    since_snapshot: u64,
}

/// The single-node metadata store.
pub struct MetadataStore {
    dir: PathBuf,
    writer: Mutex<Writer>,
    image: RwLock<Arc<MetadataImage>>,
    version: tokio::sync::watch::Sender<u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl MetadataStore {
    /// Opens (or creates) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<MetadataStore, MetadataError> {
        let dir = data_dir.join("__metadata");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let snapshot_path = dir.join("image.json");
        let (mut image, applied) = match std::fs::read(&snapshot_path) {
            Ok(bytes) => {
                let snap: Snapshot =
                    serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt {
                        path: snapshot_path.clone(),
                        line: e.line(),
                        message: e.to_string(),
                    })?;
                let mut image = snap.image;
                image.reindex();
                (image, snap.applied)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (MetadataImage::default(), 0),
            Err(e) => return Err(io(&snapshot_path)(e)),
        };
        let log_path = dir.join("commands.log");
        let mut next_index = applied + 1;
        let mut valid_len: u64 = 0;
        let mut since_snapshot = 0;
        if let Ok(file) = File::open(&log_path) {
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            let mut line_no = 0;
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(io(&log_path))?;
                if n == 0 {
                    break;
                }
                line_no += 1;
                if !line.ends_with('\n') {
                    tracing::warn!(file = %log_path.display(), bytes = n, "dropping a torn last metadata record");
                    break;
                }
                let record: LogRecord = match serde_json::from_str(line.trim_end()) {
                    Ok(r) => r,
                    Err(e) => {
                        return Err(MetadataError::Corrupt {
                            path: log_path.clone(),
                            line: line_no,
                            message: e.to_string(),
                        })
                    }
                };
                valid_len += n as u64;
                if record.index < next_index {
                    continue; // already in the snapshot
                }
                image
                    .apply(&record.command)
                    .map_err(|e| MetadataError::Corrupt {
                        path: log_path.clone(),
                        line: line_no,
                        message: format!("command does not apply: {e}"),
                    })?;
                next_index = record.index + 1;
                since_snapshot += 1;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        file.set_len(valid_len).map_err(io(&log_path))?;
        let (version, _) = tokio::sync::watch::channel(next_index - 1);
        Ok(MetadataStore {
            dir,
            writer: Mutex::new(Writer {
                file,
                next_index,
                since_snapshot,
            }),
            image: RwLock::new(Arc::new(image)),
            version,
        })
    }

    /// The current image. Cheap: a shared pointer.
    pub fn image(&self) -> Arc<MetadataImage> {
        match self.image.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Notified with the index of the last applied command whenever the image changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Validates, persists (fsync) and applies one command. Returns the new image.
    ///
    /// Synchronous and short; never call it while holding another lock across `.await`.
    pub fn propose(&self, command: MetadataCommand) -> Result<Arc<MetadataImage>, MetadataError> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut image = (*self.image()).clone();
        image.apply(&command)?;
        let index = writer.next_index;
        let mut line = serde_json::to_vec(&LogRecord { index, command }).map_err(|e| {
            MetadataError::Corrupt {
                path: self.dir.clone(),
                line: 0,
                message: e.to_string(),
            }
        })?;
        line.push(b'\n');
        let log_path = self.dir.join("commands.log");
        writer.file.write_all(&line).map_err(io(&log_path))?;
        writer.file.sync_data().map_err(io(&log_path))?;
        writer.next_index += 1;
        writer.since_snapshot += 1;
        let image = Arc::new(image);
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = image.clone();
        if writer.since_snapshot >= SNAPSHOT_EVERY {
            self.snapshot(&mut writer, &image)?;
        }
        self.version.send_replace(index);
        Ok(image)
    }

    fn snapshot(&self, writer: &mut Writer, image: &MetadataImage) -> Result<(), MetadataError> {
        let path = self.dir.join("image.json");
        let snap = Snapshot {
            applied: writer.next_index - 1,
            image: image.clone(),
        };
        let bytes = serde_json::to_vec(&snap).map_err(|e| MetadataError::Corrupt {
            path: path.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        write_atomically(&path, &bytes).map_err(io(&path))?;
        let log_path = self.dir.join("commands.log");
        writer.file.set_len(0).map_err(io(&log_path))?;
        writer.file.sync_all().map_err(io(&log_path))?;
        writer.since_snapshot = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::command::PartitionAssignment;
    use std::collections::BTreeMap;

    fn create(name: &str) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4(),
            partitions: vec![PartitionAssignment {
                leader: 1,
                replicas: vec![1],
            }],
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn commands_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        store.propose(create("a")).unwrap();
        store.propose(create("b")).unwrap();
        assert!(store.propose(create("a")).is_err());
        let before = store.image();
        drop(store);
        let store = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(*store.image(), *before);
        assert_eq!(store.image().topics.len(), 2);
    }

    #[test]
    fn torn_last_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        store.propose(create("a")).unwrap();
        drop(store);
        let log = dir.path().join("__metadata/commands.log");
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"{\"index\": 2, \"comm").unwrap();
        drop(f);
        let store = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(store.image().topics.len(), 1);
        store.propose(create("b")).unwrap();
        drop(store);
        let store = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(store.image().topics.len(), 2);
    }

    #[test]
    fn snapshot_then_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        for i in 0..(SNAPSHOT_EVERY + 5) {
            store.propose(create(&format!("t{i}"))).unwrap();
        }
        drop(store);
        let store = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(store.image().topics.len() as u64, SNAPSHOT_EVERY + 5);
    }
}
