//! Small control files of a partition directory (`leader-epoch-checkpoint`,
//! `log-start-offset`, the clean-shutdown marker), written atomically.
//!
//! Invariant: a control file is either its old content or its new content, never a mix:
//! the new content goes to `<name>.tmp`, which is fsynced, renamed over `<name>`, and then
//! the directory is fsynced so the rename itself survives a crash (the neon safekeeper /
//! Kafka `Utils.atomicMoveWithFallback` pattern). Stray `.tmp` files are ignored by readers
//! and deleted by recovery.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::error::LogError;

/// Suffix of the temporary file used while writing a control file.
pub const TMP_SUFFIX: &str = ".tmp";

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

/// Replaces `dir/name` with `contents` atomically and durably.
pub fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<(), LogError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| LogError::io("write control file", &path, e))?;
    sync_dir(dir)
}

/// Reads `dir/name`, or `None` when it does not exist.
pub fn read_optional(dir: &Path, name: &str) -> Result<Option<String>, LogError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io("read control file", &path, e)),
    }
}

/// Removes `dir/name` if present; returns whether it existed.
pub fn remove_optional(dir: &Path, name: &str) -> Result<bool, LogError> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(LogError::io("remove", &path, e)),
    }
}

/// Writes a one-offset control file (a version line `0`, then the offset), atomically.
pub fn write_offset(dir: &Path, name: &str, offset: i64) -> Result<(), LogError> {
    write_atomic(dir, name, format!("0\n{offset}\n").as_bytes())
}

/// The offset of a one-offset control file's text, `None` when it is malformed or negative.
pub fn parse_offset(text: &str) -> Option<i64> {
    let mut lines = text.lines().map(str::trim);
    match (lines.next(), lines.next()) {
        (Some("0"), Some(value)) => value.parse::<i64>().ok().filter(|v| *v >= 0),
        _ => None,
    }
}

/// Parses Kafka's checkpoint text format: a version line, a count line, then `count` lines
/// of whitespace-separated fields. Returns the data lines split into fields.
pub fn parse_checkpoint(
    text: &str,
    expected_version: u32,
    fields_per_line: usize,
) -> Result<Vec<Vec<&str>>, String> {
    let mut lines = text.lines();
    let version = lines.next().ok_or("the file is empty")?.trim();
    if version.parse::<u32>().ok() != Some(expected_version) {
        return Err(format!(
            "its version line is {version:?}, expected {expected_version}"
        ));
    }
    let count_line = lines.next().ok_or("the count line is missing")?.trim();
    let count: usize = count_line
        .parse()
        .map_err(|_| format!("its count line {count_line:?} is not a number"))?;
    let mut out = Vec::with_capacity(count.min(1024));
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != fields_per_line {
            return Err(format!(
                "line {line:?} has {} fields, expected {fields_per_line}",
                fields.len()
            ));
        }
        out.push(fields);
    }
    if out.len() != count {
        return Err(format!(
            "it announces {count} entries but holds {}",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "f", b"one").unwrap();
        write_atomic(dir.path(), "f", b"two").unwrap();
        assert_eq!(
            read_optional(dir.path(), "f").unwrap().as_deref(),
            Some("two")
        );
        assert!(!dir.path().join("f.tmp").exists());
        assert_eq!(read_optional(dir.path(), "missing").unwrap(), None);
    }

    #[test]
    fn checkpoint_format_is_checked() {
        assert_eq!(
            parse_checkpoint("0\n2\n1 0\n3 100\n", 0, 2).unwrap(),
            vec![vec!["1", "0"], vec!["3", "100"]]
        );
        assert!(parse_checkpoint("", 0, 2).is_err());
        assert!(parse_checkpoint("1\n0\n", 0, 2).is_err());
        assert!(parse_checkpoint("0\n2\n1 0\n", 0, 2).is_err());
        assert!(parse_checkpoint("0\n1\n1 0 7\n", 0, 2).is_err());
    }
}
