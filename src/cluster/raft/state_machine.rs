//! `ClusterStateMachine` (the guide's name): the metadata image built by applying committed
//! [`MetadataCommand`](crate::metadata::MetadataCommand)s in log order, its snapshots, and the
//! channel through which the broker sees each new image.
//!
//! Invariants:
//! - Applying is deterministic: entry `i` is applied to the image left by entries `..i`, so
//!   every node holds the same image at the same applied index. A command that does not apply
//!   records its [`ApplyError`](crate::metadata::ApplyError) in its response and leaves the
//!   image unchanged (`MetadataImage::apply` validates before it changes anything).
//! - The published [`AppliedImage`] is always the image after exactly `applied_index`; it is
//!   published after every applied batch and after a snapshot is installed, never in between.
//! - The state machine itself is not persisted entry by entry. What is durable is the current
//!   snapshot (`cluster.data_dir/raft-sm/current.snap`, written atomically), which openraft
//!   takes every `snapshot_entries` entries; the log keeps every entry after it, so a restart
//!   loads the snapshot and replays only the tail.
//! - The persisted snapshot only moves forward (by last log id): a snapshot built from an older
//!   view never replaces a newer installed one, since the log before the newer one may
//!   already be purged.
//!
//! Snapshot file: `b"BRKSNAP1"`, `u32 BE` length + JSON [`SnapshotMeta`], `u64 BE` length +
//! the snapshot data (JSON `{"version":1,"image":...}`), `u32 BE` CRC-32C of everything before.
//! The data part is also what travels to followers in InstallSnapshot.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::types::{
    CommandResponse, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::fsutil::write_atomically;
use crate::metadata::MetadataImage;

const MAGIC: &[u8; 8] = b"BRKSNAP1";
const SNAPSHOT_FILE: &str = "current.snap";
const SNAPSHOT_FORMAT: u32 = 1;

/// What a snapshot file or snapshot data failed on.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "could not {action} {}: {source}; check that the disk is healthy, not full and \
         writable by the broker",
        path.display()
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the Raft snapshot {} is damaged ({reason}); if a majority of the other nodes is \
         healthy, stop this broker, move its cluster.data_dir away and restart it to copy the \
         state from the leader",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("snapshot data from the leader does not decode: {0}")]
    BadData(String),
    #[error("could not encode a snapshot: {0}")]
    Encode(String),
}

/// The image every broker reads, with the Raft log index it reflects.
#[derive(Debug, Clone)]
pub struct AppliedImage {
    /// The metadata image after applying every entry up to `applied_index`.
    pub image: Arc<MetadataImage>,
    /// The index of the last applied Raft log entry (0 before anything is applied; index 0
    /// only ever holds the bootstrap membership, never a command).
    pub applied_index: u64,
}

#[derive(Serialize)]
struct PayloadRef<'a> {
    version: u32,
    image: &'a MetadataImage,
}

#[derive(Deserialize)]
struct Payload {
    version: u32,
    image: MetadataImage,
}

fn encode_data(image: &MetadataImage) -> Result<Vec<u8>, SnapshotError> {
    serde_json::to_vec(&PayloadRef {
        version: SNAPSHOT_FORMAT,
        image,
    })
    .map_err(|e| SnapshotError::Encode(e.to_string()))
}

fn decode_data(data: &[u8]) -> Result<MetadataImage, String> {
    let payload: Payload = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    if payload.version != SNAPSHOT_FORMAT {
        return Err(format!(
            "snapshot format {} is not known to this broker (it reads {SNAPSHOT_FORMAT}); \
             upgrade the broker",
            payload.version
        ));
    }
    let mut image = payload.image;
    image.reindex();
    Ok(image)
}

/// A snapshot as kept in memory and on disk.
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Arc<Vec<u8>>,
}

