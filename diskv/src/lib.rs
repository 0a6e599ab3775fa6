//! diskv: the sharded KV server's state machine and storage, and its client.
//!
//! (crate docs are completed with the server and the Clerk)

pub mod client;
pub mod error;
pub mod front;
pub mod op;
pub mod replica;
pub mod rpc;
pub mod state;

// The modules' paths before they were grouped by layer.
pub use client::{clerk, line};
pub use front::{access, http, resp, running};
use replica::{reconfig, recovery};
pub use replica::{disk, identity, options, server, service};
pub use rpc::conn;
pub use state::{checkpoint, dedup, keyfile, logclock, shard};

pub use clerk::Clerk;
pub use error::StateError;
pub use op::{ClientId, KvError, Op, Reply, Request};
pub use options::ServerOptions;
pub use server::KvServer;
pub use state::{KvCommand, KvOutput, KvState};
