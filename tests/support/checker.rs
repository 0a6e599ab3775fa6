//! Helpers of the linearizability checker's tests: recording hand-written
//! operations at explicit logical times, and asserting the verdict.

use super::linearizability::{check, CheckResult, History, Op, Outcome, Ret};

/// Records an operation by `client` that ran from `call` to `ret` and replied `reply`.
pub fn done(h: &History, client: u64, call: u64, ret: u64, op: Op, reply: Ret) {
    h.record(
        client,
        op,
        call,
        Outcome::Returned {
            at: ret,
            ret: reply,
        },
    );
}

/// Records an operation by `client` invoked at `call` whose outcome is unknown.
pub fn lost(h: &History, client: u64, call: u64, op: Op) {
    h.record(client, op, call, Outcome::TimedOut);
}

/// An `Existed` reply.
pub fn found(existed: bool) -> Ret {
    Ret::Existed(existed)
}

/// A `Pairs` reply (a scan's), from `(key, value)` pairs.
pub fn pairs(kvs: &[(&str, &str)]) -> Ret {
    Ret::Pairs(
        kvs.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Asserts that `h` is linearizable.
#[track_caller]
pub fn assert_ok(h: &History) {
    let r = check(h);
    assert!(r.is_ok(), "expected linearizable, got: {r}");
}

/// Asserts a violation on `key` and returns its explanation.
#[track_caller]
pub fn assert_violation(h: &History, key: &str) -> String {
    match check(h) {
        CheckResult::Violation {
            key: k,
            explanation,
        } if k == key => explanation,
        r => panic!("expected a violation on {key:?}, got: {r}"),
    }
}