fn encode_file(snap: &StoredSnapshot) -> Result<Vec<u8>, SnapshotError> {
    let meta = serde_json::to_vec(&snap.meta).map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let meta_len = u32::try_from(meta.len())
        .map_err(|_| SnapshotError::Encode("snapshot metadata is too large".into()))?;
    let mut out = Vec::with_capacity(8 + 4 + meta.len() + 8 + snap.data.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&meta_len.to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&(snap.data.len() as u64).to_be_bytes());
    out.extend_from_slice(&snap.data);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn decode_file(bytes: &[u8]) -> Result<StoredSnapshot, String> {
    let body_len = bytes.len().checked_sub(4).ok_or("the file is too short")?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32c::crc32c(body).to_be_bytes() != crc {
        return Err("CRC-32C mismatch".into());
    }
    let rest = body.strip_prefix(MAGIC).ok_or("not a snapshot file")?;
    let (len, rest) = rest.split_at_checked(4).ok_or("truncated header")?;
    let meta_len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let (meta, rest) = rest
        .split_at_checked(meta_len)
        .ok_or("truncated metadata")?;
    let (len, data) = rest.split_at_checked(8).ok_or("truncated header")?;
    let mut n = [0u8; 8];
    n.copy_from_slice(len);
    if u64::from_be_bytes(n) != data.len() as u64 {
        return Err("the data length does not match the file".into());
    }
    let meta: SnapshotMeta = serde_json::from_slice(meta).map_err(|e| e.to_string())?;
    Ok(StoredSnapshot {
        meta,
        data: Arc::new(data.to_vec()),
    })
}

/// The current snapshot, shared between the state machine and its builders. Its mutex is
/// only taken in blocking sections (never across `.await`), and the file and the value change
/// together under it.
struct SnapshotSlot {
    path: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
}

impl SnapshotSlot {
    fn lock(&self) -> MutexGuard<'_, Option<StoredSnapshot>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persists `snap` and makes it current, unless the current one is newer. Blocking.
    fn replace(&self, snap: StoredSnapshot) -> Result<(), SnapshotError> {
        let mut current = self.lock();
        if let Some(cur) = current.as_ref() {
            if cur.meta.last_log_id > snap.meta.last_log_id {
                tracing::debug!(
                    kept = ?cur.meta.last_log_id,
                    built = ?snap.meta.last_log_id,
                    "a newer snapshot is already current; not replacing it"
                );
                return Ok(());
            }
        }
        let bytes = encode_file(&snap)?;
        write_atomically(&self.path, &bytes).map_err(|source| SnapshotError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        })?;
        *current = Some(snap);
        Ok(())
    }
}

async fn persist(slot: Arc<SnapshotSlot>, snap: StoredSnapshot) -> Result<(), SnapshotError> {
    let path = slot.path.clone();
    tokio::task::spawn_blocking(move || slot.replace(snap))
        .await
        .map_err(|e| SnapshotError::Io {
            action: "write",
            path,
            source: std::io::Error::other(e.to_string()),
        })?
}

/// The metadata state machine of one node.
pub struct ClusterStateMachine {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    slot: Arc<SnapshotSlot>,
    snapshot_seq: Arc<AtomicU64>,
    published: watch::Sender<AppliedImage>,
}

