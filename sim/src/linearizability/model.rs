//! The per-key model: a key's state, the operations on one key, and which
//! replies a state allows; a `Scan` or `Keys` expanded into reads of single keys.

use std::collections::{BTreeSet, HashMap, HashSet};

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
pub(super) fn legal(state: &State, op: &KeyOp, reply: &KeyRet) -> bool {
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
pub(super) fn reachable(state: &State, reply: &KeyRet, available: &[&KeyOp]) -> bool {
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
pub(super) struct KeyEvent {
    pub(super) op: KeyOp,
    pub(super) ret: KeyRet,
    pub(super) call: u64,
    /// `None`: unknown outcome, return at +∞.
    pub(super) ret_at: Option<u64>,
    /// Index of the [`Operation`] it came from.
    pub(super) origin: usize,
}
