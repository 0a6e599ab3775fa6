//! A linearizability checker for histories of diskv client operations.
//!
//! Integration tests record what their clients did with a [`History`] — each operation's
//! invocation, and its reply or the fact that it never came — and ask [`check`] whether
//! some order of the operations, one that respects real time, explains every reply.
//!
//! # How it checks
//!
//! * **Per key.** Linearizability is local (Herlihy & Wing 1990): a history is
//!   linearizable iff each key's sub-history is. So the history is split by key and each
//!   key is searched on its own, with the model state `Option<String>` (`None` = missing).
//!   A `Scan` becomes a read of every key in its range that the history mentions
//!   ([`expand_scan`]); a `Clear` becomes a `Delete` of every such key whose reply is
//!   ignored. The per-key check therefore does *not* require a Clear or a Scan to be
//!   atomic across keys, only to act on each key at one point inside its interval.
//! * **Search.** Wing & Gong's search with Lowe's memoization ("Testing for
//!   linearizability", 2017), as used by Porcupine: the call and return events sorted by
//!   time in a doubly linked list; repeatedly linearize a call that comes before the
//!   first return still in the list, if the model accepts its reply, and remove it and
//!   its return from the list; when a return is reached first, undo the last choice.
//!   A set of (linearized operations, model state) pairs already explored prunes the
//!   search; three more sound prunings (see `Search`) handle many concurrent reads,
//!   concurrent appends and many unknown outcomes.
//! * **Unknown outcomes.** An operation that timed out or never returned may or may not
//!   have taken effect, at any time after its invocation. Its return time is +∞ and a
//!   write of that kind accepts any reply ([`KeyRet::Any`]). A write that never took
//!   effect is explained by linearizing it at the very end, after every other
//!   operation, where it changes nothing anyone observed (so the search stops as soon as
//!   every operation with a reply is placed); reads with no reply observe nothing and
//!   are left out.
//! * **Explanations.** When a key fails, its history is shrunk with steps that keep it
//!   failing and are sound (if the shrunk history fails, so does the original): cut it
//!   at the earliest return at which it already fails, which names the first reply no
//!   order explains, then drop the reads the failure does not need. The explanation
//!   shows that reply, the values the key could have had when it took effect, and the
//!   operations that led there.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------
// Operations, replies and the recorder
// ------------------------------------------------------------------------------------

/// An operation a client sent to the store (docs/REFERENCE.md §4).
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
    fn key(&self) -> Option<&str> {
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
struct Recorded {
    clock: u64,
    ops: Vec<Operation>,
    /// Misuses of the recorder, reported by [`check`] as a malformed history.
    problems: Vec<String>,
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

    fn lock(&self) -> MutexGuard<'_, Recorded> {
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

// ------------------------------------------------------------------------------------
// The per-key model
// ------------------------------------------------------------------------------------

/// The model state of one key: its value, `None` when missing.
pub type State = Option<String>;

/// An operation on one key, after Scans and Clears are split by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOp {
    /// Read the value (also a Scan's view of this key).
    Get,
    /// Set the value.
    Put(String),
    /// Append to the value ("" if missing).
    Append(String),
    /// Set the value, observing the old one.
    Swap(String),
    /// Remove the key (also a Clear's effect on this key).
    Delete,
    /// Add to the value read as an integer (missing: 0), if it is one.
    Incr(i64),
    /// Set the value if the key is missing (`true`) or exists (`false`),
    /// observing the old one.
    PutIf(String, bool),
    /// Remove the key, observing the old value.
    Take,
    /// Append to the value, observing the new length.
    AppendLen(String),
}

/// The reply of a [`KeyOp`], as the model checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRet {
    /// Get, Swap, PutIf or Take: the value before the operation.
    Value(State),
    /// Put, Append or Delete: whether the key existed before the operation.
    Existed(bool),
    /// No reply to check: an unknown outcome, or a Clear.
    Any,
    /// Incr: the sum, or `None` if it changed nothing.
    Counter(Option<i64>),
    /// AppendLen: the length after the append.
    Length(u64),
    /// A Get that saw only whether the key exists (a Keys reply).
    Present(bool),
}

/// What an `Incr(by)` makes of `state`: the sum, or `None` when the value is not
/// the decimal form of a 64-bit integer or the sum overflows (the store's rule,
/// `diskv::op::counter_of`).
fn incremented(state: &State, by: i64) -> Option<i64> {
    let n = match state.as_deref() {
        None => 0,
        Some(v) => v.parse::<i64>().ok().filter(|n| n.to_string() == v)?,
    };
    n.checked_add(by)
}

/// The model's step: the state after `op` runs on `state`, if `reply` is what it returns
/// there; `None` if the reply is impossible from `state`.
pub fn step(state: &State, op: &KeyOp, reply: &KeyRet) -> Option<State> {
    if !legal(state, op, reply) {
        return None;
    }
    Some(match op {
        KeyOp::Get => state.clone(),
        KeyOp::Put(v) | KeyOp::Swap(v) => Some(v.clone()),
        KeyOp::Append(v) | KeyOp::AppendLen(v) => {
            Some(format!("{}{v}", state.as_deref().unwrap_or("")))
        }
        KeyOp::Delete | KeyOp::Take => None,
        KeyOp::PutIf(v, absent) => {
            if *absent == state.is_none() {
                Some(v.clone())
            } else {
                state.clone()
            }
        }
        KeyOp::Incr(by) => match incremented(state, *by) {
            Some(sum) => Some(sum.to_string()),
            None => state.clone(),
        },
    })
}

