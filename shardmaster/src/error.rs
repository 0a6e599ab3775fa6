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

    // ----- The service: errors of the replicated server and its clients. -----
    /// The replica could not get the operation decided in time (leader change, no
    /// majority reachable, shutting down). Its outcome is unknown: retry it, with the
    /// same client id and sequence number, here or at another replica.
    #[error("the shardmaster replica could not get the operation decided ({reason}); retry it, here or at another replica")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },

    /// A retry of an operation older than the latest one this client had applied.
    /// Nobody waits for its answer: a [`Clerk`](crate::Clerk) never sends it.
    #[error("operation {seq} of client {client:x} is older than its operation {latest}, which was already applied; a client must not send an operation before the previous one was answered")]
    Superseded {
        /// The client.
        client: u64,
        /// The stale operation's sequence number.
        seq: u64,
        /// The client's latest applied sequence number.
        latest: u64,
    },

    /// A request that breaks the protocol (a Join, Leave or Move without a sequence
    /// number).
    #[error("malformed request: {reason}; use shardmaster::Clerk, which numbers every operation")]
    BadRequest {
        /// What is wrong with it.
        reason: String,
    },

    /// No shardmaster answered before the caller's deadline.
    #[error("no shardmaster reachable at {} within {waited_ms} ms (last error: {last_error}); check that the shardmasters are running and that a majority of them can reach each other (a Join, Leave or Move that got no answer may or may not have taken effect: run `query` to see)", masters.join(","))]
    Unreachable {
        /// The addresses tried.
        masters: Vec<String>,
        /// How long the caller tried.
        waited_ms: u64,
        /// The last failure seen.
        last_error: String,
    },

    /// The server's settings are inconsistent.
    #[error("invalid shardmaster settings: {reason}")]
    BadOptions {
        /// What is wrong.
        reason: String,
    },

    /// The data directory was made for another cluster shape than the one asked for.
    #[error("{path} was created with {what} {recorded}, but {given} was given; {what} is fixed when the cluster is made: omit it or pass {recorded}")]
    ClusterMismatch {
        /// The file recording the cluster's shape.
        path: String,
        /// The setting (`--shards`, `--me`, the number of `--peers`).
        what: String,
        /// The recorded value.
        recorded: usize,
        /// The value given now.
        given: usize,
    },

    /// A file of the data directory could not be read or written.
    #[error("cannot {action} {path}: {reason}; check the directory's permissions and free space")]
    Storage {
        /// What was being done ("read", "write", "lock", ...).
        action: String,
        /// The file or directory.
        path: String,
        /// The operating system's error.
        reason: String,
    },

    /// Another process (or server in this process) uses the data directory.
    #[error(
        "{path} is in use by another shardmaster; stop it first, or give this one its own --dir"
    )]
    DirInUse {
        /// The data directory.
        path: String,
    },

    /// A file of the data directory is damaged.
    #[error("{path} is corrupt ({reason}); this replica refuses to start rather than serve wrong configurations: restore the directory from a backup, or replace this replica")]
    CorruptFile {
        /// The damaged file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The Paxos replica under the service failed to start or stopped.
    #[error("the shardmaster's Paxos replica failed: {reason}")]
    Paxos {
        /// The Paxos error.
        reason: String,
    },
}

impl ShardmasterError {
    /// Whether retrying the same operation (same client id and sequence number) may
    /// succeed: true only for [`ShardmasterError::Unavailable`]. Every other error is
    /// final: retrying gives the same answer.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ShardmasterError::Unavailable { .. })
    }
}
