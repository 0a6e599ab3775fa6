//! The KV service between Clerks (and other groups) and a group's replicas.

pub mod conn;
mod shard_read;
pub mod status;

pub use shard_read::{ShardPage, ShardRead, PAGE_BYTES};

use crate::op::{KvError, Reply, Request};
use crate::state::dedup::DupTable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What [`KvRpc::snapshot`] answers; it lives with the state machine, which takes
/// and installs it.
pub use crate::state::GroupSnapshot;
pub use status::ReplicaStatus;

/// A shard's contents as handed from its previous owner to its new one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTransfer {
    /// Keys and values.
    pub data: BTreeMap<String, String>,
    /// The duplicate table.
    pub dups: DupTable,
}

/// The RPC service every KV replica serves on its port.
#[tarpc::service]
pub trait KvRpc {
    /// Executes one client operation: writes through the log, reads through a
    /// read-index round. Errors say whether and where to retry.
    async fn execute(req: Request) -> Result<Reply, KvError>;
    /// Another group, new owner of `shard` since config `config`, asks for its data.
    /// Answered only once this group has applied `config` (the shard is frozen).
    async fn fetch_shard(config: u64, shard: usize) -> Result<ShardTransfer, KvError>;
    /// Asked by the previous owner: has this group installed `shard`, which `config`
    /// gave it? Once it has, the previous owner deletes its frozen copy.
    async fn shard_installed(config: u64, shard: usize) -> Result<bool, KvError>;
    /// The group's state, linearizable (leader only), for a replica that lost its disk.
    async fn snapshot() -> Result<GroupSnapshot, KvError>;
    /// What the replica says about itself (role, log positions, shards, disk),
    /// from its local state with no log round: answered by any replica, leader or
    /// not, so `diskv admin status` sees a group without a majority too.
    async fn status() -> Result<ReplicaStatus, KvError>;
    /// A page of one shard as it was at one moment, for `diskv admin backup`
    /// (see [`ShardRead`]).
    async fn read_shard(read: ShardRead) -> Result<ShardPage, KvError>;
    /// An operator's change to this group's replica set (`diskv admin replica
    /// ...`): the leader proposes it through the group's log; any other replica
    /// answers which one leads. Watch [`KvRpc::status`]'s seats to see it take
    /// effect. See `paxos::membership`.
    async fn change_membership(change: paxos::core::Change) -> paxos::core::ChangeAnswer;
    /// Executes a batch of one client's single-key operations in order, as one
    /// ([`crate::batch`]): the reply is [`Reply::Batch`], one reply per
    /// operation. Every shard must be this group's, or nothing is applied.
    async fn execute_batch(batch: crate::batch::Batch) -> Result<Reply, KvError>;
}
