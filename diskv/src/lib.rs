//! diskv: the sharded key-value store's groups — the replicated state machine
//! and its files, the replica around it, the client, and the front doors.
//!
//! The folders are the layers, each importing only from those above it in this
//! list:
//!
//! - [`op`], [`batch`], [`error`]: the vocabulary every layer speaks — the
//!   operations, batches of them, and their replies, the errors.
//! - [`state`]: the replicated state machine of one group ([`KvState`]) and its
//!   storage: shards, the duplicate table, log time, key files and checkpoints.
//! - [`rpc`]: the KV RPC between Clerks (and other groups) and a group's
//!   replicas, and the connections to it.
//! - [`replica`]: one replica process ([`KvServer`]): its directory and identity,
//!   the RPC service, recovery from a lost disk, the leader's reconfiguration.
//! - [`client`]: the [`Clerk`] and the line protocol of `diskv client`. A Clerk
//!   may call a replica of its own process directly ([`replica::server::Local`]).
//! - [`front`]: the front doors (HTTP API, Redis protocol) over a pool of Clerks,
//!   and their tokens.
//! - [`backup`]: backing a cluster up shard by shard, and loading a backup
//!   into an empty cluster through Clerks.

pub mod backup;
pub mod batch;
pub mod client;
pub mod error;
pub mod front;
pub mod op;
pub mod replica;
pub mod rpc;
pub mod state;

// The paths other crates (the binary, the simulator, the fuzz targets, the
// tests) name these modules by.
pub use client::line;
pub use front::{access, http, resp};
pub use replica::{disk, identity, service};
pub use state::{checkpoint, dedup, keyfile, logclock, shard};

pub use batch::Batch;
pub use client::clerk::Clerk;
pub use error::{BackupError, StateError};
pub use op::{ClientId, KvError, Op, Reply, Request};
pub use replica::options::ServerOptions;
pub use replica::server::KvServer;
pub use state::{KvCommand, KvOutput, KvState};
