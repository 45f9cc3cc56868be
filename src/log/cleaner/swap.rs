//! Crash-safe replacement of a group of segments by the cleaner's rewrite of them.
//!
//! The rewrite is written to `<partition>/cleaning/<base>.{log,index,timeindex,txnindex}` and
//! fsynced; then the marker `cleaning/swap` (the base offsets it replaces) is written
//! atomically. That marker is the commit point:
//! - before it exists, a crash leaves the old segments untouched and the next open deletes
//!   `cleaning/`;
//! - once it exists, [`finish`] (run by the swap, and again by the next open if a crash
//!   cut the swap short) deletes the replaced segments other than `<base>`, renames the new
//!   files over `<base>`'s (each rename is atomic), removes the marker and `cleaning/`, and
//!   fsyncs the directory. Every step can be repeated, so a crash at any point ends with
//!   either the old segments or the new one, never a mix.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::super::checkpoint;
use super::super::error::LogError;
use super::super::segment::{file_name, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use super::super::txn_index::TXN_INDEX_SUFFIX;

/// Directory of the staged rewrite inside a partition directory.
pub const STAGING_DIR: &str = "cleaning";
/// The commit marker inside [`STAGING_DIR`].
pub const MARKER: &str = "swap";

/// Index files first, the `.log` last.
const SUFFIXES: [&str; 4] = [
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
    LOG_SUFFIX,
];

fn staging(dir: &Path) -> PathBuf {
    dir.join(STAGING_DIR)
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("delete", path, e)),
    }
}

/// An empty staging directory for a new rewrite (leftovers of an uncommitted one removed).
pub fn prepare(dir: &Path) -> Result<PathBuf, LogError> {
    discard(dir)?;
    let s = staging(dir);
    fs::create_dir_all(&s).map_err(|e| LogError::io("create directory", &s, e))?;
    Ok(s)
}

/// Removes the staging directory and whatever is in it (an uncommitted or abandoned
/// rewrite).
pub fn discard(dir: &Path) -> Result<(), LogError> {
    let s = staging(dir);
    match fs::remove_dir_all(&s) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("delete", &s, e)),
    }
}

/// Makes the staged rewrite of the segments `replaces` (base, size) durable and commits it:
/// fsyncs the staged files and the staging directory, then writes the marker.
pub fn commit(dir: &Path, base: i64, replaces: &[(i64, u64)]) -> Result<(), LogError> {
    let s = staging(dir);
    for suffix in SUFFIXES {
        let path = s.join(file_name(base, suffix));
        fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| LogError::io("fsync", &path, e))?;
    }
    checkpoint::sync_dir(&s)?;
    let mut text = format!("0\n{base}\n");
    for (b, _) in replaces {
        text.push_str(&format!("{b}\n"));
    }
    checkpoint::write_atomic(&s, MARKER, text.as_bytes())
}

/// The committed swap, if any: the new segment's base and the bases it replaces.
fn read_marker(dir: &Path) -> Result<Option<(i64, Vec<i64>)>, LogError> {
    let s = staging(dir);
    let Some(text) = checkpoint::read_optional(&s, MARKER)? else {
        return Ok(None);
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let bad = || LogError::Corrupt {
        path: s.join(MARKER),
        detail: format!("the cleaner's swap marker is malformed: {text:?}"),
    };
    if lines.next() != Some("0") {
        return Err(bad());
    }
    let base = lines
        .next()
        .and_then(|l| l.parse::<i64>().ok())
        .ok_or_else(bad)?;
    let replaces = lines
        .map(|l| l.parse::<i64>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((base, replaces)))
}

/// Carries out the committed swap in `dir` (see the module docs); a no-op without one.
/// Returns the new segment's base offset when there was one.
pub fn finish(dir: &Path) -> Result<Option<i64>, LogError> {
    let Some((base, replaces)) = read_marker(dir)? else {
        return Ok(None);
    };
    let s = staging(dir);
    for old in replaces.iter().filter(|b| **b != base) {
        for suffix in SUFFIXES {
            remove_if_present(&dir.join(file_name(*old, suffix)))?;
        }
    }
    for suffix in SUFFIXES {
        let from = s.join(file_name(base, suffix));
        let to = dir.join(file_name(base, suffix));
        match fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io("rename the cleaned segment file", &from, e)),
        }
    }
    checkpoint::sync_dir(dir)?;
    discard(dir)?;
    checkpoint::sync_dir(dir)?;
    Ok(Some(base))
}

/// At open: finishes a committed swap, or deletes an uncommitted rewrite.
pub fn recover(dir: &Path) -> Result<(), LogError> {
    if !staging(dir).exists() {
        return Ok(());
    }
    match finish(dir)? {
        Some(base) => tracing::warn!(
            dir = %dir.display(),
            base_offset = base,
            "finished a cleaner swap that a crash interrupted"
        ),
        None => {
            tracing::info!(dir = %dir.display(), "deleting an unfinished cleaner rewrite");
            discard(dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, base: i64, content: &str) {
        for suffix in SUFFIXES {
            fs::write(dir.join(file_name(base, suffix)), content).unwrap();
        }
    }

    #[test]
    fn an_uncommitted_rewrite_is_discarded_and_a_committed_one_finished_at_any_step() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(d, 0, "old0");
        touch(d, 10, "old10");
        let s = prepare(d).unwrap();
        touch(&s, 0, "new");
        recover(d).unwrap();
        assert!(!s.exists());
        assert_eq!(
            fs::read_to_string(d.join(file_name(10, LOG_SUFFIX))).unwrap(),
            "old10"
        );

        // Committed, then the swap stopped after deleting segment 10 and renaming the index.
        let s = prepare(d).unwrap();
        touch(&s, 0, "new");
        commit(d, 0, &[(0, 4), (10, 5)]).unwrap();
        for suffix in SUFFIXES {
            fs::remove_file(d.join(file_name(10, suffix))).unwrap();
        }
        fs::rename(
            s.join(file_name(0, INDEX_SUFFIX)),
            d.join(file_name(0, INDEX_SUFFIX)),
        )
        .unwrap();
        recover(d).unwrap();
        assert!(!s.exists());
        for suffix in SUFFIXES {
            assert_eq!(
                fs::read_to_string(d.join(file_name(0, suffix))).unwrap(),
                "new"
            );
            assert!(!d.join(file_name(10, suffix)).exists());
        }
    }
}
