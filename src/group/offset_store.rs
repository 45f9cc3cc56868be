//! One group's offsets: the committed ones, and the ones written by open transactions
//! (TxnOffsetCommit), pending per producer id until the transaction's marker commits or
//! aborts them (Kafka's `pendingTransactionalOffsetCommits`).
//!
//! Each offset remembers the position of its record in `__consumer_offsets`: when a
//! transaction commits, its offset replaces the committed one only if its record is the
//! later of the two, so the result is the one a reload (last record wins) gives. A regular
//! commit written after a transactional one of the same partition, but before the marker,
//! therefore survives the transaction's commit, as in Kafka.
//!
//! No I/O; the coordinator and the loader drive it.

use std::collections::{BTreeMap, BTreeSet};

use super::state::CommittedOffset;

/// (topic, partition).
pub type Key = (String, i32);

/// An offset and the log offset of the record that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub value: CommittedOffset,
    pub record_offset: i64,
}

/// A group's committed and pending transactional offsets.
#[derive(Debug, Default, Clone)]
pub struct GroupOffsets {
    committed: BTreeMap<Key, Stored>,
    pending: BTreeMap<i64, BTreeMap<Key, Stored>>,
}

impl GroupOffsets {
    /// The committed offset of `key` (a pending transactional one is not visible).
    pub fn get(&self, key: &Key) -> Option<&CommittedOffset> {
        self.committed.get(key).map(|s| &s.value)
    }

    /// Every committed offset, in key order.
    pub fn committed(&self) -> impl Iterator<Item = (&Key, &CommittedOffset)> {
        self.committed.iter().map(|(k, s)| (k, &s.value))
    }