/// Whether `op` may reply `reply` from `state`.
fn legal(state: &State, op: &KeyOp, reply: &KeyRet) -> bool {
    match (op, reply) {
        (_, KeyRet::Any) => true,
        (KeyOp::Get | KeyOp::Swap(_) | KeyOp::PutIf(..) | KeyOp::Take, KeyRet::Value(seen)) => {
            seen == state
        }
        (KeyOp::Get, KeyRet::Present(present)) => *present == state.is_some(),
        (KeyOp::AppendLen(v), KeyRet::Length(n)) => {
            *n == (state.as_ref().map_or(0, String::len) + v.len()) as u64
        }
        (KeyOp::Put(_) | KeyOp::Append(_) | KeyOp::Delete, KeyRet::Existed(existed)) => {
            *existed == state.is_some()
        }
        (KeyOp::Incr(by), KeyRet::Counter(sum)) => *sum == incremented(state, *by),
        _ => false,
    }
}

/// Whether some of the `available` operations, each at most once and in some order,
/// could take `state` to one from which an operation may reply `reply`. It may say yes
/// wrongly, never no: a `false` lets the search give up on a configuration early.
///
/// The value observed must be a base — the current value, or what a Put, Swap or
/// Delete leaves — followed by appended values.
fn reachable(state: &State, reply: &KeyRet, available: &[&KeyOp]) -> bool {
    let can_delete = available
        .iter()
        .any(|op| matches!(op, KeyOp::Delete | KeyOp::Take));
    let can_count = available.iter().any(|op| matches!(op, KeyOp::Incr(_)));
    match reply {
        // A sum, or a value an Incr wrote: not worth predicting (never "no" wrongly).
        // A length: not worth predicting either.
        KeyRet::Any | KeyRet::Counter(_) | KeyRet::Length(_) => true,
        KeyRet::Value(Some(_)) if can_count => true,
        KeyRet::Existed(false) | KeyRet::Value(None) | KeyRet::Present(false) => {
            state.is_none() || can_delete
        }
        KeyRet::Existed(true) | KeyRet::Present(true) => {
            state.is_some()
                || available.iter().any(|op| {
                    matches!(
                        op,
                        KeyOp::Put(_)
                            | KeyOp::Append(_)
                            | KeyOp::Swap(_)
                            | KeyOp::Incr(_)
                            | KeyOp::PutIf(..)
                            | KeyOp::AppendLen(_)
                    )
                })
        }
        KeyRet::Value(Some(target)) => {
            let mut bases = vec![state.as_deref().unwrap_or("")];
            let mut appends = Vec::new();
            for op in available {
                match op {
                    KeyOp::Put(v) | KeyOp::Swap(v) | KeyOp::PutIf(v, _) => bases.push(v),
                    KeyOp::Delete | KeyOp::Take => bases.push(""),
                    KeyOp::Append(v) | KeyOp::AppendLen(v) => appends.push(v.as_bytes()),
                    KeyOp::Get | KeyOp::Incr(_) => {}
                }
            }
            bases.iter().any(|base| {
                target
                    .strip_prefix(base)
                    .is_some_and(|rest| concatenation_of(rest.as_bytes(), &appends))
            })
        }
    }
}

/// Whether `s` is a concatenation of `parts`, each usable any number of times.
fn concatenation_of(s: &[u8], parts: &[&[u8]]) -> bool {
    let mut todo = vec![0];
    let mut reached = HashSet::new();
    while let Some(i) = todo.pop() {
        if i == s.len() {
            return true;
        }
        for part in parts {
            if !part.is_empty() && s[i..].starts_with(part) && reached.insert(i + part.len()) {
                todo.push(i + part.len());
            }
        }
    }
    false
}

/// What a Scan of `[start, end]` that returned `pairs` observed of each key of `keys`
/// in its range: `Some(value)` if returned, `None` if not. Each observation is checked
/// as a Get of that key with the Scan's invocation and reply times.
pub fn expand_scan(
    start: &str,
    end: &str,
    pairs: &[(String, String)],
    keys: &BTreeSet<String>,
) -> Vec<(String, State)> {
    if start > end {
        return Vec::new();
    }
    let found: HashMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    keys.range::<str, _>((
        std::ops::Bound::Included(start),
        std::ops::Bound::Included(end),
    ))
    .map(|k| (k.clone(), found.get(k.as_str()).map(|v| v.to_string())))
    .collect()
}

/// What a Keys from `start` that returned `found` (at most `limit` keys) observed
/// of each key of `keys`: present or not, for every key from `start` up to the
/// last one returned (to the end of the key space if fewer than `limit` came
/// back). Each observation is checked as a Get that saw only presence.
pub fn expand_keys(
    start: &str,
    limit: u32,
    found: &[String],
    keys: &BTreeSet<String>,
) -> Vec<(String, bool)> {
    // A replica answers at most MAX_KEYS_PER_READ keys whatever the limit, and a
    // limit of 0 takes no key: it observes nothing.
    let limit = limit.min(diskv::op::MAX_KEYS_PER_READ);
    if limit == 0 {
        return Vec::new();
    }
    let upto = match found.last() {
        Some(last) if found.len() >= limit as usize => std::ops::Bound::Included(last.as_str()),
        _ => std::ops::Bound::Unbounded,
    };
    let found: HashSet<&str> = found.iter().map(String::as_str).collect();
    keys.range::<str, _>((std::ops::Bound::Included(start), upto))
        .map(|k| (k.clone(), found.contains(k.as_str())))
        .collect()
}

/// One operation of one key's history, as the search sees it.
#[derive(Clone, Debug)]
struct KeyEvent {
    op: KeyOp,
    ret: KeyRet,
    call: u64,
    /// `None`: unknown outcome, return at +∞.
    ret_at: Option<u64>,
    /// Index of the [`Operation`] it came from.
    origin: usize,
}

