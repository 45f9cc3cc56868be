//! Producer ids for InitProducerId: handed out one at a time from a block this broker got
//! through the metadata command `AllocateProducerIds` (Kafka's `ProducerIdManager` with
//! `ProducerIdsRecord` blocks).
//!
//! Invariants:
//! - Every id handed out lies in a block that was persisted (fsynced in the metadata log)
//!   before the first id of it was given to a client, and the image's `next_producer_id`
//!   is past every block, so no id is ever handed out twice: not after a restart (the rest
//!   of the block a broker held when it stopped is skipped, never reused) and not by two
//!   brokers sharing the metadata.
//! - Ids only grow within a broker's run.
//!
//! Concurrency: the block sits behind a tokio mutex, held across the (rare) allocation of a
//! new block so that two callers never allocate two blocks at once.

use tokio::sync::Mutex;

use crate::cluster::{Metadata, ProposeError};
use crate::metadata::MetadataCommand;

/// Ids per block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const BLOCK_SIZE: i64 = 1000;

/// Why no producer id could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    /// The metadata store refused or failed to persist a new block.
    #[error(
        "could not allocate a new block of producer ids through the metadata log: {0}; the \
         client retries InitProducerId, check the broker's metadata directory if this persists"
    )]
    Allocate(#[from] ProposeError),
}

#[derive(Debug, Clone, Copy)]
struct Block {
    next: i64,
    end: i64,
}

/// Hands out producer ids from this broker's current block.
#[derive(Debug)]
pub struct ProducerIdManager {
    broker_id: i32,
    block: Mutex<Block>,
}

impl ProducerIdManager {
    /// A manager for broker `broker_id` with no block yet (the first id allocates one).
    pub fn new(broker_id: i32) -> ProducerIdManager {
        ProducerIdManager {
            broker_id,
            block: Mutex::new(Block { next: 0, end: 0 }),
        }
    }

    /// The next unused producer id, allocating a new block of [`BLOCK_SIZE`] ids through
    /// `metadata` when the current one is used up.
    pub async fn next_id(&self, metadata: &Metadata) -> Result<i64, ProducerIdError> {
        let mut block = self.block.lock().await;
        if block.next >= block.end {
            let image = metadata
                .propose(MetadataCommand::AllocateProducerIds {
                    broker_id: self.broker_id,
                    count: BLOCK_SIZE,
                })
                .await?;
            // Only this manager allocates for this broker id, under this lock: the latest
            // block recorded for it is the one just allocated.
            let (next, end) = image
                .producer_id_blocks
                .get(&self.broker_id)
                .copied()
                .unwrap_or((image.next_producer_id - BLOCK_SIZE, image.next_producer_id));
            *block = Block { next, end };
            tracing::info!(
                broker_id = self.broker_id,
                first = block.next,
                end,
                "allocated a block of producer ids"
            );
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn single_node(dir: &std::path::Path) -> Metadata {
        let mut cluster = crate::config::Config::default().cluster;
        cluster.data_dir = Some(dir.to_path_buf());
        Metadata::raft(crate::cluster::Manager::start(&cluster).await.unwrap())
    }

    #[tokio::test]
    async fn ids_are_unique_across_blocks_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = std::collections::HashSet::new();
        let store = single_node(dir.path()).await;
        let ids = ProducerIdManager::new(1);
        for _ in 0..(BLOCK_SIZE + 10) {
            assert!(seen.insert(ids.next_id(&store).await.unwrap()));
        }
        assert_eq!(store.image().next_producer_id, 2 * BLOCK_SIZE);
        store.shutdown().await;

        // A restarted broker skips the rest of its block.
        let store = single_node(dir.path()).await;
        let ids = ProducerIdManager::new(1);
        let first = ids.next_id(&store).await.unwrap();
        assert_eq!(first, 2 * BLOCK_SIZE);
        assert!(seen.insert(first));
        // Another broker on the same metadata gets its own block.
        let other = ProducerIdManager::new(2);
        assert_eq!(other.next_id(&store).await.unwrap(), 3 * BLOCK_SIZE);
        store.shutdown().await;
    }
}
