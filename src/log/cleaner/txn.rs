//! What the cleaner does with transactions, after Kafka's `CleanedTransactionMetadata`: it
//! walks the batches of a range in offset order with the aborted transactions of that range
//! (from the `.txnindex` files) and says, per batch, whether it belongs to an aborted
//! transaction (its records are dropped, and they never enter the key map), and, per marker,
//! whether the marker may go.
//!
//! Rules (Kafka's):
//! - A transactional data batch of a producer whose aborted transaction has started (its
//!   first offset is at or below the batch) and not ended is aborted.
//! - An ABORT marker stays while this walk saw batches of its transaction (they are being
//!   removed now, and a consumer reading an older copy of the log still needs the marker),
//!   and then its `.txnindex` entry goes to the rewritten segment; once a walk sees none,
//!   the marker may go, and its entry goes with it.
//! - A COMMIT marker stays while this walk saw batches of its transaction.
//! - A marker that may go is still kept until its delete horizon passed (the caller's job).
//!
//! Only ranges below the last stable offset are cleaned, so every transaction seen here is
//! complete.

use std::collections::{HashMap, HashSet, VecDeque};

use super::super::control::{ControlType, Marker};
use super::super::txn_index::AbortedTxn;

/// An aborted transaction that started in the walk, and the last batch of it seen.
#[derive(Debug, Clone, Copy)]
struct Aborted {
    txn: AbortedTxn,
    last_observed_batch: Option<i64>,
}

/// The transaction state of one walk over a range of batches.
#[derive(Debug, Default)]
pub struct TxnFilter {
    /// Aborted transactions not started yet, by first offset.
    upcoming: VecDeque<AbortedTxn>,
    /// Started aborted transactions, by producer id.
    aborted: HashMap<i64, Aborted>,
    /// Producers with a (not aborted) transactional batch seen since their last marker.
    committed: HashSet<i64>,
}

impl TxnFilter {
    /// A walk over a range whose aborted transactions are `aborted` (those ending in or
    /// after the range start and starting before its end).
    pub fn new(mut aborted: Vec<AbortedTxn>) -> TxnFilter {
        aborted.sort_by_key(|t| t.first_offset);
        TxnFilter {
            upcoming: aborted.into(),
            ..TxnFilter::default()
        }
    }

    fn start_up_to(&mut self, offset: i64) {
        while self
            .upcoming
            .front()
            .is_some_and(|t| t.first_offset <= offset)
        {
            let txn = self.upcoming.pop_front().expect("checked above");
            self.aborted.insert(
                txn.producer_id,
                Aborted {
                    txn,
                    last_observed_batch: None,
                },
            );
        }
    }

    /// A data batch ending at `last_offset`: true when it belongs to an aborted transaction
    /// (Kafka's `onBatchRead`).
    pub fn on_batch(&mut self, producer_id: i64, transactional: bool, last_offset: i64) -> bool {
        self.start_up_to(last_offset);
        if !transactional {
            return false;
        }
        match self.aborted.get_mut(&producer_id) {
            Some(a) => {
                a.last_observed_batch = Some(last_offset);
                true
            }
            None => {
                self.committed.insert(producer_id);
                false
            }
        }
    }

    /// A marker at `offset`: whether it may be removed, and the `.txnindex` entry the
    /// rewritten segment keeps for it (Kafka's `onControlBatchRead`).
    pub fn on_marker(
        &mut self,
        producer_id: i64,
        marker: &Marker,
        offset: i64,
    ) -> (bool, Option<AbortedTxn>) {
        self.start_up_to(offset);
        match marker.control {
            ControlType::Abort => match self.aborted.remove(&producer_id) {
                Some(a) if a.last_observed_batch.is_some() => (false, Some(a.txn)),
                _ => (true, None),
            },
            ControlType::Commit => (!self.committed.remove(&producer_id), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    fn marker(control: ControlType) -> Marker {
        Marker {
            control,
            coordinator_epoch: 0,
        }
    }

    #[test]
    fn aborted_batches_go_and_their_marker_stays_once_then_goes() {
        // pid 1 aborts 0..=2 (marker 5), pid 2 commits 3..=4 (marker 6).
        let mut first = TxnFilter::new(vec![txn(1, 0, 5)]);
        assert!(first.on_batch(1, true, 2));
        assert!(!first.on_batch(2, true, 4));
        assert!(
            !first.on_batch(9, false, 4),
            "plain batches are never aborted"
        );
        assert_eq!(
            first.on_marker(1, &marker(ControlType::Abort), 5),
            (false, Some(txn(1, 0, 5))),
            "its batches were just seen"
        );
        assert_eq!(
            first.on_marker(2, &marker(ControlType::Commit), 6),
            (false, None)
        );
        // The next walk sees neither transaction's batches (1's were removed, 2's
        // superseded): both markers may go.
        let mut second = TxnFilter::new(vec![txn(1, 0, 5)]);
        assert_eq!(
            second.on_marker(1, &marker(ControlType::Abort), 5),
            (true, None)
        );
        assert_eq!(
            second.on_marker(2, &marker(ControlType::Commit), 6),
            (true, None)
        );
    }

    #[test]
    fn a_later_transaction_of_the_same_producer_is_not_aborted() {
        let mut f = TxnFilter::new(vec![txn(1, 0, 1)]);
        assert!(f.on_batch(1, true, 0));
        f.on_marker(1, &marker(ControlType::Abort), 1);
        assert!(!f.on_batch(1, true, 2));
    }
}