impl ClusterStateMachine {
    /// Opens the state machine in `dir`, starting from the persisted snapshot if there is one
    /// (blocking I/O).
    pub fn open(dir: &Path) -> Result<ClusterStateMachine, SnapshotError> {
        std::fs::create_dir_all(dir).map_err(|source| SnapshotError::Io {
            action: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(SNAPSHOT_FILE);
        let current = match std::fs::read(&path) {
            Ok(bytes) => Some(
                decode_file(&bytes).map_err(|reason| SnapshotError::Corrupt {
                    path: path.clone(),
                    reason,
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(SnapshotError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        let (image, last_applied, membership) = match &current {
            Some(snap) => {
                let image = decode_data(&snap.data).map_err(|reason| SnapshotError::Corrupt {
                    path: path.clone(),
                    reason,
                })?;
                (
                    image,
                    snap.meta.last_log_id,
                    snap.meta.last_membership.clone(),
                )
            }
            None => (MetadataImage::default(), None, StoredMembership::default()),
        };
        let image = Arc::new(image);
        let (published, _) = watch::channel(AppliedImage {
            image: image.clone(),
            applied_index: last_applied.map_or(0, |l| l.index),
        });
        Ok(ClusterStateMachine {
            image,
            last_applied,
            membership,
            slot: Arc::new(SnapshotSlot {
                path,
                current: Mutex::new(current),
            }),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
            published,
        })
    }

    /// A receiver of every newly applied image.
    pub fn subscribe(&self) -> watch::Receiver<AppliedImage> {
        self.published.subscribe()
    }

    fn publish(&self) {
        self.published.send_replace(AppliedImage {
            image: self.image.clone(),
            applied_index: self.last_applied.map_or(0, |l| l.index),
        });
    }
}

/// Builds a snapshot from a frozen view of the state machine.
pub struct SnapshotBuilder {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    slot: Arc<SnapshotSlot>,
    seq: u64,
}

fn snapshot_error(meta: Option<&SnapshotMeta>, e: &SnapshotError, write: bool) -> StorageError {
    let sig = meta.map(|m| m.signature());
    let source = AnyError::new(e);
    if write {
        StorageIOError::write_snapshot(sig, source).into()
    } else {
        StorageIOError::read_snapshot(sig, source).into()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<openraft::Snapshot<TypeConfig>, StorageError> {
        let data = encode_data(&self.image).map_err(|e| snapshot_error(None, &e, true))?;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, self.seq),
            None => format!("none-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data: Arc::new(data),
        };
        persist(self.slot.clone(), snap.clone())
            .await
            .map_err(|e| snapshot_error(Some(&meta), &e, true))?;
        tracing::info!(
            last_index = ?meta.last_log_id.map(|l| l.index),
            bytes = snap.data.len(),
            "built a Raft snapshot"
        );
        Ok(openraft::Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(snap.data.to_vec())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for ClusterStateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => Ok(()),
                // Copy-on-write: clones the image once per batch, since the published
                // snapshot shares it.
                EntryPayload::Normal(command) => Arc::make_mut(&mut self.image).apply(&command),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    Ok(())
                }
            };
            if let Err(e) = &result {
                tracing::debug!(index = entry.log_id.index, error = %e, "a metadata command did not apply");
            }
            responses.push(CommandResponse {
                index: entry.log_id.index,
                result,
            });
        }
        if !responses.is_empty() {
            self.publish();
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            slot: self.slot.clone(),
            seq: self.snapshot_seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let image = decode_data(&data)
            .map_err(|e| snapshot_error(Some(meta), &SnapshotError::BadData(e), false))?;
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data: Arc::new(data),
        };
        persist(self.slot.clone(), snap)
            .await
            .map_err(|e| snapshot_error(Some(meta), &e, true))?;
        self.image = Arc::new(image);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.publish();
        tracing::info!(
            last_index = ?meta.last_log_id.map(|l| l.index),
            "installed a Raft snapshot from the leader"
        );
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::Snapshot<TypeConfig>>, StorageError> {
        let current = self.slot.lock().clone();
        Ok(current.map(|snap| openraft::Snapshot {
            meta: snap.meta,
            snapshot: Box::new(Cursor::new(snap.data.to_vec())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{ApplyError, MetadataCommand};
    use openraft::{CommittedLeaderId, Membership};
    use std::collections::{BTreeMap, BTreeSet};

    fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload,
        }
    }

    fn create(name: &str) -> EntryPayload<TypeConfig> {
        EntryPayload::Normal(MetadataCommand::CreateTopic {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4(),
            partitions: vec![],
            configs: BTreeMap::new(),
        })
    }

    #[tokio::test]
    async fn failed_commands_answer_their_error_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = ClusterStateMachine::open(dir.path()).unwrap();
        let rx = sm.subscribe();
        let out = sm
            .apply([entry(1, create("a")), entry(2, create("a"))])
            .await
            .unwrap();
        assert_eq!(out[0].result, Ok(()));
        assert_eq!(out[1].result, Err(ApplyError::TopicExists("a".into())));
        assert_eq!(out[1].index, 2);
        let seen = rx.borrow().clone();
        assert_eq!(seen.applied_index, 2);
        assert_eq!(seen.image.topics.len(), 1);
    }

    #[tokio::test]
    async fn snapshot_survives_restart_with_a_working_topic_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = ClusterStateMachine::open(dir.path()).unwrap();
        let members = Membership::new(vec![BTreeSet::from([1u64, 2, 3])], None);
        sm.apply([
            entry(0, EntryPayload::Membership(members.clone())),
            entry(1, create("a")),
        ])
        .await
        .unwrap();
        let built = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        drop(sm);
        let mut sm = ClusterStateMachine::open(dir.path()).unwrap();
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied.map(|l| l.index), Some(1));
        assert_eq!(membership.membership(), &members);
        assert_eq!(
            sm.get_current_snapshot().await.unwrap().unwrap().meta,
            built.meta
        );
        let image = sm.subscribe().borrow().image.clone();
        let id = image.topics["a"].id;
        assert!(image.topic_by_id(&id).is_some(), "reindexed after loading");
    }

    #[test]
    fn a_damaged_snapshot_file_is_refused() {
        let snap = StoredSnapshot {
            meta: SnapshotMeta::default(),
            data: Arc::new(encode_data(&MetadataImage::default()).unwrap()),
        };
        let mut bytes = encode_file(&snap).unwrap();
        assert!(decode_file(&bytes).is_ok());
        bytes[10] ^= 1;
        assert!(decode_file(&bytes).is_err());
        assert!(decode_file(&bytes[..3]).is_err());
    }
}
