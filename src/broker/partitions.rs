//! The partitions this broker hosts: one [`PartitionLog`] each, plus the fetchers waiting
//! for new data on it.
//!
//! Invariants: the registry holds exactly the partitions of the current metadata image
//! (after [`PartitionRegistry::sync`]); a partition directory carries the id of the topic
//! it belongs to (`partition.metadata`), so a directory left over from a deleted topic of
//! the same name is never mistaken for the new topic's data.
//! Locks: `log` is a std mutex held only for synchronous log calls, never across `.await`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::config::topic::TopicSettings;
use crate::config::{Config, FlushPolicy};
use crate::log::{LogConfig, LogError, PartitionLog};
use crate::metadata::MetadataImage;
use crate::replication::{checkpoint, ReplicaRole, Watermark};

/// One hosted partition.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub topic_id: Uuid,
    log: Mutex<PartitionLog>,
    waiters: Mutex<Vec<Arc<Notify>>>,
    /// Leader, follower or neither; see `crate::replication`. Lock order: `replica`, then
    /// `log`.
    pub(crate) replica: Mutex<ReplicaRole>,
    /// The high watermark, and whether this broker leads the partition.
    watermark: watch::Sender<Watermark>,
}

impl Partition {
    /// Locks the log for a synchronous call.
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every fetch waiting on this partition.
    pub fn notify_appended(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|p| p.into_inner()));
        for w in waiters {
            w.notify_one();
        }
    }

    /// The replica role, locked (before `log` when both are needed).
    pub(crate) fn role(&self) -> MutexGuard<'_, ReplicaRole> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The high watermark: consumers read below it, and acks=all waits for it.
    pub fn high_watermark(&self) -> i64 {
        self.watermark.borrow().offset
    }

    /// The high watermark and leadership.
    pub fn watermark(&self) -> Watermark {
        *self.watermark.borrow()
    }

    /// Watches the high watermark and leadership.
    pub fn subscribe_watermark(&self) -> watch::Receiver<Watermark> {
        self.watermark.subscribe()
    }

    /// Publishes a new watermark when it differs from the current one; returns whether the
    /// offset went up (consumers waiting in a fetch are woken then).
    pub(crate) fn publish_watermark(&self, new: Watermark) -> bool {
        let mut advanced = false;
        self.watermark.send_if_modified(|w| {
            if *w == new {
                return false;
            }
            advanced = new.offset > w.offset;
            *w = new;
            true
        });
        if advanced {
            self.notify_appended();
        }
        advanced
    }

    /// Registers `waker` to be notified on the next append.
    pub fn wait_for_append(&self, waker: &Arc<Notify>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.retain(|w| Arc::strong_count(w) > 1);
        waiters.push(waker.clone());
    }
}

/// The directory of a partition: `<data_dir>/<topic>-<partition>`, as Kafka names it.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

const PARTITION_METADATA: &str = "partition.metadata";

fn read_topic_id(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id: "))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

fn write_topic_id(dir: &Path, id: Uuid) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::fsutil::write_atomically(
        &dir.join(PARTITION_METADATA),
        format!("version: 0\ntopic_id: {id}\n").as_bytes(),
    )
}

/// The log settings for a topic with these overrides.
pub fn log_config(config: &Config, settings: &TopicSettings) -> LogConfig {
    LogConfig {
        segment_bytes: settings.segment_bytes,
        retention_ms: settings.retention_ms,
        retention_bytes: settings.retention_bytes,
        max_message_bytes: settings.max_message_bytes,
        message_timestamp_type_log_append: settings.log_append_time,
        index_interval_bytes: 4096,
        index_max_bytes: 10 * 1024 * 1024,
        flush: match config.flush {
            FlushPolicy::Never => crate::log::FlushPolicy::Never,
            FlushPolicy::Always => crate::log::FlushPolicy::Always,
            FlushPolicy::EveryMessages(n) => crate::log::FlushPolicy::EveryMessages(n),
            FlushPolicy::Interval(d) => crate::log::FlushPolicy::IntervalMs(d.as_millis() as u64),
        },
    }
}

type Key = (String, i32);

/// Every partition hosted here.
pub struct PartitionRegistry {
    config: Arc<Config>,
    map: RwLock<HashMap<Key, Arc<Partition>>>,
    /// The high watermarks last written to the checkpoint (read from it at start).
    checkpointed: Mutex<checkpoint::Watermarks>,
}

