//! diskv: the sharded KV server's state machine and storage, and its client.
//!
//! (crate docs are completed with the server and the Clerk)

pub mod checkpoint;
pub mod dedup;
pub mod error;
pub mod keyfile;
pub mod op;
pub mod shard;
pub mod state;

#[cfg(test)]
mod state_tests;

pub use error::StateError;
pub use op::{ClientId, KvError, Op, Reply, Request};
pub use state::{KvCommand, KvOutput, KvState};
