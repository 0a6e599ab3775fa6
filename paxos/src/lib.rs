//! Durable multi-Paxos.
//!
//! (crate docs are written in full once the core lands)

pub mod core;
pub mod message;
pub mod record;
pub mod sim;
pub mod storage;
pub mod transport;
pub mod types;

pub use message::{Envelope, Message, PromisedSlot};
pub use record::Record;
pub use storage::{Storage, StorageError};
pub use transport::Transport;
pub use types::{Ballot, Command, Entry, NodeId, Slot};
