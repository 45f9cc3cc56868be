//! The metadata service the broker talks to: read the current image, watch it change, and
//! propose commands. Behind it sits the single-node durable store today; the Raft cluster
//! plugs in here, so handlers never change when the backend does.
//!
//! Invariant: `propose` returns only after the command is durable and applied locally, so
//! the caller's next `image()` shows its change.

use std::sync::Arc;

use super::image::MetadataImage;
use super::store::{MetadataError, MetadataStore};
use super::MetadataCommand;

/// Where metadata commands are made durable.
enum Backend {
    /// This node's own metadata log.
    Local(MetadataStore),
}

/// The broker's view of the cluster metadata.
pub struct Metadata {
    backend: Backend,
}

impl Metadata {
    /// Metadata kept in this node's own log (`<data_dir>/__metadata`).
    pub fn local(store: MetadataStore) -> Metadata {
        Metadata {
            backend: Backend::Local(store),
        }
    }

    /// The current image. Cheap: a shared pointer.
    pub fn image(&self) -> Arc<MetadataImage> {
        match &self.backend {
            Backend::Local(store) => store.image(),
        }
    }

    /// Changes whenever the image does (the value is the last applied index).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        match &self.backend {
            Backend::Local(store) => store.subscribe(),
        }
    }

    /// Makes `command` durable and applies it; the image right after it.
    pub async fn propose(
        &self,
        command: MetadataCommand,
    ) -> Result<Arc<MetadataImage>, MetadataError> {
        match &self.backend {
            // A local fsync is short; it runs on the calling task.
            Backend::Local(store) => store.propose(command),
        }
    }

    /// The controller's node id, when a separate controller exists (the Raft leader); on a
    /// single node the broker is its own controller.
    pub fn controller_id(&self) -> Option<i32> {
        match &self.backend {
            Backend::Local(_) => None,
        }
    }
}
