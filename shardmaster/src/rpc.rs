//! The wire: what a client sends, what the log stores, and the one RPC.
//!
//! A request is an [`OpRequest`]: the [`Op`] plus the client's id and the
//! operation's sequence number. The same value is the command stored in the Paxos log,
//! so every replica sees who asked, and a retried Join, Leave or Move is recognised
//! as a duplicate and answered with its first result (see [`crate::machine`]).
//!
//! The RPC travels on the daemon's one port, on connections tagged
//! [`paxos::transport::mux::CLIENT`], with the workspace's postcard codec.

use crate::error::ShardmasterError;
use crate::op::{Op, OpResult};
use serde::{Deserialize, Serialize};

/// One operation of one client, as sent over the network and stored in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRequest {
    /// The client's id, random per [`Clerk`](crate::Clerk).
    pub client: u64,
    /// The client's sequence number for this operation: 1, 2, ... for Join, Leave and
    /// Move, one per operation and the same for every retry of it. Queries need no
    /// duplicate detection and may use 0.
    pub seq: u64,
    /// The operation.
    pub op: Op,
}

/// The shardmaster's RPC.
/// A shardmaster replica's whole state, for a replica that lost its disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineSnapshot {
    /// Every log instance below this is reflected.
    pub applied: paxos::Slot,
    /// Every configuration.
    pub store: crate::state::ConfigStore,
    /// The duplicate table.
    pub dups: crate::machine::DupTable,
    /// The sender's Paxos membership epochs.
    pub membership: paxos::core::Membership,
}

#[tarpc::service]
pub trait ShardmasterRpc {
    /// Runs `req` through the Paxos log and returns its result once applied here.
    ///
    /// [`ShardmasterError::Unavailable`] means the outcome is unknown: retry the same
    /// request (same client and seq), here or at another replica. Every other error
    /// is the operation's final answer.
    async fn call(req: OpRequest) -> Result<OpResult, ShardmasterError>;
    /// The replica's whole state, linearizably (leader only): for a replica that
    /// lost its disk.
    async fn snapshot() -> Result<MachineSnapshot, ShardmasterError>;
    /// The cluster's shard count, fixed when it was made (no log round).
    async fn shard_count() -> usize;
}
