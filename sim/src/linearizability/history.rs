//! The history a test records: each operation's invocation, and its reply or
//! the fact that it never came.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// An operation a client sent to the store (docs/REFERENCE.md §4), as the
/// checker's model sees it: one operation on the whole store (a `Clear` of every
/// key, one `Scan` or `Keys` answer merged over the shards). It is not
/// `diskv::Op`, the wire and log type, on purpose: the specification does not
/// follow the product's type (ARCHITECTURE.md, "The checker keeps its own
/// operation type"); each test's edge translates into it once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read a key; replied with [`Ret::Value`].
    Get { key: String },
    /// Set a key; replied with [`Ret::Existed`] (did the key exist before).
    Put { key: String, value: String },
    /// Append to a key (a missing key appends to ""); replied with [`Ret::Existed`].
    Append { key: String, value: String },
    /// Set a key; replied with [`Ret::Value`], the old value.
    Swap { key: String, value: String },
    /// Remove a key; replied with [`Ret::Existed`].
    Delete { key: String },
    /// Read every key in `[start, end]` (inclusive); replied with [`Ret::Pairs`].
    Scan { start: String, end: String },
    /// Remove every key; replied with [`Ret::Done`].
    Clear,
    /// Add `by` to the key's integer (missing: 0); replied with [`Ret::Counter`].
    Incr { key: String, by: i64 },
    /// Set a key only if it is missing (`absent`) or only if it exists (not
    /// `absent`); replied with [`Ret::Value`], the old value.
    PutIf {
        key: String,
        value: String,
        absent: bool,
    },
    /// Remove a key; replied with [`Ret::Value`], the old value.
    Take { key: String },
    /// Append to a key; replied with [`Ret::Length`], the new length in bytes.
    AppendLen { key: String, value: String },
    /// The first `limit` keys from `start` (included), without values; replied
    /// with [`Ret::Keys`].
    Keys { start: String, limit: u32 },
}

impl Op {
    /// `Get(key)`.
    pub fn get(key: impl Into<String>) -> Op {
        Op::Get { key: key.into() }
    }
    /// `Put(key, value)`.
    pub fn put(key: impl Into<String>, value: impl Into<String>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }
    /// `Append(key, value)`.
    pub fn append(key: impl Into<String>, value: impl Into<String>) -> Op {
        Op::Append {
            key: key.into(),
            value: value.into(),
        }
    }
    /// `Swap(key, value)`.
    pub fn swap(key: impl Into<String>, value: impl Into<String>) -> Op {
        Op::Swap {
            key: key.into(),
            value: value.into(),
        }
    }
    /// `Delete(key)`.
    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete { key: key.into() }
    }
    /// `Incr(key, by)`.
    pub fn incr(key: impl Into<String>, by: i64) -> Op {
        Op::Incr {
            key: key.into(),
            by,
        }
    }
    /// `PutIf(key, value)` of a missing key (`absent`) or an existing one.
    pub fn put_if(key: impl Into<String>, value: impl Into<String>, absent: bool) -> Op {
        Op::PutIf {
            key: key.into(),
            value: value.into(),
            absent,
        }
    }
    /// `Take(key)`.
    pub fn take(key: impl Into<String>) -> Op {
        Op::Take { key: key.into() }
    }
    /// `AppendLen(key, value)`.
    pub fn append_len(key: impl Into<String>, value: impl Into<String>) -> Op {
        Op::AppendLen {
            key: key.into(),
            value: value.into(),
        }
    }
    /// `Keys(start, limit)`.
    pub fn keys(start: impl Into<String>, limit: u32) -> Op {
        Op::Keys {
            start: start.into(),
            limit,
        }
    }
    /// `Scan(start, end)`, both ends inclusive.
    pub fn scan(start: impl Into<String>, end: impl Into<String>) -> Op {
        Op::Scan {
            start: start.into(),
            end: end.into(),
        }
    }

    /// Whether the operation can change the store (everything but Get and Scan).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. } | Op::Scan { .. } | Op::Keys { .. })
    }

    /// The one key the operation names, if it names exactly one.
    pub(super) fn key(&self) -> Option<&str> {
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
}

