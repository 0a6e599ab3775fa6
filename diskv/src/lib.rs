//! diskv: the sharded KV server's state machine and storage, and its client.
//!
//! (crate docs are completed with the server and the Clerk)

pub mod access;
pub mod checkpoint;
pub mod clerk;
pub mod conn;
pub mod dedup;
pub mod disk;
pub mod error;
pub mod http;
pub mod identity;
pub mod keyfile;
pub mod line;
pub mod logclock;
pub mod op;
pub mod options;
mod reconfig;
mod recovery;
pub mod resp;
pub mod rpc;
pub mod running;
pub mod server;
pub mod service;
pub mod shard;
pub mod state;

pub use clerk::Clerk;
pub use error::StateError;
pub use op::{ClientId, KvError, Op, Reply, Request};
pub use options::ServerOptions;
pub use server::KvServer;
pub use state::{KvCommand, KvOutput, KvState};
