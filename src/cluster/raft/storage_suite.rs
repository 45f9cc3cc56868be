//! openraft's own storage test suite, run against [`LogStore`] and [`ClusterStateMachine`]
//! in a fresh temporary directory per case.

use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};
use tempfile::TempDir;

use super::log_store::LogStore;
use super::state_machine::ClusterStateMachine;
use super::types::{StorageError, TypeConfig};

struct TempStores;

fn setup_error(e: &(impl std::error::Error + 'static)) -> StorageError {
    StorageIOError::write(AnyError::new(e)).into()
}

impl StoreBuilder<TypeConfig, LogStore, ClusterStateMachine, TempDir> for TempStores {
    async fn build(&self) -> Result<(TempDir, LogStore, ClusterStateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| setup_error(&e))?;
        // Tiny segments, so that purge and truncate cross segment boundaries.
        let log = LogStore::open(&dir.path().join("raft-log"), 3).map_err(|e| setup_error(&e))?;
        let sm =
            ClusterStateMachine::open(&dir.path().join("raft-sm")).map_err(|e| setup_error(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    if let Err(e) = Suite::test_all(TempStores) {
        panic!("openraft's storage suite failed: {e}");
    }
}