    /// Whether nothing is committed and nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.pending.is_empty()
    }

    /// A regular (non-transactional) commit, applied at once.
    pub fn commit(&mut self, key: Key, value: CommittedOffset, record_offset: i64) {
        self.committed.insert(
            key,
            Stored {
                value,
                record_offset,
            },
        );
    }

    /// A transactional commit of producer `producer_id`: pending until its marker.
    pub fn stage(
        &mut self,
        producer_id: i64,
        key: Key,
        value: CommittedOffset,
        record_offset: i64,
    ) {
        self.pending.entry(producer_id).or_default().insert(
            key,
            Stored {
                value,
                record_offset,
            },
        );
    }

    /// A tombstone for `key` (OffsetDelete, DeleteGroups): the committed offset and every
    /// pending one of that partition go. True when there was either.
    pub fn remove(&mut self, key: &Key) -> bool {
        let mut removed = self.committed.remove(key).is_some();
        self.pending.retain(|_, offsets| {
            removed |= offsets.remove(key).is_some();
            !offsets.is_empty()
        });
        removed
    }

    /// Every partition with a committed or a pending offset.
    pub fn keys(&self) -> BTreeSet<Key> {
        self.committed
            .keys()
            .chain(self.pending.values().flat_map(|o| o.keys()))
            .cloned()
            .collect()
    }

    /// Forgets everything (the group is deleted).
    pub fn clear(&mut self) {
        self.committed.clear();
        self.pending.clear();
    }

    /// The marker of producer `producer_id`'s transaction, at log offset `marker` (or
    /// known to lie below it): on commit the producer's pending offsets written before it
    /// become committed (each unless a later record committed that partition meanwhile), on
    /// abort they vanish. Offsets at or after `marker` belong to a later transaction and
    /// stay pending, so a marker seen twice (by the loader and by the marker writer) is
    /// harmless. True when something was completed.
    pub fn complete(&mut self, producer_id: i64, commit: bool, marker: i64) -> bool {
        let Some(pending) = self.pending.get_mut(&producer_id) else {
            return false;
        };
        let (ended, later): (BTreeMap<Key, Stored>, BTreeMap<Key, Stored>) =
            std::mem::take(pending)
                .into_iter()
                .partition(|(_, s)| s.record_offset < marker);
        if later.is_empty() {
            self.pending.remove(&producer_id);
        } else {
            *pending = later;
        }
        if ended.is_empty() {
            return false;
        }
        if commit {
            for (key, stored) in ended {
                let newer = self
                    .committed
                    .get(&key)
                    .is_none_or(|current| current.record_offset < stored.record_offset);
                if newer {
                    self.committed.insert(key, stored);
                }
            }
        }
        true
    }

    /// Whether an open transaction wrote an offset for `key` (OffsetFetch with
    /// require_stable answers UNSTABLE_OFFSET_COMMIT for it).
    pub fn is_pending(&self, key: &Key) -> bool {
        self.pending.values().any(|o| o.contains_key(key))
    }

    /// Producers with pending offsets here.
    pub fn pending_producers(&self) -> impl Iterator<Item = i64> + '_ {
        self.pending.keys().copied()
    }

    /// The pending offset of producer `producer_id` for `key`.
    pub fn pending(&self, producer_id: i64, key: &Key) -> Option<&CommittedOffset> {
        self.pending
            .get(&producer_id)
            .and_then(|o| o.get(key))
            .map(|s| &s.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        }
    }

    fn key(p: i32) -> Key {
        ("t".to_string(), p)
    }

    #[test]
    fn pending_offsets_are_invisible_until_the_commit_marker() {
        let mut g = GroupOffsets::default();
        g.commit(key(0), at(5), 10);
        g.stage(7, key(0), at(9), 11);
        g.stage(7, key(1), at(3), 11);
        assert_eq!(g.get(&key(0)).unwrap().offset, 5);
        assert!(g.get(&key(1)).is_none());
        assert!(g.is_pending(&key(0)) && g.is_pending(&key(1)));
        assert!(g.complete(7, true, 12));
        assert_eq!(g.get(&key(0)).unwrap().offset, 9);
        assert_eq!(g.get(&key(1)).unwrap().offset, 3);
        assert!(!g.is_pending(&key(0)));
        assert!(!g.complete(7, true, 12), "a second marker finds nothing");
    }

    #[test]
    fn an_abort_drops_only_that_producers_offsets() {
        let mut g = GroupOffsets::default();
        g.stage(7, key(0), at(9), 11);
        g.stage(8, key(1), at(4), 12);
        assert!(g.complete(7, false, 20));
        assert!(g.get(&key(0)).is_none());
        assert!(!g.is_pending(&key(0)));
        assert!(g.is_pending(&key(1)));
        assert_eq!(g.pending_producers().collect::<Vec<_>>(), vec![8]);
    }

    #[test]
    fn a_later_regular_commit_survives_an_earlier_transactional_one() {
        let mut g = GroupOffsets::default();
        g.stage(7, key(0), at(9), 11);
        g.commit(key(0), at(20), 12);
        g.complete(7, true, 13);
        assert_eq!(g.get(&key(0)).unwrap().offset, 20);
    }

    #[test]
    fn offsets_after_the_marker_belong_to_the_next_transaction() {
        let mut g = GroupOffsets::default();
        g.stage(7, key(0), at(9), 11);
        // The marker at 12 was seen by the loader; the next transaction wrote at 14.
        g.stage(7, key(1), at(30), 14);
        assert!(g.complete(7, true, 12));
        assert_eq!(g.get(&key(0)).unwrap().offset, 9);
        assert!(g.get(&key(1)).is_none());
        assert!(g.is_pending(&key(1)));
        // The same marker reported again by the writer changes nothing.
        assert!(!g.complete(7, false, 12));
        assert!(g.is_pending(&key(1)));
        assert!(g.complete(7, true, 15));
        assert_eq!(g.get(&key(1)).unwrap().offset, 30);
    }

    #[test]
    fn a_tombstone_removes_committed_and_pending_offsets() {
        let mut g = GroupOffsets::default();
        g.commit(key(0), at(5), 1);
        g.stage(7, key(0), at(9), 2);
        g.stage(7, key(1), at(9), 2);
        assert_eq!(g.keys().len(), 2);
        assert!(g.remove(&key(0)));
        assert!(!g.remove(&key(0)));
        assert!(g.get(&key(0)).is_none() && !g.is_pending(&key(0)));
        g.complete(7, true, 3);
        assert!(g.get(&key(0)).is_none());
        assert_eq!(g.get(&key(1)).unwrap().offset, 9);
        g.clear();
        assert!(g.is_empty());
    }
}
