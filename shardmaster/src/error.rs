//! The crate's one error type. Each message says what was wrong and what to do.

use crate::config::{Gid, MAX_SHARDS};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why the shardmaster refused an operation or an input.
///
/// Serializable so a server can send it to the client that asked. Every refusal leaves
/// the configurations untouched.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ShardmasterError {
    /// The shard count is 0 or above [`MAX_SHARDS`].
    #[error("a cluster needs between 1 and {MAX_SHARDS} shards, not {nshards}; pass --shards N within that range")]
    BadShardCount {
        /// The requested count.
        nshards: usize,
    },

    /// An operation named gid 0.
    #[error("gid 0 is reserved to mean \"no group\"; give every replica group a gid of 1 or more")]
    ReservedGid,

    /// A Join without servers.
    #[error("the server list of group {gid} is empty; pass the group's replica addresses as host:port,host:port,...")]
    EmptyServerList {
        /// The joining group.
        gid: Gid,
    },

    /// A Join with an address that is not `host:port`.
    #[error("server address {addr:?} of group {gid} is not host:port with a port in 1..=65535 ({reason}); pass addresses like 10.0.0.5:7000 or db-1:7000")]
    MalformedAddress {
        /// The joining group.
        gid: Gid,
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A Join listing one address twice.
    #[error("server address {addr} is listed twice for group {gid}; list each replica once")]
    DuplicateAddress {
        /// The joining group.
        gid: Gid,
        /// The repeated address.
        addr: String,
    },

    /// A Join with an address another joined group already uses.
    #[error("server address {addr} of group {gid} already belongs to group {owner}; a server serves one group: fix the address, or Leave group {owner} first")]
    AddressInUse {
        /// The joining group.
        gid: Gid,
        /// The contested address.
        addr: String,
        /// The joined group that has it.
        owner: Gid,
    },

    /// A Join of a gid that is already joined with other servers.
    #[error("group {gid} is already joined with servers {servers:?}; a gid names one replica group for good: join the new group under an unused gid, or Leave {gid} first and Join again")]
    GidInUse {
        /// The joining gid.
        gid: Gid,
        /// The servers it is joined with.
        servers: Vec<String>,
    },

    /// A Leave of a gid that is not joined.
    #[error("group {gid} is not in the latest configuration, so it cannot leave; run `query` to see the joined groups")]
    UnknownGroup {
        /// The gid that was asked to leave.
        gid: Gid,
    },

    /// A Move to a gid that is not joined.
    #[error("cannot move shard {shard} to group {gid}: the group is not in the latest configuration; Join it first")]
    MoveToUnknownGroup {
        /// The shard to move.
        shard: usize,
        /// The gid that is not joined.
        gid: Gid,
    },

    /// A Move of a shard that does not exist.
    #[error("shard {shard} does not exist: this cluster has {nshards} shards, numbered from 0 to {}", nshards.saturating_sub(1))]
    ShardOutOfRange {
        /// The requested shard.
        shard: usize,
        /// The cluster's shard count.
        nshards: usize,
    },

    /// A Query of a negative number other than -1.
    #[error("configuration number {num} is invalid; use -1 (or omit it) for the latest configuration, or a number from 0 up")]
    BadConfigNum {
        /// The requested number.
        num: i64,
    },

    /// Text that is not the JSON form of a configuration.
    #[error("not a configuration in the JSON form {{\"num\":N,\"shards\":[G,...],\"groups\":{{\"G\":[\"addr\",...]}}}}: {reason}")]
    MalformedConfig {
        /// What the parser found.
        reason: String,
    },

    /// A snapshot of the configuration store that breaks the store's invariants.
    #[error("the shardmaster snapshot is corrupt ({reason}); restore this replica's state from a healthy peer")]
    CorruptSnapshot {
        /// Which invariant is broken.
        reason: String,
    },
}
