//! The network side: a TCP listener and one task per connection.
//!
//! [`run`] is the entry point the binary and the integration tests call: it serves until
//! `shutdown` fires, then stops accepting, lets connections finish the request they are
//! on, and returns.
mod connection;
mod listener;

pub use listener::run;