impl PartitionRegistry {
    pub fn new(config: Arc<Config>) -> Self {
        PartitionRegistry {
            checkpointed: Mutex::new(checkpoint::read(&config.data_dir)),
            config,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The partition, if this broker hosts it.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(topic.to_string(), partition)).cloned()
    }

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    /// Brings the hosted partitions in line with `image`: opens logs of new partitions
    /// (recovering what is on disk), applies changed topic configs, and deletes the data of
    /// partitions whose topic is gone.
    pub fn sync(&self, image: &MetadataImage, node_id: i32) -> Result<(), LogError> {
        let data_dir = &self.config.data_dir;
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        // Drop partitions whose topic was deleted (or re-created with another id).
        let gone: Vec<Key> = map
            .iter()
            .filter(|((topic, idx), p)| {
                image
                    .topics
                    .get(topic)
                    .is_none_or(|t| t.id != p.topic_id || *idx as usize >= t.partitions.len())
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(p) = map.remove(&key) {
                p.notify_appended();
                let dir = partition_dir(data_dir, &p.topic, p.index);
                drop(p);
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove the data of a deleted partition");
                }
            }
        }
        for topic in image.topics.values() {
            let settings = TopicSettings::resolve(&self.config, &topic.configs);
            let log_config = log_config(&self.config, &settings);
            for (idx, p) in topic.partitions.iter().enumerate() {
                if !p.replicas.contains(&node_id) {
                    continue;
                }
                let key = (topic.name.clone(), idx as i32);
                if let Some(existing) = map.get(&key) {
                    existing.log().update_config(log_config.clone());
                    continue;
                }
                let dir = partition_dir(data_dir, &topic.name, idx as i32);
                if dir.exists() && read_topic_id(&dir) != Some(topic.id) {
                    tracing::warn!(dir = %dir.display(), "removing data left by an earlier topic of the same name");
                    std::fs::remove_dir_all(&dir).map_err(|e| LogError::io("remove", &dir, e))?;
                }
                if !dir.exists() {
                    write_topic_id(&dir, topic.id)
                        .map_err(|e| LogError::io("write partition.metadata in", &dir, e))?;
                }
                let log = PartitionLog::open(&dir, log_config.clone())?;
                // The checkpointed high watermark, within the log as recovered.
                let (lso, leo) = (log.log_start_offset(), log.log_end_offset());
                let checkpointed = self
                    .checkpointed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                    .copied();
                let start = Watermark {
                    offset: checkpointed.map_or(lso, |hw| hw.clamp(lso, leo)),
                    leader_epoch: None,
                };
                map.insert(
                    key,
                    Arc::new(Partition {
                        topic: topic.name.clone(),
                        index: idx as i32,
                        topic_id: topic.id,
                        log: Mutex::new(log),
                        waiters: Mutex::new(Vec::new()),
                        replica: Mutex::new(ReplicaRole::None),
                        watermark: watch::Sender::new(start),
                    }),
                );
            }
        }
        Ok(())
    }

    /// Writes the high-watermark checkpoint when a watermark changed since the last one.
    pub fn checkpoint_watermarks(&self) {
        let current: checkpoint::Watermarks = self
            .all()
            .iter()
            .map(|p| ((p.topic.clone(), p.index), p.high_watermark()))
            .collect();
        let mut last = self.checkpointed.lock().unwrap_or_else(|p| p.into_inner());
        if *last == current {
            return;
        }
        match checkpoint::write(&self.config.data_dir, &current) {
            Ok(()) => *last = current,
            Err(e) => tracing::warn!(error = %e, "cannot write the high-watermark checkpoint"),
        }
    }

    /// Removes directories that look like partitions of topics the image does not know
    /// (left by a crash between deleting a topic and removing its files).
    pub fn remove_strays(&self, image: &MetadataImage) {
        let Ok(entries) = std::fs::read_dir(&self.config.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(id) = read_topic_id(&dir) else {
                continue;
            };
            if image.topic_by_id(&id).is_none() {
                tracing::warn!(dir = %dir.display(), "removing the data of a deleted topic");
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove stray partition data");
                }
            }
        }
    }
}