// ------------------------------------------------------------------------------------
// Checking
// ------------------------------------------------------------------------------------

/// Limits on the work spent per key.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Search steps per key before giving up with [`CheckResult::Unknown`].
    pub max_steps: u64,
    /// Wall-clock time per key before giving up with [`CheckResult::Unknown`].
    pub max_time: Duration,
    /// Approximate bytes of search memory per key before giving up with
    /// [`CheckResult::Unknown`].
    pub max_memory: usize,
    /// Time spent shrinking a failing key's history for the explanation.
    pub explain_time: Duration,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            max_steps: 10_000_000,
            max_time: Duration::from_secs(10),
            max_memory: 1 << 30,
            explain_time: Duration::from_secs(2),
        }
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's history is linearizable.
    Ok,
    /// `key`'s history is not linearizable; `explanation` shows why.
    Violation { key: String, explanation: String },
    /// No violation found, but the search of `key` ran out of budget: not verified.
    Unknown { key: String },
    /// The history itself is inconsistent (replies of the wrong kind, a reply before its
    /// call, a recorder misused); nothing was checked.
    Malformed { reason: String },
}

impl CheckResult {
    /// Whether the history was verified linearizable.
    pub fn is_ok(&self) -> bool {
        *self == CheckResult::Ok
    }
    /// Whether a violation was found.
    pub fn is_violation(&self) -> bool {
        matches!(self, CheckResult::Violation { .. })
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Ok => write!(f, "linearizable"),
            CheckResult::Violation { key, explanation } => {
                write!(f, "not linearizable on key {key:?}:\n{explanation}")
            }
            CheckResult::Unknown { key } => write!(
                f,
                "could not verify key {key:?}: the search ran out of budget; \
                 raise CheckOptions limits or record a shorter history"
            ),
            CheckResult::Malformed { reason } => write!(f, "malformed history: {reason}"),
        }
    }
}

/// Checks `history` with the default [`CheckOptions`].
pub fn check(history: &History) -> CheckResult {
    check_with(history, &CheckOptions::default())
}

/// Checks `history`: a violation on any key wins over a key that ran out of budget.
pub fn check_with(history: &History, options: &CheckOptions) -> CheckResult {
    let (ops, problems) = {
        let rec = history.lock();
        (rec.ops.clone(), rec.problems.clone())
    };
    if let Some(reason) = problems.first() {
        return CheckResult::Malformed {
            reason: reason.clone(),
        };
    }
    let per_key = match split_by_key(&ops) {
        Ok(per_key) => per_key,
        Err(verdict) => return verdict,
    };
    let limits = Limits::new(options);
    let mut unknown = None;
    for (key, events) in &per_key {
        match search(events, &limits, None).verdict {
            Verdict::Linearizable => {}
            Verdict::Exhausted => {
                unknown.get_or_insert_with(|| key.clone());
            }
            Verdict::Violation => {
                let core = shrink(events.clone(), options);
                let explanation = explain(key, &core, &ops, &limits);
                return CheckResult::Violation {
                    key: key.clone(),
                    explanation,
                };
            }
        }
    }
    match unknown {
        Some(key) => CheckResult::Unknown { key },
        None => CheckResult::Ok,
    }
}

/// Splits the history by key, validating it on the way.
fn split_by_key(ops: &[Operation]) -> Result<BTreeMap<String, Vec<KeyEvent>>, CheckResult> {
    let mut keys = BTreeSet::new();
    for (i, o) in ops.iter().enumerate() {
        validate(i, o).map_err(|reason| CheckResult::Malformed { reason })?;
        if let Some(key) = o.op.key() {
            keys.insert(key.to_string());
        }
        if let (
            Op::Scan { start, end },
            Outcome::Returned {
                ret: Ret::Pairs(pairs),
                ..
            },
        ) = (&o.op, &o.outcome)
        {
            check_scan_reply(i, start, end, pairs)?;
            keys.extend(pairs.iter().map(|(k, _)| k.clone()));
        }
        if let (
            Op::Keys { start, limit },
            Outcome::Returned {
                ret: Ret::Keys(found),
                ..
            },
        ) = (&o.op, &o.outcome)
        {
            check_keys_reply(i, start, *limit, found)?;
            keys.extend(found.iter().cloned());
        }
    }

    let mut per_key: BTreeMap<String, Vec<KeyEvent>> =
        keys.iter().map(|k| (k.clone(), Vec::new())).collect();
    for (origin, o) in ops.iter().enumerate() {
        let (ret_at, ret) = match &o.outcome {
            Outcome::Returned { at, ret } => (Some(*at), Some(ret)),
            Outcome::Pending | Outcome::TimedOut => (None, None),
        };
        if ret.is_none() && !o.op.is_write() {
            continue; // a read that never returned observed nothing
        }
        let mut push = |key: &str, op: KeyOp, ret: KeyRet| {
            let event = KeyEvent {
                op,
                ret,
                call: o.call,
                ret_at,
                origin,
            };
            per_key.entry(key.to_string()).or_default().push(event);
        };
        let reply = |r: Option<&Ret>| match r {
            Some(Ret::Value(v)) => KeyRet::Value(v.clone()),
            Some(Ret::Existed(e)) => KeyRet::Existed(*e),
            Some(Ret::Counter(c)) => KeyRet::Counter(*c),
            Some(Ret::Length(n)) => KeyRet::Length(*n),
            _ => KeyRet::Any,
        };
        match &o.op {
            Op::Get { key } => push(key, KeyOp::Get, reply(ret)),
            Op::Put { key, value } => push(key, KeyOp::Put(value.clone()), reply(ret)),
            Op::Append { key, value } => push(key, KeyOp::Append(value.clone()), reply(ret)),
            Op::Swap { key, value } => push(key, KeyOp::Swap(value.clone()), reply(ret)),
            Op::Delete { key } => push(key, KeyOp::Delete, reply(ret)),
            Op::Incr { key, by } => push(key, KeyOp::Incr(*by), reply(ret)),
            Op::PutIf { key, value, absent } => {
                push(key, KeyOp::PutIf(value.clone(), *absent), reply(ret))
            }
            Op::Take { key } => push(key, KeyOp::Take, reply(ret)),
            Op::AppendLen { key, value } => push(key, KeyOp::AppendLen(value.clone()), reply(ret)),
            Op::Scan { start, end } => {
                let pairs = match ret {
                    Some(Ret::Pairs(pairs)) => pairs.as_slice(),
                    _ => &[],
                };
                for (key, seen) in expand_scan(start, end, pairs, &keys) {
                    push(&key, KeyOp::Get, KeyRet::Value(seen));
                }
            }
            Op::Clear => {
                for key in &keys {
                    push(key, KeyOp::Delete, KeyRet::Any);
                }
            }
            Op::Keys { start, limit } => {
                if let Some(Ret::Keys(found)) = ret {
                    for (key, present) in expand_keys(start, *limit, found, &keys) {
                        push(&key, KeyOp::Get, KeyRet::Present(present));
                    }
                }
            }
        }
    }
    Ok(per_key)
}

