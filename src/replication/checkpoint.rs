//! The high-watermark checkpoint (Kafka's `replication-offset-checkpoint`): one file in the
//! data directory listing each hosted partition's high watermark, written every few seconds
//! when something changed and at shutdown. After a restart a leader starts from it (capped
//! at its log end) instead of from the log start, so consumers do not see the committed
//! records vanish, or ListOffsets "latest" go back, until the followers have fetched again.
//! It is a hint: a missing or unreadable file only means starting from the log start.

use std::collections::HashMap;
use std::path::Path;

/// The file name in the data directory.
pub const FILE: &str = "replication-offset-checkpoint";
const VERSION: &str = "0";

/// (topic, partition) → high watermark.
pub type Watermarks = HashMap<(String, i32), i64>;

/// Reads the checkpoint; empty when missing or malformed (logged).
pub fn read(data_dir: &Path) -> Watermarks {
    let path = data_dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Watermarks::new();
    };
    match parse(&text) {
        Some(w) => w,
        None => {
            tracing::warn!(file = %path.display(), "ignoring a malformed high-watermark checkpoint");
            Watermarks::new()
        }
    }
}

fn parse(text: &str) -> Option<Watermarks> {
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    let mut out = Watermarks::with_capacity(count.min(1 << 16));
    for line in lines {
        // Topic names cannot contain spaces, so the last two fields are unambiguous.
        let mut fields = line.rsplitn(3, ' ');
        let hw: i64 = fields.next()?.parse().ok()?;
        let partition: i32 = fields.next()?.parse().ok()?;
        let topic = fields.next()?;
        out.insert((topic.to_string(), partition), hw);
    }
    (out.len() == count).then_some(out)
}

/// Writes the checkpoint atomically (temp file, fsync, rename).
pub fn write(data_dir: &Path, watermarks: &Watermarks) -> std::io::Result<()> {
    let mut entries: Vec<_> = watermarks.iter().collect();
    entries.sort();
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for ((topic, partition), hw) in entries {
        text.push_str(&format!("{topic} {partition} {hw}\n"));
    }
    crate::fsutil::write_atomically(&data_dir.join(FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty());
        let w = Watermarks::from([(("a.b-c".to_string(), 0), 10), (("t".to_string(), 7), 0)]);
        write(dir.path(), &w).unwrap();
        assert_eq!(read(dir.path()), w);
        std::fs::write(dir.path().join(FILE), "0\n3\nt 0 1\n").unwrap();
        assert!(read(dir.path()).is_empty(), "count mismatch");
        std::fs::write(dir.path().join(FILE), "9\n0\n").unwrap();
        assert!(read(dir.path()).is_empty(), "unknown version");
    }
}
