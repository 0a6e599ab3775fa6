//! The operations clients send, and their replies.

use serde::{Deserialize, Serialize};

/// Identifies a client (one per [`crate::Clerk`]); random 64 bits.
pub type ClientId = u64;

/// A client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Read a key.
    Get { key: String },
    /// Set a key.
    Put { key: String, value: String },
    /// Append to a key (a missing key counts as "").
    Append { key: String, value: String },
    /// Set a key and return its old value.
    Swap { key: String, value: String },
    /// Remove a key.
    Delete { key: String },
    /// Every key in `[start, end]` (inclusive), sorted.
    Scan { start: String, end: String },
    /// Remove every key of the shard the request is addressed to.
    Clear,
}

impl Op {
    /// The key the operation routes by (`None` for Scan and Clear, which fan out).
    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Get { key }
            | Op::Put { key, .. }
            | Op::Append { key, .. }
            | Op::Swap { key, .. }
            | Op::Delete { key } => Some(key),
            Op::Scan { .. } | Op::Clear => None,
        }
    }

    /// True for operations that only read (served without writing the log).
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get { .. } | Op::Scan { .. })
    }
}

/// The result of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Get and Swap: the (old) value, if the key existed.
    Value(Option<String>),
    /// Put, Append and Delete: whether the key existed before.
    Existed(bool),
    /// Scan: the keys in range with their values, sorted.
    Pairs(Vec<(String, String)>),
    /// Clear.
    Cleared,
}

/// One operation from one client, numbered so a retry is recognised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The client.
    pub client: ClientId,
    /// The client's sequence number for this operation (1, 2, ...; a retry reuses it).
    pub seq: u64,
    /// The shard this request is addressed to.
    pub shard: usize,
    /// The operation.
    pub op: Op,
}

/// Why a server did not execute a request. Every variant says what the client does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    /// This group does not serve the shard in the configuration it has applied:
    /// refresh the configuration and retry at the owner.
    #[error("wrong group for shard {shard} (this group applied config {config}); refresh the configuration")]
    WrongGroup { shard: usize, config: u64 },
    /// This replica cannot serve the request; retry at `leader` if known, else another replica.
    #[error("not the leader; retry at replica {leader:?}")]
    NotLeader { leader: Option<usize> },
    /// The request was not decided in time; its outcome is unknown: retry it (same seq).
    #[error("timed out; the outcome is unknown, retry with the same sequence number")]
    Timeout,
    /// The shard is arriving or leaving right now: retry shortly.
    #[error("shard {shard} is moving between groups; retry shortly")]
    ShardMoving { shard: usize },
    /// The request is malformed (bad key, shard out of range): do not retry.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The replica has stopped or failed; try another replica.
    #[error("replica unavailable: {0}")]
    Unavailable(String),
}

impl KvError {
    /// True if retrying (elsewhere or later) may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, KvError::Invalid(_))
    }
}