/// Rejects a reply of the wrong kind for its operation, or one before its call.
fn validate(i: usize, o: &Operation) -> Result<(), String> {
    let Outcome::Returned { at, ret } = &o.outcome else {
        return Ok(());
    };
    if *at < o.call {
        return Err(format!(
            "#{i} returned at {at}, before its call at {}",
            o.call
        ));
    }
    let fits = match &o.op {
        Op::Get { .. } | Op::Swap { .. } | Op::PutIf { .. } | Op::Take { .. } => {
            matches!(ret, Ret::Value(_))
        }
        Op::AppendLen { .. } => matches!(ret, Ret::Length(_)),
        Op::Keys { .. } => matches!(ret, Ret::Keys(_)),
        Op::Put { .. } | Op::Append { .. } | Op::Delete { .. } => matches!(ret, Ret::Existed(_)),
        Op::Scan { .. } => matches!(ret, Ret::Pairs(_)),
        Op::Clear => matches!(ret, Ret::Done),
        Op::Incr { .. } => matches!(ret, Ret::Counter(_)),
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "#{i} {:?} got a reply of the wrong kind: {ret:?}",
            o.op
        ))
    }
}

/// A Keys reply with a key before its start, out of order, twice, or more keys than
/// its limit is wrong whatever the order of operations.
fn check_keys_reply(
    i: usize,
    start: &str,
    limit: u32,
    found: &[String],
) -> Result<(), CheckResult> {
    let bad = found.len() > limit as usize
        || found.first().is_some_and(|k| k.as_str() < start)
        || found.windows(2).any(|w| w[0] >= w[1]);
    if !bad {
        return Ok(());
    }
    Err(CheckResult::Violation {
        key: found.first().cloned().unwrap_or_default(),
        explanation: format!(
            "#{i} Keys({start:?}, {limit}) returned keys out of order, repeated, before its \
             start or over its limit: {found:?}"
        ),
    })
}

/// A Scan that returned a key outside its range, or one key twice, is wrong whatever
/// the order of operations.
fn check_scan_reply(
    i: usize,
    start: &str,
    end: &str,
    pairs: &[(String, String)],
) -> Result<(), CheckResult> {
    let mut seen = HashSet::new();
    for (k, _) in pairs {
        let problem = if k.as_str() < start || k.as_str() > end {
            "a key outside its range"
        } else if !seen.insert(k) {
            "the same key twice"
        } else {
            continue;
        };
        let explanation = format!("#{i} Scan({start:?}, {end:?}) returned {problem}: {k:?}");
        return Err(CheckResult::Violation {
            key: k.clone(),
            explanation,
        });
    }
    Ok(())
}

// ------------------------------------------------------------------------------------
// The search (Wing & Gong, with Lowe's memoization)
// ------------------------------------------------------------------------------------

/// Budget of one search.
struct Limits {
    max_steps: u64,
    max_time: Duration,
    max_memory: usize,
}

