//! The `log-start-offset` file of a [`PartitionLog`]: a version line `0`, then the offset.
//!
//! What always holds: the file is replaced atomically; a malformed file is reported and
//! ignored (the first segment's base offset then applies), never fatal.

use std::path::Path;

use super::super::checkpoint;
use super::{LogError, PartitionLog};

/// File holding the persisted log start offset: a version line `0`, then the offset.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";

impl PartitionLog {
    pub(super) fn persist_log_start_offset(&self) -> Result<(), LogError> {
        checkpoint::write_atomic(
            &self.dir,
            LOG_START_OFFSET_FILE,
            format!("0\n{}\n", self.log_start_offset).as_bytes(),
        )
    }
}

/// Reads `log-start-offset`; a malformed file is reported and ignored (the first segment's
/// base offset then applies).
pub(super) fn read_log_start_offset(dir: &Path) -> Result<Option<i64>, LogError> {
    let Some(text) = checkpoint::read_optional(dir, LOG_START_OFFSET_FILE)? else {
        return Ok(None);
    };
    let mut lines = text.lines().map(str::trim);
    let parsed = match (lines.next(), lines.next()) {
        (Some("0"), Some(value)) => value.parse::<i64>().ok().filter(|v| *v >= 0),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(
            file = %dir.join(LOG_START_OFFSET_FILE).display(),
            "ignoring a malformed log start offset file; the log starts at its first segment"
        );
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::log::partition_log::test_support::open;
    use crate::log::partition_log::LogConfig;
    use crate::log::test_util::{produce, producer_batch, small_config};
    use std::fs;

    #[test]
    fn log_start_offset_is_persisted_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let batch_size = producer_batch(5, 100, 0).len() as u64;
        let mut config = small_config(batch_size * 2);
        config.retention_bytes = Some(0);
        let mut log = open(dir.path(), config.clone());
        for i in 0..5 {
            produce(&mut log, 5, 100, i, 0);
        }
        log.apply_retention(0).unwrap();
        let (lso, leo) = (log.log_start_offset(), log.log_end_offset());
        assert!(lso > 0);
        log.close().unwrap();
        let text = fs::read_to_string(dir.path().join(LOG_START_OFFSET_FILE)).unwrap();
        assert_eq!(text, format!("0\n{lso}\n"));
        let log = open(dir.path(), config);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (lso, leo));
    }

    #[test]
    fn stored_log_start_offset_past_the_end_starts_an_empty_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        produce(&mut log, 5, 10, 1, 0);
        drop(log);
        fs::write(dir.path().join(LOG_START_OFFSET_FILE), "0\n100\n").unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
        assert_eq!(produce(&mut log, 1, 10, 2, 0).base_offset, 100);
    }
}
