//! Transactions: the transaction coordinator after Apache Kafka's `TransactionCoordinator`
//! (its state in the compacted, replicated topic `__transaction_state`), and the delivery of
//! transaction markers to the partition leaders.
//!
//! Map (one job per file):
//! - [`state`]: one transactional id's state machine (no I/O).
//! - [`log`]: the records of `__transaction_state`: write one change, load a partition.
//! - [`coordinator`]: the ids of the partitions led here, the requests on them, the
//!   timeout / expiration tick, load and unload on leadership changes.
//! - [`markers`]: writes COMMIT/ABORT markers to every partition of a transaction, here or
//!   through WriteTxnMarkers to other brokers, retried until each is written.
//! - [`peers`]: pooled connections to other brokers for those requests.
//! - [`verify`]: KIP-890 verification that a transactional produce's partitions are in the
//!   producer's transaction, asked of the transaction coordinator.

pub mod coordinator;
pub mod log;
pub mod markers;
pub mod peers;
pub mod state;
pub mod verify;

pub use coordinator::{ListFilter, TransactionCoordinator, TxnDescription};

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