impl Limits {
    fn new(options: &CheckOptions) -> Limits {
        Limits {
            max_steps: options.max_steps,
            max_time: options.max_time,
            max_memory: options.max_memory,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Linearizable,
    Violation,
    /// Out of budget.
    Exhausted,
}

struct SearchResult {
    verdict: Verdict,
    /// With a watched event: each state from which it was tried, and whether its reply
    /// was possible there.
    tried: BTreeMap<State, bool>,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// An entry of the event list: the call or the return of `events[event]`.
#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    event: usize,
    /// For a call: the node of its return. For a return: `NIL`.
    ret: usize,
}

/// Calls and returns of the operations with a reply in time order, as a doubly linked
/// list that can take out an operation (its call and return) and put it back in O(1).
struct EventList {
    nodes: Vec<Node>,
}

impl EventList {
    fn new(events: &[KeyEvent]) -> EventList {
        // Sort by time; at equal times calls come first, so touching intervals overlap.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * events.len());
        for (i, e) in events.iter().enumerate() {
            if let Some(ret_at) = e.ret_at {
                order.push((e.call, false, i));
                order.push((ret_at, true, i));
            }
        }
        order.sort_unstable();
        let n = order.len();
        let mut nodes = vec![Node {
            prev: NIL,
            next: if n > 0 { 1 } else { NIL },
            event: NIL,
            ret: NIL,
        }];
        let mut ret_node = vec![NIL; events.len()];
        for (pos, &(_, is_return, event)) in order.iter().enumerate() {
            let index = pos + 1;
            if is_return {
                ret_node[event] = index;
            }
            let next = if index < n { index + 1 } else { NIL };
            nodes.push(Node {
                prev: index - 1,
                next,
                event,
                ret: NIL,
            });
        }
        for (pos, &(_, is_return, event)) in order.iter().enumerate() {
            if !is_return {
                nodes[pos + 1].ret = ret_node[event];
            }
        }
        EventList { nodes }
    }

    fn first(&self) -> usize {
        self.nodes[HEAD].next
    }

    fn is_call(&self, node: usize) -> bool {
        self.nodes[node].ret != NIL
    }

    fn unlink(&mut self, x: usize) {
        let Node { prev, next, .. } = self.nodes[x];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, x: usize) {
        let Node { prev, next, .. } = self.nodes[x];
        self.nodes[prev].next = x;
        if next != NIL {
            self.nodes[next].prev = x;
        }
    }

    /// Takes the operation of call node `call` out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.nodes[call].ret);
    }

    /// Undoes the latest `lift`, which must have been of `call`.
    fn unlift(&mut self, call: usize) {
        self.relink(self.nodes[call].ret);
        self.relink(call);
    }
}

/// Gives each distinct state a small number, so the memo stores numbers, not strings.
#[derive(Default)]
struct States {
    ids: HashMap<State, u32>,
    values: Vec<State>,
}

impl States {
    fn id(&mut self, s: State) -> u32 {
        if let Some(&id) = self.ids.get(&s) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(s.clone());
        self.ids.insert(s, id);
        id
    }
}

/// Searches for a linearization of one key's events. With `watch`, also records the
/// states from which that event was tried (for explanations).
fn search(events: &[KeyEvent], limits: &Limits, watch: Option<usize>) -> SearchResult {
    let mut search = Search::new(events, watch);
    let verdict = search.run(limits);
    SearchResult {
        verdict,
        tried: search.tried,
    }
}

/// Where the enumeration of candidates at the current configuration stands. The
/// candidates are the operations not placed yet whose call comes before the first
/// return still in the list; they are tried in three passes: reads, then the other
/// operations with a reply (earliest return first), then unknown outcomes.
#[derive(Clone, Copy, Debug)]
enum Cursor {
    /// At this list node, looking for reads.
    Reads(usize),
    /// At this index of the current `Level::writes`.
    Writes(usize),
    /// At this position of `Search::unknown`.
    Unknown(usize),
}

/// The candidates of one configuration on the current path, for the last two passes.
struct Level {
    /// How many operations were placed in its configuration.
    depth: usize,
    /// Call nodes of the candidates other than reads, earliest return first.
    writes: Vec<usize>,
    /// Time of the first return in the list: unknown outcomes called after it are not
    /// candidates yet.
    deadline: u64,
}

/// One placed operation, to undo it.
struct Frame {
    event: usize,
    /// Its call node in the list, or `NIL` for an unknown outcome.
    node: usize,
    /// Its position in `Search::unknown`, for an unknown outcome.
    pos: usize,
    before: u32,
    /// A read placed as soon as it was legal: if it fails, so does the configuration
    /// before it, and no other candidate needs trying there.
    forced: bool,
    resume: Cursor,
}

enum Placement {
    Placed,
    /// The model rejects the reply from the current state.
    Illegal,
    /// The resulting configuration, or one that dominates it, was already explored.
    Seen,
}

/// The state of one search. A configuration is (placed operations, model state).
///
/// Candidates are tried earliest return first. Beyond Lowe's algorithm, three sound
/// prunings keep histories with many concurrent reads, concurrent appends or many
/// unknown outcomes tractable:
/// * A read that is a candidate and legal now is placed now, with no alternative tried:
///   in any completion, moving it here breaks no real-time constraint and changes no
///   state.
/// * A configuration is dropped as soon as some candidate's reply is illegal now and
///   cannot become legal with the operations that may still come before its return
///   (see [`reachable`]), instead of when that return is reached.
/// * Operations with unknown outcomes are tried last, and configuration A dominates B
///   if they placed the same operations with replies, are in the same state, and A
///   placed a subset of B's unknown ones: whatever completes B completes A (with the
///   extra unknown ones placed at the end). A configuration is skipped if one that
///   dominates it was seen. The search succeeds once every operation with a reply is
///   placed.
struct Search<'a> {
    events: &'a [KeyEvent],
    /// Calls and returns of the operations with a reply.
    list: EventList,
    /// Operations with unknown outcomes, by call time.
    unknown: Vec<usize>,
    states: States,
    state: u32,
    /// Placed operations with a reply, by event index.
    placed: Vec<u64>,
    /// Placed unknown outcomes, by position in `unknown`.
    placed_unknown: Vec<u64>,
    /// Configurations seen: for each state and set of placed operations with a reply,
    /// the minimal sets of unknown outcomes placed with them.
    seen: HashMap<u32, HashMap<Vec<u64>, Vec<Vec<u64>>>>,
    /// Approximate bytes held by `seen`.
    seen_bytes: usize,
    frames: Vec<Frame>,
    levels: Vec<Level>,
    watch: Option<usize>,
    tried: BTreeMap<State, bool>,
}

