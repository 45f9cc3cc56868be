//! The cleaner's key -> latest offset map over a dirty range, with bounded memory (Kafka's
//! `SkimpyOffsetMap`, sized by `log.cleaner.dedupe.buffer.size`).
//!
//! Decision: the map keeps whole keys, not 16-byte digests as Kafka does, so two keys never
//! collide; each entry is charged its key length plus [`ENTRY_OVERHEAD`] bytes against the
//! budget. Invariant: the charged bytes never pass the budget by more than one batch's keys
//! (the caller stops at the first batch boundary after [`OffsetMap::is_full`]).

use std::collections::HashMap;

/// Bytes charged per entry besides the key: the offset, the hash table slot and the key's
/// allocation header.
pub const ENTRY_OVERHEAD: usize = 48;

/// Key -> the latest offset seen for it.
#[derive(Debug)]
pub struct OffsetMap {
    map: HashMap<Vec<u8>, i64>,
    budget: usize,
    charged: usize,
    /// The largest offset put so far, or -1.
    latest: i64,
}

impl OffsetMap {
    /// An empty map that may use about `budget` bytes.
    pub fn new(budget: usize) -> OffsetMap {
        OffsetMap {
            map: HashMap::new(),
            budget,
            charged: 0,
            latest: -1,
        }
    }

    /// Records that `key` is at `offset` (offsets are put in increasing order).
    pub fn put(&mut self, key: &[u8], offset: i64) {
        self.latest = self.latest.max(offset);
        if let Some(o) = self.map.get_mut(key) {
            *o = (*o).max(offset);
            return;
        }
        self.charged += key.len() + ENTRY_OVERHEAD;
        self.map.insert(key.to_vec(), offset);
    }

    /// The latest offset of `key`, if it was put.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).copied()
    }

    /// True once the budget is used up: the caller stops at the next batch boundary.
    pub fn is_full(&self) -> bool {
        self.charged >= self.budget
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The largest offset put, or -1.
    pub fn latest_offset(&self) -> i64 {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_per_key_and_the_budget() {
        let mut m = OffsetMap::new(3 * (1 + ENTRY_OVERHEAD));
        m.put(b"a", 1);
        m.put(b"b", 2);
        m.put(b"a", 5);
        assert_eq!(
            (m.get(b"a"), m.get(b"b"), m.get(b"c")),
            (Some(5), Some(2), None)
        );
        assert!(!m.is_full());
        m.put(b"c", 6);
        assert!(m.is_full());
        assert_eq!((m.len(), m.latest_offset()), (3, 6));
    }
}
