//! Explaining a violation: the key's history shrunk to what fails, the reply no
//! order explains, and the values the key could have had.

use super::history::{Op, Operation, Outcome, Ret};
use super::model::{KeyEvent, KeyOp, KeyRet, State};
use super::options::CheckOptions;
use super::search::{search, Limits, Verdict, MAX_SHOWN_STATES};
use std::collections::BTreeMap;
use std::time::Instant;

/// How many operations an explanation shows at most.
const MAX_SHOWN_OPS: usize = 30;

/// A failing key history, cut down for a human.
pub(super) struct Core {
    pub(super) events: Vec<KeyEvent>,
    /// Origin of the operation whose reply is the first that no order explains.
    pub(super) first_bad: Option<usize>,
}

/// Shrinks a failing key history, within `explain_time`, with sound steps only: each
/// keeps it failing, and a failure of the result implies a failure of the input.
pub(super) fn shrink(events: Vec<KeyEvent>, options: &CheckOptions) -> Core {
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
pub(super) fn explain(key: &str, core: &Core, ops: &[Operation], limits: &Limits) -> String {
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