/// The reply a client received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// Get: the value (`None` = missing). Swap, PutIf, Take: the old value.
    Value(Option<String>),
    /// Put, Append, Delete: whether the key existed before.
    Existed(bool),
    /// Scan: the pairs in the range, as returned.
    Pairs(Vec<(String, String)>),
    /// Clear.
    Done,
    /// Incr: the new value; `None` if the value was not an integer or the sum
    /// overflowed (nothing changed).
    Counter(Option<i64>),
    /// AppendLen: the value's length in bytes after the append.
    Length(u64),
    /// Keys: the keys, as returned.
    Keys(Vec<String>),
}

impl Ret {
    /// `Value(Some(v))`.
    pub fn value(v: impl Into<String>) -> Ret {
        Ret::Value(Some(v.into()))
    }
    /// `Value(None)`: the key was missing.
    pub fn missing() -> Ret {
        Ret::Value(None)
    }
}

/// What became of an operation after it was invoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No reply recorded (yet). Checked as an unknown outcome.
    Pending,
    /// The client gave up waiting. Checked as an unknown outcome.
    TimedOut,
    /// The reply arrived at logical time `at`.
    Returned { at: u64, ret: Ret },
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Who sent it; only used in explanations.
    pub client: u64,
    /// What was sent.
    pub op: Op,
    /// Logical time of the invocation.
    pub call: u64,
    /// The reply, if any.
    pub outcome: Outcome,
}

/// Names an operation recorded by [`History::invoke`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpId(usize);

/// A history of operations, shared by all the threads or tasks of a test (clones share
/// one history).
///
/// Times are ticks of one logical clock that advances at every invocation and every
/// reply, under the history's lock, so the order of events is exact: call
/// [`invoke`](Self::invoke) just before sending a request and [`ret`](Self::ret) just
/// after its reply arrives.
#[derive(Clone, Debug, Default)]
pub struct History {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Debug, Default)]
pub(super) struct Recorded {
    pub(super) clock: u64,
    pub(super) ops: Vec<Operation>,
    /// Misuses of the recorder, reported by [`check`] as a malformed history.
    pub(super) problems: Vec<String>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Records that `client` is about to send `op`.
    pub fn invoke(&self, client: u64, op: Op) -> OpId {
        let mut rec = self.lock();
        let call = rec.clock;
        rec.clock += 1;
        rec.ops.push(Operation {
            client,
            op,
            call,
            outcome: Outcome::Pending,
        });
        OpId(rec.ops.len() - 1)
    }

    /// Records the reply to `id`.
    pub fn ret(&self, id: OpId, ret: Ret) {
        let mut rec = self.lock();
        let at = rec.clock;
        rec.clock += 1;
        rec.complete(id, Outcome::Returned { at, ret });
    }

    /// Records that the client stopped waiting for `id`: it may or may not take effect.
    pub fn timeout(&self, id: OpId) {
        self.lock().complete(id, Outcome::TimedOut);
    }

    /// Records an operation with explicit times, for histories built by hand or loaded
    /// from elsewhere. Events at equal times count as concurrent.
    pub fn record(&self, client: u64, op: Op, call: u64, outcome: Outcome) -> OpId {
        let mut rec = self.lock();
        let last = match &outcome {
            Outcome::Returned { at, .. } => call.max(*at),
            _ => call,
        };
        rec.clock = rec.clock.max(last.saturating_add(1));
        rec.ops.push(Operation {
            client,
            op,
            call,
            outcome,
        });
        OpId(rec.ops.len() - 1)
    }

    /// A copy of every operation recorded so far, in invocation order; `OpId`s index it.
    pub fn operations(&self) -> Vec<Operation> {
        self.lock().ops.clone()
    }

    /// How many operations were recorded.
    pub fn len(&self) -> usize {
        self.lock().ops.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A thread that panicked while holding the lock left the history consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl From<Vec<Operation>> for History {
    fn from(ops: Vec<Operation>) -> History {
        let h = History::new();
        for o in ops {
            h.record(o.client, o.op, o.call, o.outcome);
        }
        h
    }
}

impl Recorded {
    fn complete(&mut self, id: OpId, outcome: Outcome) {
        match self.ops.get_mut(id.0) {
            None => self
                .problems
                .push(format!("a reply to #{}, which was never invoked", id.0)),
            Some(op) if op.outcome != Outcome::Pending => self
                .problems
                .push(format!("#{} completed twice ({:?})", id.0, outcome)),
            Some(op) => op.outcome = outcome,
        }
    }
}