impl<'a> Search<'a> {
    fn new(events: &'a [KeyEvent], watch: Option<usize>) -> Search<'a> {
        let mut unknown: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].ret_at.is_none())
            .collect();
        unknown.sort_by_key(|&i| (events[i].call, i));
        let mut states = States::default();
        let state = states.id(None);
        Search {
            events,
            list: EventList::new(events),
            placed: vec![0; events.len().div_ceil(64)],
            placed_unknown: vec![0; unknown.len().div_ceil(64)],
            unknown,
            states,
            state,
            seen: HashMap::new(),
            seen_bytes: 0,
            frames: Vec::new(),
            levels: Vec::new(),
            watch,
            tried: BTreeMap::new(),
        }
    }

    fn run(&mut self, limits: &Limits) -> Verdict {
        let started = Instant::now();
        let mut cursor = Cursor::Reads(self.list.first());
        let mut steps = 0u64;
        loop {
            if self.list.first() == NIL {
                return Verdict::Linearizable; // everything with a reply is placed
            }
            steps += 1;
            if steps > limits.max_steps
                || self.seen_bytes > limits.max_memory
                || (steps & 4095 == 0 && started.elapsed() > limits.max_time)
            {
                return Verdict::Exhausted;
            }
            // Pick the next candidate; `cursor` moves past it. `node` is never NIL in
            // the first two passes: a call's return is always after it in the list.
            let list = &self.list;
            let (event, node, pos, forced) = match cursor {
                Cursor::Reads(node) if list.is_call(node) => {
                    cursor = Cursor::Reads(list.nodes[node].next);
                    let event = list.nodes[node].event;
                    let e = &self.events[event];
                    if e.op == KeyOp::Get {
                        (event, node, NIL, true)
                    } else {
                        // Others are tried later, but one whose reply can never become
                        // legal dooms this configuration now.
                        let state = &self.states.values[self.state as usize];
                        let now = legal(state, &e.op, &e.ret);
                        self.note_tried(event, now);
                        if !now && !self.can_become_legal(node) {
                            match self.backtrack() {
                                Some(resume) => cursor = resume,
                                None => return Verdict::Violation,
                            }
                        }
                        continue;
                    }
                }
                Cursor::Reads(first_return) => {
                    let level = self.level(first_return);
                    self.levels.push(level);
                    cursor = Cursor::Writes(0);
                    continue;
                }
                Cursor::Writes(i) => match self.levels.last().and_then(|l| l.writes.get(i)) {
                    Some(&node) => {
                        cursor = Cursor::Writes(i + 1);
                        (list.nodes[node].event, node, NIL, false)
                    }
                    None => {
                        cursor = Cursor::Unknown(0);
                        continue;
                    }
                },
                Cursor::Unknown(pos) => match self.unknown.get(pos) {
                    Some(&event)
                        if Some(self.events[event].call)
                            <= self.levels.last().map(|l| l.deadline) =>
                    {
                        cursor = Cursor::Unknown(pos + 1);
                        if get(&self.placed_unknown, pos) {
                            continue;
                        }
                        (event, NIL, pos, false)
                    }
                    _ => {
                        // No candidate left: this configuration fails.
                        match self.backtrack() {
                            Some(resume) => cursor = resume,
                            None => return Verdict::Violation,
                        }
                        continue;
                    }
                },
            };
            let doomed = match self.place(event, node, pos, forced, cursor) {
                Placement::Placed => {
                    cursor = Cursor::Reads(self.list.first());
                    false
                }
                Placement::Seen => forced,
                Placement::Illegal => forced && !self.can_become_legal(node),
            };
            if doomed {
                match self.backtrack() {
                    Some(resume) => cursor = resume,
                    None => return Verdict::Violation,
                }
            }
        }
    }

    /// Places `event` if the model accepts its reply and the configuration is new.
    fn place(
        &mut self,
        event: usize,
        node: usize,
        pos: usize,
        forced: bool,
        resume: Cursor,
    ) -> Placement {
        let e = &self.events[event];
        let next = step(&self.states.values[self.state as usize], &e.op, &e.ret);
        self.note_tried(event, next.is_some());
        let Some(next) = next else {
            return Placement::Illegal;
        };
        let next = self.states.id(next);
        self.mark(event, node, pos, true);
        if !self.remember(next) {
            self.mark(event, node, pos, false);
            return Placement::Seen;
        }
        self.frames.push(Frame {
            event,
            node,
            pos,
            before: self.state,
            forced,
            resume,
        });
        self.state = next;
        if node != NIL {
            self.list.lift(node);
        }
        Placement::Placed
    }

    /// For explanations: `event` was tried from the current state; `legal` tells whether
    /// its reply was possible there.
    fn note_tried(&mut self, event: usize, legal: bool) {
        if self.watch == Some(event) && self.tried.len() < MAX_SHOWN_STATES {
            let state = &self.states.values[self.state as usize];
            let entry = self.tried.entry(state.clone()).or_insert(false);
            *entry |= legal;
        }
    }

    /// Whether the operation of call node `call`, not placed yet, could still reply as it
    /// did: some of the operations that may come before its return could make it legal.
    fn can_become_legal(&self, call: usize) -> bool {
        let list = &self.list;
        let e = &self.events[list.nodes[call].event];
        let mut available = Vec::new();
        let mut node = list.first();
        while node != list.nodes[call].ret && node != NIL {
            if list.is_call(node) && node != call {
                available.push(&self.events[list.nodes[node].event].op);
            }
            node = list.nodes[node].next;
        }
        for (pos, &u) in self.unknown.iter().enumerate() {
            if Some(self.events[u].call) > e.ret_at {
                break;
            }
            if !get(&self.placed_unknown, pos) {
                available.push(&self.events[u].op);
            }
        }
        reachable(&self.states.values[self.state as usize], &e.ret, &available)
    }

    /// The candidates of the current configuration for the last two passes;
    /// `first_return` is the first return node in the list.
    fn level(&self, first_return: usize) -> Level {
        let list = &self.list;
        let mut writes = Vec::new();
        let mut node = list.first();
        while node != first_return {
            if self.events[list.nodes[node].event].op != KeyOp::Get {
                writes.push(node);
            }
            node = list.nodes[node].next;
        }
        writes.sort_by_key(|&n| (self.events[list.nodes[n].event].ret_at, n));
        let deadline = self.events[list.nodes[first_return].event]
            .ret_at
            .unwrap_or(u64::MAX);
        Level {
            depth: self.frames.len(),
            writes,
            deadline,
        }
    }

    /// Undoes placements up to and including the latest one not forced, and returns
    /// where to resume there; `None` when there is nothing left to undo.
    fn backtrack(&mut self) -> Option<Cursor> {
        while let Some(f) = self.frames.pop() {
            while self
                .levels
                .last()
                .is_some_and(|l| l.depth > self.frames.len())
            {
                self.levels.pop();
            }
            self.state = f.before;
            self.mark(f.event, f.node, f.pos, false);
            if f.node != NIL {
                self.list.unlift(f.node);
            }
            if !f.forced {
                return Some(f.resume);
            }
        }
        None
    }

    fn mark(&mut self, event: usize, node: usize, pos: usize, on: bool) {
        if node != NIL {
            set(&mut self.placed, event, on);
        } else {
            set(&mut self.placed_unknown, pos, on);
        }
    }

    /// Records the current placed sets with `state`; false if a configuration that
    /// dominates it was seen.
    fn remember(&mut self, state: u32) -> bool {
        // Rough sizes: a bitset's words plus the vector and hash table entry around it.
        let unknown_bytes = 8 * self.placed_unknown.len() + 32;
        let by_placed = self.seen.entry(state).or_default();
        let Some(minimal) = by_placed.get_mut(self.placed.as_slice()) else {
            by_placed.insert(self.placed.clone(), vec![self.placed_unknown.clone()]);
            self.seen_bytes += 8 * self.placed.len() + 64 + unknown_bytes;
            return true;
        };
        if minimal.iter().any(|u| is_subset(u, &self.placed_unknown)) {
            return false;
        }
        minimal.retain(|u| !is_subset(&self.placed_unknown, u));
        minimal.push(self.placed_unknown.clone());
        self.seen_bytes += unknown_bytes;
        true
    }
}

