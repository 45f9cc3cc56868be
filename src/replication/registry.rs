//! The partitions this broker hosts, by (topic, partition): opening and recovering their
//! logs, applying topic config changes, deleting the data of deleted topics, and the
//! high-watermark checkpoint.
//!
//! Invariants: after [`PartitionRegistry::sync`] the registry holds exactly the partitions
//! of that image with a replica on this broker; a partition directory carries the id of the
//! topic it belongs to (`partition.metadata`), so a directory left over from a deleted topic
//! of the same name is never mistaken for the new topic's data. `sync` does blocking file
//! work: call it off the async workers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use uuid::Uuid;

use super::checkpoint;
use super::partition::Partition;
use crate::config::topic::TopicSettings;
use crate::config::{Config, FlushPolicy};
use crate::log::{LogConfig, LogError, PartitionLog};
use crate::metadata::MetadataImage;

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
        segment_ms: Some(settings.segment_ms),
        delete: settings.delete,
        compaction: settings.compact.then_some(crate::log::CompactionConfig {
            min_cleanable_ratio: settings.min_cleanable_dirty_ratio,
            min_lag_ms: settings.min_compaction_lag_ms,
            max_lag_ms: settings.max_compaction_lag_ms,
            delete_retention_ms: settings.delete_retention_ms,
        }),
        compression: crate::log::Codec::of_topic_config(&settings.compression_type),
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
                    existing.update_config(log_config.clone());
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
                let start = checkpointed.map_or(lso, |hw| hw.clamp(lso, leo));
                map.insert(
                    key,
                    Arc::new(Partition::new(
                        topic.name.clone(),
                        idx as i32,
                        topic.id,
                        log,
                        start,
                    )),
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
