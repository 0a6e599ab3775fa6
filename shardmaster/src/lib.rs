//! The shardmaster: the service that decides which replica group owns which shard.
//!
//! # The idea
//!
//! The key space is cut into a fixed number of shards ([`shard_of`] maps a key to its
//! shard). A [`Config`] says which replica group (a [`Gid`]) owns each shard and where
//! each group's replicas listen. The shardmaster keeps the numbered history of configs:
//! config 0 has no groups, and every Join, Leave or Move that changes something makes
//! the next one. Old configs stay queryable, because servers walk the history one
//! config at a time to hand shards over in order.
//!
//! The history is a deterministic state machine, [`ConfigStore`]: replicas apply the
//! same [`Op`]s, decided by Paxos, in the same order and so hold the same configs.
//! Join and Leave [rebalance](rebalance::rebalance): every group ends within one shard of every other,
//! moving the fewest shards (each moved shard is data copied between groups). Move
//! pins one shard to one group, for operators and tests.
//!
//! # The service
//!
//! A shardmaster is a group of replicas (usually three), each a [`ShardmasterServer`]
//! (the `diskv shardmaster` daemon) holding a Paxos replica, a [`ConfigStore`] and an
//! RPC server on one port.
//!
//! - **Replication.** Every operation — Join, Leave, Move *and Query* — is proposed to
//!   the Paxos log as an [`OpRequest`] `{ client, seq, op }` and answered by the
//!   replica that received it once its log instance is applied there. So any replica
//!   answers any request, and a Query reflects every operation that completed before
//!   it was sent: a replica that was cut off answers only once it has caught up.
//! - **At most once.** Each replica keeps a duplicate table, client id → (seq,
//!   result) of the client's latest write: a retried Join, Leave or Move is answered
//!   with its first result and applied once (a retried Leave does not come back as
//!   "unknown group"). See [`machine`].
//! - **Durability.** Everything lives under the replica's directory: the Paxos log
//!   (`log/`), the cluster's shape (`cluster`: the shard count, fixed at first start)
//!   and a checksummed checkpoint (`state`: every config, the duplicate table, the log
//!   instance it covers), replaced atomically when the log is idle and every few
//!   hundred instances, after which the log forgets what it covers. An operation is
//!   acknowledged once its log instance is durable on a majority, so `kill -9` at any
//!   instant loses nothing acknowledged; a restart loads the checkpoint and replays
//!   the log after it. See [`persist`].
//! - **Clients.** A [`Clerk`] knows every replica's address, sends to the one that
//!   answered last, and on no answer (dead replica, lost request, no majority) tries
//!   the next, with a per-attempt deadline and capped, jittered exponential back-off,
//!   forever (or until an optional deadline). A refusal retrying cannot change is
//!   returned at once as a [`ShardmasterError`]. See [`clerk`].
//! - **Lost disks.** A replica whose directory is lost (empty under `--restart`, or
//!   empty while its peers show the group already ran) or damaged (moved aside to
//!   `DIR/quarantine-<time>/`) never starts empty: it rejoins as a new Paxos acceptor
//!   incarnation, installs a snapshot from a peer and catches up; if a majority of
//!   the replicas lost their disks it halts with an error. See `recovery`.
//!
//! # Map
//!
//! - [`config`]: `Config`, gids, the key → shard hash and the admin JSON form.
//! - [`op`]: the operations, their replies and the checks that need no state.
//! - [`state`]: `ConfigStore`, the state machine, and the semantics of each op.
//! - [`rebalance`]: the balanced, minimal-movement assignment of shards to groups.
//! - [`error`]: `ShardmasterError`, the crate's one error type.
//! - [`dedup`]: the duplicate table's types (client → latest write and result).
//! - [`machine`]: the replicated state machine: store, duplicate table, checkpoints.
//! - [`persist`]: the replica's directory and its files: the lock, the cluster
//!   record, the checkpoint.
//! - [`rpc`]: the request type and the RPC; [`server`] runs a replica and serves it.
//! - [`clerk`]: the client.
//!
//! # Example
//!
//! ```
//! use shardmaster::{ConfigNum, ConfigStore, Op, OpResult};
//!
//! let mut store = ConfigStore::new(4).unwrap();
//! let join = Op::Join { gid: 1, servers: vec!["127.0.0.1:7001".into()] };
//! assert_eq!(store.apply(&join), Ok(OpResult::Changed { num: 1 }));
//! assert_eq!(store.apply(&join), Ok(OpResult::Unchanged { num: 1 }));
//! assert_eq!(store.latest().shards, vec![1, 1, 1, 1]);
//! assert_eq!(
//!     store.latest().to_json(),
//!     r#"{"num":1,"shards":[1,1,1,1],"groups":{"1":["127.0.0.1:7001"]}}"#
//! );
//! assert!(store.apply(&Op::Leave { gid: 9 }).is_err());
//! assert_eq!(store.query(ConfigNum::Num(0)).shards, vec![0, 0, 0, 0]);
//! ```

pub mod clerk;
pub mod config;
pub mod dedup;
pub mod error;
pub mod machine;
pub mod op;
pub mod persist;
pub mod rebalance;
pub mod recovery;
pub mod rpc;
pub mod server;
mod service;
pub mod state;
pub mod status;

#[cfg(test)]
mod tests;

pub use clerk::{Clerk, ClerkOptions};
pub use config::{shard_of, Config, Gid, DEFAULT_SHARDS, MAX_SHARDS, NO_GROUP};
pub use error::ShardmasterError;
pub use machine::ShardmasterMachine;
pub use op::{ConfigNum, Op, OpResult};
pub use rpc::OpRequest;
pub use server::{ServerOptions, ShardmasterServer};
pub use state::ConfigStore;