fn get(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn set(bits: &mut [u64], i: usize, on: bool) {
    if on {
        bits[i / 64] |= 1 << (i % 64);
    } else {
        bits[i / 64] &= !(1 << (i % 64));
    }
}

fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x & !y == 0)
}

// ------------------------------------------------------------------------------------
// Explaining a violation
// ------------------------------------------------------------------------------------

/// How many possible values, and how many operations, an explanation shows at most.
const MAX_SHOWN_STATES: usize = 12;
const MAX_SHOWN_OPS: usize = 30;

/// A failing key history, cut down for a human.
struct Core {
    events: Vec<KeyEvent>,
    /// Origin of the operation whose reply is the first that no order explains.
    first_bad: Option<usize>,
}

/// Shrinks a failing key history, within `explain_time`, with sound steps only: each
/// keeps it failing, and a failure of the result implies a failure of the input.
fn shrink(events: Vec<KeyEvent>, options: &CheckOptions) -> Core {
    let deadline = Instant::now() + options.explain_time;
    let limits = Limits {
        max_time: options.explain_time,
        ..Limits::new(options)
    };
    let fails = |evs: &[KeyEvent]| {
        Instant::now() < deadline && search(evs, &limits, None).verdict == Verdict::Violation
    };

    // 1. Cut at the earliest return time T at which the history already fails (see
    // `cut`). Failing is monotonic in T, so binary search. The operation returning at T
    // is the first whose reply no order explains.
    let mut times: Vec<u64> = events.iter().filter_map(|e| e.ret_at).collect();
    times.sort_unstable();
    times.dedup();
    let (mut lo, mut hi) = (0, times.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails(&cut(&events, times[mid])) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let Some(&t) = times.get(hi) else {
        return Core {
            events,
            first_bad: None,
        };
    };
    let mut core = cut(&events, t);
    let first_bad = core.iter().find(|e| e.ret_at == Some(t)).map(|e| e.origin);

    // 2. Drop reads the failure does not need: all at once if possible, else one at a
    // time, latest first. A read constrains nothing else, so this is sound.
    let needed = |e: &KeyEvent| e.op != KeyOp::Get || Some(e.origin) == first_bad;
    let writes_only: Vec<KeyEvent> = core.iter().filter(|e| needed(e)).cloned().collect();
    if fails(&writes_only) {
        core = writes_only;
    } else {
        for i in (0..core.len()).rev() {
            if !needed(&core[i]) {
                let mut candidate = core.clone();
                candidate.remove(i);
                if fails(&candidate) {
                    core = candidate;
                }
            }
        }
    }
    Core {
        events: core,
        first_bad,
    }
}

/// The history cut at time `t`: what returned by `t`, plus the writes invoked by `t` that
/// had not returned, as unknown outcomes. Sound: everything invoked after `t` is placed
/// after everything that returned by `t` in any linearization, and reads change nothing,
/// so a linearization of the whole history restricts to one of the cut.
fn cut(events: &[KeyEvent], t: u64) -> Vec<KeyEvent> {
    let mut kept = Vec::new();
    for e in events {
        match e.ret_at {
            Some(at) if at <= t => kept.push(e.clone()),
            _ if e.op != KeyOp::Get && e.call <= t => kept.push(KeyEvent {
                ret: KeyRet::Any,
                ret_at: None,
                ..e.clone()
            }),
            _ => {}
        }
    }
    kept
}

/// The human-readable account of a failing key.
fn explain(key: &str, core: &Core, ops: &[Operation], limits: &Limits) -> String {
    let mut out = String::new();
    let bad = core
        .first_bad
        .and_then(|b| core.events.iter().position(|e| e.origin == b));
    if let Some(b) = bad {
        let e = &core.events[b];
        let tried = search(&core.events, limits, Some(b)).tried;
        out.push_str(&format!(
            "{}\nis the first reply that no order explains: the operations that returned \
             before it fit some order, but not together with it.\n",
            describe(key, e, ops)
        ));
        out.push_str(&possible_values(key, e.origin, &tried));
    }
    let mut sorted: Vec<&KeyEvent> = core.events.iter().collect();
    sorted.sort_by_key(|e| (e.call, e.origin));
    let skipped = sorted.len().saturating_sub(MAX_SHOWN_OPS);
    out.push_str(&format!(
        "The {} operations on {key:?} that still fail (reads not needed are left out; \
         [call → return] in logical time, ∞ = unknown outcome):\n",
        sorted.len()
    ));
    if skipped > 0 {
        out.push_str(&format!("  ... {skipped} earlier operations not shown\n"));
    }
    for e in &sorted[skipped..] {
        out.push_str(&format!("  {}\n", describe(key, e, ops)));
    }
    out
}

/// What the key could hold when operation #`origin` could take effect, and whether its
/// reply fits any of it.
fn possible_values(key: &str, origin: usize, tried: &BTreeMap<State, bool>) -> String {
    if tried.is_empty() {
        return format!(
            "No order of the operations before it reaches a point where #{origin} could \
             take effect.\n"
        );
    }
    let values: Vec<String> = tried.keys().map(show_state).collect();
    let more = if tried.len() >= MAX_SHOWN_STATES {
        ", ..."
    } else {
        ""
    };
    let mut out = format!(
        "When #{origin} could take effect, {key:?} could only have been: {}{more}\n",
        values.join(", ")
    );
    let fits: Vec<String> = tried
        .iter()
        .filter(|(_, legal)| **legal)
        .map(|(s, _)| show_state(s))
        .collect();
    if fits.is_empty() {
        out.push_str("Its reply is possible from none of them.\n");
    } else {
        out.push_str(&format!(
            "Its reply fits {}, but then the replies that returned before it cannot all be \
             explained.\n",
            fits.join(", ")
        ));
    }
    out
}

/// One line about an event: `#origin client C [call → return] Op → reply`.
fn describe(key: &str, e: &KeyEvent, ops: &[Operation]) -> String {
    let o = &ops[e.origin];
    let what = match &o.op {
        Op::Get { .. } => format!("Get({key:?})"),
        Op::Put { value, .. } => format!("Put({key:?}, {})", show(value)),
        Op::Append { value, .. } => format!("Append({key:?}, {})", show(value)),
        Op::Swap { value, .. } => format!("Swap({key:?}, {})", show(value)),
        Op::Delete { .. } => format!("Delete({key:?})"),
        Op::Scan { start, end } => format!("Scan({start:?}, {end:?}), as a read of {key:?}"),
        Op::Clear => format!("Clear, as a Delete of {key:?}"),
        Op::Incr { by, .. } => format!("Incr({key:?}, {by})"),
        Op::PutIf { value, absent, .. } => format!(
            "PutIf({key:?}, {}, {})",
            show(value),
            if *absent { "if missing" } else { "if present" }
        ),
        Op::Take { .. } => format!("Take({key:?})"),
        Op::AppendLen { value, .. } => format!("AppendLen({key:?}, {})", show(value)),
        Op::Keys { start, limit } => {
            format!("Keys({start:?}, {limit}), as a presence check of {key:?}")
        }
    };
    let (ret_at, reply) = match &o.outcome {
        Outcome::Pending => ("∞".to_string(), "no reply".to_string()),
        Outcome::TimedOut => ("∞".to_string(), "timed out".to_string()),
        Outcome::Returned { at, ret } => (
            at.to_string(),
            match (ret, &e.ret) {
                (Ret::Existed(true), _) => "found".to_string(),
                (Ret::Existed(false), _) => "not_found".to_string(),
                (Ret::Done, _) => "done".to_string(),
                (Ret::Counter(Some(n)), _) => n.to_string(),
                (Ret::Counter(None), _) => "not an integer".to_string(),
                (Ret::Length(n), _) => format!("length {n}"),
                (Ret::Keys(_), KeyRet::Present(true)) => "present".to_string(),
                (Ret::Keys(_), _) => "absent".to_string(),
                (Ret::Value(v), _) | (Ret::Pairs(_), KeyRet::Value(v)) => show_state(v),
                (Ret::Pairs(_), _) => "pairs".to_string(),
            },
        ),
    };
    let relaxed = if e.ret_at.is_none() && matches!(o.outcome, Outcome::Returned { .. }) {
        "   [returned after the failure: counted as an unknown outcome]"
    } else {
        ""
    };
    format!(
        "#{} client {} [{} → {ret_at}] {what} → {reply}{relaxed}",
        e.origin, o.client, o.call
    )
}

fn show_state(s: &State) -> String {
    s.as_deref().map_or("missing".to_string(), show)
}

/// A value quoted, and shortened if long.
fn show(v: &str) -> String {
    const MAX: usize = 60;
    if v.chars().count() <= MAX {
        return format!("{v:?}");
    }
    let head: String = v.chars().take(MAX).collect();
    format!("{head:?}… ({} bytes)", v.len())
}
