//! The operations clients send, and their replies.

use serde::{Deserialize, Serialize};

/// Largest value stored: 16 MiB. The one limit of every front door: the Clerk
/// refuses a larger value before sending it, every replica refuses it before
/// proposing it ([`Op::check_size`]), and HTTP answers 413. It keeps every log
/// record far below the Paxos log's frame limit.
pub const MAX_VALUE_BYTES: usize = 16 << 20;

/// Longest key accepted, in bytes, by every front door and replica.
pub const MAX_KEY_BYTES: usize = 1024;

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
    /// Add `by` to the key's value read as a 64-bit integer (a missing key counts
    /// as 0) and store the sum, in one replicated step: a retry is answered from
    /// the duplicate table, never applied twice (Redis INCR, DECR, INCRBY).
    Incr { key: String, by: i64 },
    /// Set a key only if it is (or is not) there, and return its old value:
    /// written iff the old value's presence is `when` (Redis SETNX, SET NX/XX).
    PutIf {
        key: String,
        value: String,
        when: Presence,
    },
    /// Remove a key and return the value it had (Redis GETDEL).
    Take { key: String },
    /// Append to a key (a missing key counts as "") and return the new value's
    /// length in bytes (Redis APPEND). [`Op::Append`] answers whether the key
    /// existed instead; both are kept so replies recorded in duplicate tables and
    /// logs keep their meaning.
    AppendLen { key: String, value: String },
    /// Up to `limit` keys of the shard from `start` (included), sorted, without
    /// their values (Redis SCAN, KEYS, DBSIZE). A replica answers at most
    /// [`MAX_KEYS_PER_READ`] whatever the limit, so the reply stays small.
    Keys { start: String, limit: u32 },
}

/// Most keys one [`Op::Keys`] answers (at most 10 MiB of keys).
pub const MAX_KEYS_PER_READ: u32 = 10_000;

/// Which keys an [`Op::PutIf`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Presence {
    /// Only a missing key (Redis NX).
    Absent,
    /// Only an existing key (Redis XX).
    Present,
}

impl Presence {
    /// Whether a key whose value is `old` matches.
    pub fn matches(self, old: Option<&str>) -> bool {
        match self {
            Presence::Absent => old.is_none(),
            Presence::Present => old.is_some(),
        }
    }
}

impl Op {
    /// The value the operation writes, if any.
    pub fn value(&self) -> Option<&str> {
        match self {
            Op::Put { value, .. }
            | Op::Append { value, .. }
            | Op::Swap { value, .. }
            | Op::PutIf { value, .. }
            | Op::AppendLen { value, .. } => Some(value),
            Op::Get { .. }
            | Op::Delete { .. }
            | Op::Scan { .. }
            | Op::Clear
            | Op::Incr { .. }
            | Op::Take { .. }
            | Op::Keys { .. } => None,
        }
    }

    /// Refuses a key above [`MAX_KEY_BYTES`] or a value above [`MAX_VALUE_BYTES`]:
    /// checked by the Clerk before sending and by a replica before proposing.
    pub fn check_size(&self) -> Result<(), KvError> {
        if let Some(key) = self.key().filter(|k| k.len() > MAX_KEY_BYTES) {
            return Err(KvError::TooLarge {
                what: "key".into(),
                bytes: key.len(),
                limit: MAX_KEY_BYTES,
            });
        }
        if let Some(value) = self.value().filter(|v| v.len() > MAX_VALUE_BYTES) {
            return Err(KvError::TooLarge {
                what: "value".into(),
                bytes: value.len(),
                limit: MAX_VALUE_BYTES,
            });
        }
        Ok(())
    }

    /// Bytes of key and value the operation carries (what batches and
    /// pipelines count against their size limits).
    pub fn carried_bytes(&self) -> usize {
        self.key().map_or(0, str::len) + self.value().map_or(0, str::len)
    }

    /// The key of an operation that may be in a [`crate::Batch`]: one on one
    /// key that is not empty, within the size limits. Scan, Keys and Clear fan
    /// out over shards and cannot.
    pub fn batchable_key(&self) -> Result<&str, KvError> {
        match self.key() {
            Some("") => Err(KvError::Invalid("key cannot be empty".into())),
            Some(key) => self.check_size().map(|()| key),
            None => Err(KvError::Invalid(format!(
                "{} is not an operation on one key: it cannot be in a batch",
                self.name()
            ))),
        }
    }

    /// The key the operation routes by (`None` for Scan and Clear, which fan out).
    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Get { key }
            | Op::Put { key, .. }
            | Op::Append { key, .. }
            | Op::Swap { key, .. }
            | Op::Delete { key }
            | Op::Incr { key, .. }
            | Op::PutIf { key, .. }
            | Op::Take { key }
            | Op::AppendLen { key, .. } => Some(key),
            Op::Scan { .. } | Op::Clear | Op::Keys { .. } => None,
        }
    }

    /// The operation's name, as metrics and logs label it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Get { .. } => "get",
            Op::Put { .. } => "put",
            Op::Append { .. } => "append",
            Op::Swap { .. } => "swap",
            Op::Delete { .. } => "delete",
            Op::Scan { .. } => "scan",
            Op::Clear => "clear",
            Op::Incr { .. } => "incr",
            Op::PutIf { .. } => "put_if",
            Op::Take { .. } => "take",
            Op::AppendLen { .. } => "append_len",
            Op::Keys { .. } => "keys",
        }
    }

    /// True for operations that only read (served without writing the log).
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get { .. } | Op::Scan { .. } | Op::Keys { .. })
    }
}

