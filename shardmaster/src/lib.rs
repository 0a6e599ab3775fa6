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
//! # Map
//!
//! - [`config`]: `Config`, gids, the key → shard hash and the admin JSON form.
//! - [`op`]: the operations, their replies and the checks that need no state.
//! - [`state`]: `ConfigStore`, the state machine, and the semantics of each op.
//! - [`rebalance`]: the balanced, minimal-movement assignment of shards to groups.
//! - [`error`]: `ShardmasterError`, the crate's one error type.
//!
//! # Example
//!
//! ```
//! use shardmaster::{ConfigStore, Op, OpResult};
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
//! assert_eq!(store.query(0).shards, vec![0, 0, 0, 0]);
//! ```

pub mod config;
pub mod error;
pub mod op;
pub mod rebalance;
pub mod state;

#[cfg(test)]
mod tests;

pub use config::{shard_of, Config, Gid, DEFAULT_SHARDS, MAX_SHARDS, NO_GROUP};
pub use error::ShardmasterError;
pub use op::{Op, OpResult};
pub use state::ConfigStore;
