//! Consumer groups (Kafka's classic protocol) and their committed offsets.
//!
//! - [`state`]: one group's state machine, no I/O, testable with paused tokio time.
//! - [`coordinator`]: every group coordinated here, request entry points, timers.
//! - [`offsets`]: durable group state as records in `__consumer_offsets`.
//! - [`offset_store`]: one group's committed offsets and the pending ones of open
//!   transactions.
pub mod coordinator;
pub mod offset_store;
pub mod offsets;
pub mod state;

pub use coordinator::GroupCoordinator;
pub use offsets::OFFSETS_TOPIC;