/// The result of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Get, Swap, PutIf and Take: the (old) value, if the key existed.
    Value(Option<String>),
    /// Put, Append and Delete: whether the key existed before.
    Existed(bool),
    /// Scan: the keys in range with their values, sorted.
    Pairs(Vec<(String, String)>),
    /// Clear.
    Cleared,
    /// Incr: the new value, or why the key's value was left as it was.
    Counter(Result<i64, CounterError>),
    /// AppendLen: the value's length in bytes after the append.
    Length(u64),
    /// Keys: the keys, sorted.
    Keys(Vec<String>),
    /// Append or AppendLen refused, nothing changed: the value would have been
    /// this many bytes, over [`MAX_VALUE_BYTES`]. ([`Op::check_size`] can only
    /// check the piece sent; the sum is known where the op is applied.)
    TooLarge(u64),
    /// A [`crate::Batch`]: each operation's reply, in the batch's order. In a
    /// duplicate table: the replies of the operations on that table's shard.
    Batch(Vec<Reply>),
}

impl Reply {
    /// Bytes of keys and values the reply carries (what a batch's replies are
    /// bounded by; see [`crate::batch::MAX_BATCH_REPLY_BYTES`]).
    pub fn carried_bytes(&self) -> u64 {
        let bytes: usize = match self {
            Reply::Value(v) => v.as_ref().map_or(0, String::len),
            Reply::Pairs(pairs) => pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Reply::Keys(keys) => keys.iter().map(String::len).sum(),
            Reply::Batch(replies) => return replies.iter().map(Reply::carried_bytes).sum(),
            _ => 0,
        };
        bytes as u64
    }

    /// A reply of the wrong kind for its operation, as the error a Clerk returns.
    pub fn unexpected(self) -> KvError {
        KvError::Unavailable(format!("unexpected reply {self:?}"))
    }

    /// [`Reply::TooLarge`] as the error a Clerk returns; any other reply as is.
    pub fn into_result(self) -> Result<Reply, KvError> {
        match self {
            Reply::TooLarge(bytes) => Err(KvError::TooLarge {
                what: "value".into(),
                bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
                limit: MAX_VALUE_BYTES,
            }),
            other => Ok(other),
        }
    }
}

/// Why an [`Op::Incr`] changed nothing. The texts are Redis's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CounterError {
    /// The value is not the decimal form of a 64-bit integer (no sign `+`, no
    /// leading zeros or spaces: exactly what the counter itself would write).
    #[error("value is not an integer or out of range")]
    NotAnInteger,
    /// The sum does not fit 64 bits.
    #[error("increment or decrement would overflow")]
    Overflow,
}

/// The counter an [`Op::Incr`] finds in `value`: a missing key counts as 0.
pub fn counter_of(value: Option<&str>) -> Result<i64, CounterError> {
    let Some(value) = value else {
        return Ok(0);
    };
    match value.parse::<i64>() {
        Ok(n) if n.to_string() == value => Ok(n),
        _ => Err(CounterError::NotAnInteger),
    }
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
    /// The replica's disk is full: it takes no writes until space is freed, then
    /// resumes by itself. A Clerk gives up on a write when a majority of the
    /// group says so (the group cannot decide anything), and retries otherwise.
    #[error("insufficient storage: {reason}{}", if *.outcome_unknown { "; the write may or may not have taken effect (an earlier attempt got no answer, or only part of it was applied)" } else { "; the write was not applied" })]
    NoSpace {
        /// What the replica says: the cause and what to do.
        reason: String,
        /// Set by the Clerk when an earlier attempt of the same operation got no
        /// answer (it timed out, or its connection broke), so its outcome is
        /// unknown, or when it was applied in part (a `clear` that emptied some
        /// shards before one refused).
        outcome_unknown: bool,
    },
    /// A key or value is above its limit ([`MAX_KEY_BYTES`], [`MAX_VALUE_BYTES`]):
    /// do not retry.
    #[error("{what} of {bytes} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// `"key"` or `"value"`.
        what: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A [`crate::Batch`] was refused whole, before any of it was applied: its
    /// replies could carry more than [`crate::batch::MAX_BATCH_REPLY_BYTES`] of
    /// values. Send its operations one at a time.
    #[error("a batch's replies could carry {bytes} bytes of values, over the {limit}-byte limit; nothing of it was applied: send its operations one at a time")]
    RepliesTooLarge {
        /// The bound on the replies' values.
        bytes: u64,
        /// The limit.
        limit: usize,
    },
}

impl KvError {
    /// True if retrying (elsewhere or later) may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            KvError::Invalid(_)
                | KvError::TooLarge { .. }
                | KvError::NoSpace { .. }
                | KvError::RepliesTooLarge { .. }
        )
    }
}
