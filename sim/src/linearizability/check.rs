//! Checking a history: split by key, validated, each key searched on its own.

use super::explain::{explain, shrink};
use super::history::{History, Op, Operation, Outcome, Ret};
use super::model::{expand_keys, expand_scan, KeyEvent, KeyOp, KeyRet};
use super::options::CheckOptions;
use super::search::{search, Limits, Verdict};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

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
