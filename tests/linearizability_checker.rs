//! Tests of the linearizability checker in `support::linearizability` itself.
//!
//! Hand-written histories use explicit logical times: `[call, return]`, where touching
//! intervals count as concurrent. Randomized histories are linearizable by construction:
//! each operation is applied to an in-memory map at one instant between its invocation
//! and its reply.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::linearizability::{
    check, check_with, expand_scan, step, CheckOptions, CheckResult, History, KeyOp, KeyRet, Op,
    OpId, Operation, Outcome, Ret,
};
use support::seed::Rng;

// ---- helpers ------------------------------------------------------------------------

/// Records an operation by `client` that ran from `call` to `ret` and replied `reply`.
fn done(h: &History, client: u64, call: u64, ret: u64, op: Op, reply: Ret) {
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
fn lost(h: &History, client: u64, call: u64, op: Op) {
    h.record(client, op, call, Outcome::TimedOut);
}

fn found(existed: bool) -> Ret {
    Ret::Existed(existed)
}

fn pairs(kvs: &[(&str, &str)]) -> Ret {
    Ret::Pairs(
        kvs.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[track_caller]
fn assert_ok(h: &History) {
    let r = check(h);
    assert!(r.is_ok(), "expected linearizable, got: {r}");
}

/// Asserts a violation on `key` and returns its explanation.
#[track_caller]
fn assert_violation(h: &History, key: &str) -> String {
    match check(h) {
        CheckResult::Violation {
            key: k,
            explanation,
        } if k == key => explanation,
        r => panic!("expected a violation on {key:?}, got: {r}"),
    }
}

// ---- the model ----------------------------------------------------------------------

#[test]
fn step_follows_the_model() {
    let a = Some("a".to_string());
    assert_eq!(step(&None, &KeyOp::Get, &KeyRet::Value(None)), Some(None));
    assert_eq!(step(&a, &KeyOp::Get, &KeyRet::Value(None)), None);
    assert_eq!(
        step(&None, &KeyOp::Append("x".into()), &KeyRet::Existed(false)),
        Some(Some("x".into()))
    );
    assert_eq!(
        step(&a, &KeyOp::Append("x".into()), &KeyRet::Existed(true)),
        Some(Some("ax".into()))
    );
    assert_eq!(
        step(&a, &KeyOp::Swap("b".into()), &KeyRet::Value(a.clone())),
        Some(Some("b".into()))
    );
    assert_eq!(step(&a, &KeyOp::Delete, &KeyRet::Existed(false)), None);
    assert_eq!(step(&a, &KeyOp::Delete, &KeyRet::Any), Some(None));
    // A reply of the wrong kind is never legal.
    assert_eq!(step(&a, &KeyOp::Get, &KeyRet::Existed(true)), None);
}

#[test]
fn incr_counts_on_integers_only() {
    let five = Some("5".to_string());
    let incr = KeyOp::Incr;
    assert_eq!(
        step(&None, &incr(3), &KeyRet::Counter(Some(3))),
        Some(Some("3".into()))
    );
    assert_eq!(
        step(&five, &incr(-7), &KeyRet::Counter(Some(-2))),
        Some(Some("-2".into()))
    );
    assert_eq!(step(&five, &incr(1), &KeyRet::Counter(Some(7))), None);
    // Not the counter's own decimal form: refused, nothing changes.
    for bad in ["a", "05", "+5", " 5", "", "5.0"] {
        let s = Some(bad.to_string());
        assert_eq!(
            step(&s, &incr(1), &KeyRet::Counter(None)),
            Some(s.clone()),
            "{bad:?}"
        );
        assert_eq!(step(&s, &incr(1), &KeyRet::Counter(Some(1))), None);
    }
    let max = Some(i64::MAX.to_string());
    assert_eq!(
        step(&max, &incr(1), &KeyRet::Counter(None)),
        Some(max.clone()),
        "an overflow changes nothing"
    );
}

#[test]
fn conditional_puts_takes_and_lengths_follow_the_store() {
    let a = Some("a".to_string());
    let put_if = |v: &str, absent| KeyOp::PutIf(v.into(), absent);
    // Written only when the presence matches; the reply is the old value.
    assert_eq!(
        step(&None, &put_if("b", true), &KeyRet::Value(None)),
        Some(Some("b".into()))
    );
    assert_eq!(
        step(&a, &put_if("b", true), &KeyRet::Value(a.clone())),
        Some(a.clone())
    );
    assert_eq!(
        step(&a, &put_if("b", false), &KeyRet::Value(a.clone())),
        Some(Some("b".into()))
    );
    assert_eq!(
        step(&None, &put_if("b", false), &KeyRet::Value(None)),
        Some(None)
    );
    assert_eq!(step(&a, &put_if("b", true), &KeyRet::Value(None)), None);
    assert_eq!(
        step(&a, &KeyOp::Take, &KeyRet::Value(a.clone())),
        Some(None)
    );
    assert_eq!(step(&a, &KeyOp::Take, &KeyRet::Value(None)), None);
    let append = KeyOp::AppendLen("bc".into());
    assert_eq!(
        step(&a, &append, &KeyRet::Length(3)),
        Some(Some("abc".into()))
    );
    assert_eq!(
        step(&None, &append, &KeyRet::Length(2)),
        Some(Some("bc".into()))
    );
    assert_eq!(step(&a, &append, &KeyRet::Length(2)), None);
}

/// A Keys reply checks presence up to its last key when full, to the end when
/// not: a key it skipped that must exist, or a phantom key, is a violation.
#[test]
fn a_keys_reply_is_a_presence_check_up_to_where_it_stopped() {
    let h = History::new();
    done(&h, 1, 0, 1, Op::put("a", "1"), found(false));
    done(&h, 1, 2, 3, Op::put("c", "1"), found(false));
    done(&h, 2, 4, 5, Op::keys("a", 1), Ret::Keys(vec!["a".into()]));
    done(&h, 2, 6, 7, Op::keys("b", 5), Ret::Keys(vec!["c".into()]));
    assert_ok(&h);
    // It skipped "a", which exists.
    let h = History::new();
    done(&h, 1, 0, 1, Op::put("a", "1"), found(false));
    done(&h, 2, 2, 3, Op::keys("", 5), Ret::Keys(Vec::new()));
    assert_violation(&h, "a");
    // "b" was never written.
    let h = History::new();
    done(&h, 1, 0, 1, Op::put("a", "1"), found(false));
    done(
        &h,
        2,
        2,
        3,
        Op::keys("a", 5),
        Ret::Keys(vec!["a".into(), "b".into()]),
    );
    assert_violation(&h, "b");
}

/// Two SETNX that both won, or an APPEND applied twice, are violations.
#[test]
fn a_put_if_that_won_twice_or_a_doubled_append_is_a_violation() {
    let h = History::new();
    done(&h, 1, 0, 1, Op::put_if("k", "1", true), Ret::Value(None));
    done(&h, 2, 2, 3, Op::put_if("k", "2", true), Ret::Value(None));
    assert_violation(&h, "k");
    let h = History::new();
    done(&h, 1, 0, 1, Op::append_len("k", "ab"), Ret::Length(2));
    done(&h, 1, 2, 3, Op::append_len("k", "c"), Ret::Length(5));
    assert_violation(&h, "k");
    // The same two SETNX, concurrent with a GETDEL in between: legal.
    let h = History::new();
    done(&h, 1, 0, 5, Op::put_if("k", "1", true), Ret::Value(None));
    done(&h, 3, 1, 6, Op::take("k"), Ret::value("1"));
    done(&h, 2, 2, 7, Op::put_if("k", "2", true), Ret::Value(None));
    done(&h, 1, 8, 9, Op::get("k"), Ret::value("2"));
    assert_ok(&h);
}

/// An Incr applied twice (a retry executed again) shows as a sum no order of the
/// calls explains.
#[test]
fn an_incr_applied_twice_is_a_violation() {
    let h = History::new();
    done(&h, 1, 0, 1, Op::incr("n", 1), Ret::Counter(Some(1)));
    done(&h, 1, 2, 3, Op::incr("n", 1), Ret::Counter(Some(3)));
    assert_violation(&h, "n");
    let h = History::new();
    done(&h, 1, 0, 1, Op::incr("n", 1), Ret::Counter(Some(1)));
    done(&h, 1, 2, 3, Op::incr("n", 1), Ret::Counter(Some(2)));
    done(&h, 1, 4, 5, Op::append("n", "x"), found(true));
    done(&h, 1, 6, 7, Op::incr("n", 1), Ret::Counter(None));
    done(&h, 1, 8, 9, Op::get("n"), Ret::value("2x"));
    assert_ok(&h);
}

// ---- sequential histories ------------------------------------------------------------

#[test]
fn sequential_history_of_every_operation_is_accepted() {
    let h = History::new();
    let ops = [
        (Op::get("k"), Ret::missing()),
        (Op::delete("k"), found(false)),
        (Op::append("k", "a"), found(false)),
        (Op::get("k"), Ret::value("a")),
        (Op::put("k", "b"), found(true)),
        (Op::append("k", "c"), found(true)),
        (Op::swap("k", "d"), Ret::value("bc")),
        (Op::scan("a", "z"), pairs(&[("k", "d")])),
        (Op::delete("k"), found(true)),
        (Op::swap("k", "e"), Ret::missing()),
        (Op::put("j", "x"), found(false)),
        (Op::Clear, Ret::Done),
        (Op::scan("a", "z"), pairs(&[])),
        (Op::get("j"), Ret::missing()),
        (Op::put("k", "f"), found(false)),
    ];
    for (t, (op, reply)) in (0..).step_by(2).zip(ops) {
        done(&h, 0, t, t + 1, op, reply);
    }
    assert_ok(&h);
}

#[test]
fn empty_history_is_accepted() {
    assert_ok(&History::new());
}

#[test]
fn wrong_get_result_is_rejected() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "a"), found(false));
    done(&h, 0, 2, 3, Op::get("k"), Ret::value("b"));
    let why = assert_violation(&h, "k");
    assert!(why.contains("Get(\"k\")"), "{why}");
}

#[test]
fn get_of_a_deleted_key_must_be_missing() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "a"), found(false));
    done(&h, 0, 2, 3, Op::delete("k"), found(true));
    done(&h, 0, 4, 5, Op::get("k"), Ret::value("a"));
    assert_violation(&h, "k");
}

#[test]
fn put_existed_reply_is_checked() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "a"), found(true));
    assert_violation(&h, "k");
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "a"), found(false));
    done(&h, 0, 2, 3, Op::put("k", "b"), found(false));
    assert_violation(&h, "k");
}

#[test]
fn append_existed_reply_is_checked() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::append("k", "a"), found(false));
    done(&h, 0, 2, 3, Op::append("k", "b"), found(false));
    assert_violation(&h, "k");
}

#[test]
fn delete_existed_reply_is_checked() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::delete("k"), found(true));
    assert_violation(&h, "k");
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "a"), found(false));
    done(&h, 0, 2, 3, Op::delete("k"), found(false));
    assert_violation(&h, "k");
}

#[test]
fn swap_old_value_is_checked() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "a"), found(false));
    done(&h, 0, 2, 3, Op::swap("k", "b"), Ret::missing());
    assert_violation(&h, "k");
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "a"), found(false));
    done(&h, 0, 2, 3, Op::swap("k", "b"), Ret::value("a"));
    done(&h, 0, 4, 5, Op::swap("k", "c"), Ret::value("a"));
    assert_violation(&h, "k");
}

// ---- concurrency --------------------------------------------------------------------

#[test]
fn read_concurrent_with_a_write_may_see_either_value() {
    for seen in [Ret::value("a"), Ret::value("b")] {
        let h = History::new();
        done(&h, 0, 0, 1, Op::put("k", "a"), found(false));
        done(&h, 1, 2, 5, Op::put("k", "b"), found(true));
        done(&h, 2, 3, 4, Op::get("k"), seen);
        assert_ok(&h);
    }
}

#[test]
fn read_after_two_ordered_writes_must_see_the_second() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "w1"), found(false));
    done(&h, 1, 2, 3, Op::put("k", "w2"), found(true));
    done(&h, 2, 4, 5, Op::get("k"), Ret::value("w1"));
    assert_violation(&h, "k");
}

#[test]
fn concurrent_writes_accept_any_order_that_works() {
    // Both writes overlap; the reads after them fix w2 then w1 — legal.
    let h = History::new();
    done(&h, 0, 0, 10, Op::put("k", "w1"), found(true));
    done(&h, 1, 1, 9, Op::put("k", "w2"), found(false));
    done(&h, 2, 11, 12, Op::get("k"), Ret::value("w1"));
    assert_ok(&h);
    // ...but then both cannot claim the key was missing.
    let h = History::new();
    done(&h, 0, 0, 10, Op::put("k", "w1"), found(false));
    done(&h, 1, 1, 9, Op::put("k", "w2"), found(false));
    assert_violation(&h, "k");
}

#[test]
fn reads_going_back_in_time_are_rejected() {
    // One long write; a read sees the new value, a later read sees the old one again.
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "old"), found(false));
    done(&h, 1, 2, 20, Op::put("k", "new"), found(true));
    done(&h, 2, 3, 4, Op::get("k"), Ret::value("new"));
    done(&h, 3, 5, 6, Op::get("k"), Ret::value("old"));
    let why = assert_violation(&h, "k");
    // The explanation keeps both reads and the writes, and drops nothing it needs.
    for op in ["#0", "#1", "#2", "#3"] {
        assert!(why.contains(op), "{op} missing from:\n{why}");
    }
}

#[test]
fn explanation_names_the_bad_reply_and_the_possible_values() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::append("k", "a"), found(false));
    lost(&h, 1, 2, Op::append("k", "b"));
    done(&h, 2, 3, 4, Op::get("k"), Ret::value("a"));
    done(&h, 2, 5, 6, Op::get("k"), Ret::value("abb"));
    done(&h, 2, 7, 8, Op::get("k"), Ret::value("zzz"));
    let why = assert_violation(&h, "k");
    assert!(
        why.starts_with("#3 client 2 [5 → 6] Get(\"k\") → \"abb\"\n"),
        "{why}"
    );
    assert!(
        why.contains("could only have been: \"a\", \"ab\"\n"),
        "{why}"
    );
    assert!(
        why.contains("#1 client 1 [2 → ∞] Append(\"k\", \"b\") → timed out"),
        "{why}"
    );
    // Neither the read it does not need nor anything after it is listed.
    assert!(!why.contains("#2 ") && !why.contains("#4 "), "{why}");
}

#[test]
fn two_readers_disagreeing_on_order_are_rejected() {
    // Writes a and b are concurrent; one reader sees a then b, the other b then a.
    let h = History::new();
    done(&h, 0, 0, 10, Op::put("k", "a"), found(false));
    done(&h, 1, 0, 10, Op::put("k", "b"), found(true));
    done(&h, 2, 1, 2, Op::get("k"), Ret::value("a"));
    done(&h, 2, 3, 4, Op::get("k"), Ret::value("b"));
    done(&h, 3, 5, 6, Op::get("k"), Ret::value("b"));
    assert_ok(&h);
    done(&h, 3, 7, 8, Op::get("k"), Ret::value("a"));
    assert_violation(&h, "k");
}

#[test]
fn keys_are_checked_independently() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("a", "1"), found(false));
    done(&h, 0, 2, 3, Op::put("b", "1"), found(false));
    done(&h, 1, 4, 5, Op::get("a"), Ret::value("1"));
    done(&h, 1, 6, 7, Op::get("b"), Ret::value("2"));
    assert_violation(&h, "b");
}

// ---- appends ------------------------------------------------------------------------

#[test]
fn sequential_appends_are_seen_in_order() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::append("k", "x"), found(false));
    done(&h, 0, 2, 3, Op::append("k", "y"), found(true));
    done(&h, 1, 4, 5, Op::get("k"), Ret::value("yx"));
    assert_violation(&h, "k");
}

#[test]
fn concurrent_appends_may_be_seen_in_either_order() {
    for seen in ["xy", "yx"] {
        let h = History::new();
        done(
            &h,
            0,
            0,
            3,
            Op::append("k", "x"),
            Ret::Existed(seen == "yx"),
        );
        done(
            &h,
            1,
            1,
            2,
            Op::append("k", "y"),
            Ret::Existed(seen == "xy"),
        );
        done(&h, 2, 4, 5, Op::get("k"), Ret::value(seen));
        assert_ok(&h);
    }
}

// ---- unknown outcomes ---------------------------------------------------------------

#[test]
fn timed_out_append_may_or_may_not_take_effect() {
    for seen in ["a", "ab"] {
        let h = History::new();
        done(&h, 0, 0, 1, Op::append("k", "a"), found(false));
        lost(&h, 1, 2, Op::append("k", "b"));
        done(&h, 2, 3, 4, Op::get("k"), Ret::value(seen));
        assert_ok(&h);
    }
}

#[test]
fn timed_out_append_may_take_effect_late() {
    // Not seen by the first read, seen by the second.
    let h = History::new();
    done(&h, 0, 0, 1, Op::append("k", "a"), found(false));
    lost(&h, 1, 2, Op::append("k", "b"));
    done(&h, 2, 3, 4, Op::get("k"), Ret::value("a"));
    done(&h, 2, 5, 6, Op::get("k"), Ret::value("ab"));
    assert_ok(&h);
    // But once seen it cannot vanish.
    done(&h, 2, 7, 8, Op::get("k"), Ret::value("a"));
    assert_violation(&h, "k");
}

#[test]
fn timed_out_append_cannot_take_effect_twice() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::append("k", "a"), found(false));
    lost(&h, 1, 2, Op::append("k", "b"));
    done(&h, 2, 3, 4, Op::get("k"), Ret::value("abb"));
    assert_violation(&h, "k");
}

#[test]
fn timed_out_write_is_invisible_before_its_invocation() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::get("k"), Ret::value("v"));
    lost(&h, 1, 2, Op::put("k", "v"));
    assert_violation(&h, "k");
    // Concurrent with it, it may be seen.
    let h = History::new();
    lost(&h, 1, 0, Op::put("k", "v"));
    done(&h, 0, 1, 2, Op::get("k"), Ret::value("v"));
    assert_ok(&h);
}

#[test]
fn read_without_reply_is_ignored() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k", "a"), found(false));
    lost(&h, 1, 2, Op::get("k"));
    h.invoke(2, Op::scan("a", "z"));
    assert_ok(&h);
}

#[test]
fn never_returned_operation_is_an_unknown_outcome() {
    let h = History::new();
    h.invoke(0, Op::put("k", "a")); // no reply recorded
    let id = h.invoke(1, Op::get("k"));
    h.ret(id, Ret::value("a"));
    assert_ok(&h);
}

// ---- scans and clears -----------------------------------------------------------------

#[test]
fn expand_scan_observes_every_known_key_in_range() {
    let keys = ["a", "b", "c", "d"].iter().map(|k| k.to_string()).collect();
    let seen = expand_scan("b", "c", &[("b".into(), "1".into())], &keys);
    assert_eq!(
        seen,
        vec![
            ("b".to_string(), Some("1".to_string())),
            ("c".to_string(), None)
        ]
    );
    assert!(expand_scan("d", "a", &[], &keys).is_empty());
}

#[test]
fn scan_omitting_a_key_written_before_it_is_rejected() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("k1", "a"), found(false));
    done(&h, 0, 2, 3, Op::put("k2", "b"), found(false));
    done(&h, 1, 4, 5, Op::scan("k0", "k9"), pairs(&[("k1", "a")]));
    let why = assert_violation(&h, "k2");
    assert!(why.contains("Scan(\"k0\", \"k9\")"), "{why}");
}

#[test]
fn scan_concurrent_with_writes_may_see_some_of_them() {
    let h = History::new();
    done(&h, 0, 0, 10, Op::put("k1", "a"), found(false));
    done(&h, 1, 0, 10, Op::put("k2", "b"), found(false));
    done(&h, 2, 1, 2, Op::scan("k0", "k9"), pairs(&[("k2", "b")]));
    // A key outside the range is not observed by the scan.
    done(&h, 2, 3, 4, Op::put("z", "c"), found(false));
    done(
        &h,
        2,
        5,
        6,
        Op::scan("k0", "k9"),
        pairs(&[("k1", "a"), ("k2", "b")]),
    );
    assert_ok(&h);
}

#[test]
fn scan_seeing_a_value_never_written_is_rejected() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::scan("a", "z"), pairs(&[("q", "ghost")]));
    assert_violation(&h, "q");
}

#[test]
fn scan_returning_a_key_outside_its_range_is_rejected() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("z", "a"), found(false));
    done(&h, 0, 2, 3, Op::scan("a", "b"), pairs(&[("z", "a")]));
    let why = assert_violation(&h, "z");
    assert!(why.contains("outside its range"), "{why}");
}

#[test]
fn clear_deletes_every_key() {
    let h = History::new();
    done(&h, 0, 0, 1, Op::put("a", "1"), found(false));
    done(&h, 0, 2, 3, Op::put("b", "2"), found(false));
    done(&h, 0, 4, 5, Op::Clear, Ret::Done);
    done(&h, 1, 6, 7, Op::get("a"), Ret::missing());
    done(&h, 1, 8, 9, Op::put("b", "3"), found(false));
    assert_ok(&h);
    done(&h, 1, 10, 11, Op::scan("a", "z"), pairs(&[("b", "3")]));
    assert_ok(&h);
    let h2 = History::from(h.operations());
    done(&h2, 2, 12, 13, Op::delete("a"), found(true));
    assert_violation(&h2, "a");
}

#[test]
fn read_concurrent_with_clear_may_see_before_or_after() {
    for seen in [Ret::value("1"), Ret::missing()] {
        let h = History::new();
        done(&h, 0, 0, 1, Op::put("a", "1"), found(false));
        done(&h, 0, 2, 5, Op::Clear, Ret::Done);
        done(&h, 1, 3, 4, Op::get("a"), seen);
        assert_ok(&h);
    }
}

#[test]
fn timed_out_clear_may_or_may_not_take_effect() {
    for seen in [Ret::value("1"), Ret::missing()] {
        let h = History::new();
        done(&h, 0, 0, 1, Op::put("a", "1"), found(false));
        lost(&h, 0, 2, Op::Clear);
        done(&h, 1, 3, 4, Op::get("a"), seen);
        assert_ok(&h);
    }
}

// ---- malformed histories ------------------------------------------------------------

#[test]
fn malformed_histories_are_reported_not_panicked_on() {
    let malformed = |h: &History| matches!(check(h), CheckResult::Malformed { .. });

    let h = History::new();
    done(&h, 0, 0, 1, Op::get("k"), found(true));
    assert!(malformed(&h), "wrong reply kind");

    let h = History::new();
    done(&h, 0, 5, 4, Op::get("k"), Ret::missing());
    assert!(malformed(&h), "reply before call");

    let h = History::new();
    let id = h.invoke(0, Op::get("k"));
    h.ret(id, Ret::missing());
    h.ret(id, Ret::missing());
    assert!(malformed(&h), "two replies");

    let other = History::new();
    other.invoke(0, Op::get("k"));
    let foreign = other.invoke(0, Op::get("k"));
    let h = History::new();
    h.timeout(foreign);
    let r = check(&h);
    assert!(
        matches!(&r, CheckResult::Malformed { reason } if reason.contains("never invoked")),
        "{r}"
    );

    // Odd but well-formed: an inverted scan range and a zero-length interval.
    let h = History::new();
    done(&h, 0, 0, 0, Op::scan("z", "a"), pairs(&[]));
    assert_ok(&h);
}

// ---- budget ---------------------------------------------------------------------------

#[test]
fn running_out_of_budget_is_unknown_not_ok() {
    let h = generate(&Spec {
        seed: 7,
        clients: 5,
        ops_per_client: 40,
        keys: 1,
        timeout_pct: 0,
    });
    let few_steps = CheckOptions {
        max_steps: 10,
        ..CheckOptions::default()
    };
    let r = check_with(&h, &few_steps);
    assert_eq!(
        r,
        CheckResult::Unknown {
            key: "k0".to_string()
        }
    );
    assert!(r.to_string().contains("could not verify"), "{r}");
    let no_memory = CheckOptions {
        max_memory: 0,
        ..CheckOptions::default()
    };
    assert_eq!(
        check_with(&h, &no_memory),
        CheckResult::Unknown {
            key: "k0".to_string()
        }
    );
    assert_ok(&h);
}

// ---- the recorder, from many threads --------------------------------------------------

#[test]
fn recorder_works_from_many_threads() {
    let h = History::new();
    let store = Arc::new(Mutex::new(BTreeMap::new()));
    let threads: Vec<_> = (0..8u64)
        .map(|client| {
            let (h, store) = (h.clone(), Arc::clone(&store));
            std::thread::spawn(move || {
                let mut rng = Rng::new(client + 100, 0);
                for i in 0..100 {
                    let op = random_op(&mut rng, client, i, 2);
                    let id = h.invoke(client, op.clone());
                    let reply = apply(&mut store.lock().unwrap(), &op);
                    h.ret(id, reply);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(h.len(), 800);
    assert_ok(&h);
}

// ---- randomized histories --------------------------------------------------------------

#[test]
fn random_linearizable_histories_are_accepted() {
    for seed in 1..=20 {
        let spec = Spec {
            seed,
            clients: 6,
            ops_per_client: 60,
            keys: 3,
            timeout_pct: 3,
        };
        let h = generate(&spec);
        let r = check(&h);
        assert!(r.is_ok(), "seed {seed}: {r}");
    }
}

#[test]
fn random_history_with_one_corrupted_read_is_rejected() {
    for seed in 1..=20 {
        let spec = Spec {
            seed,
            clients: 6,
            ops_per_client: 60,
            keys: 3,
            timeout_pct: 3,
        };
        let mut ops = generate(&spec).operations();
        // Pick a Get that returned, past the first few operations.
        let (i, key) = ops
            .iter()
            .enumerate()
            .skip(ops.len() / 3)
            .find_map(|(i, o)| match (&o.op, &o.outcome) {
                (Op::Get { key }, Outcome::Returned { .. }) => Some((i, key.clone())),
                _ => None,
            })
            .expect("the generator makes Gets");
        if let Outcome::Returned { ret, .. } = &mut ops[i].outcome {
            *ret = Ret::value("never-written");
        }
        let explanation = assert_violation(&History::from(ops), &key);
        // The corrupted read is named as the first reply that no order explains.
        assert!(
            explanation.starts_with(&format!("#{i} ")),
            "seed {seed}, #{i}:\n{explanation}"
        );
    }
}

#[test]
fn ten_clients_two_hundred_ops_each_check_quickly() {
    let spec = Spec {
        seed: 42,
        clients: 10,
        ops_per_client: 200,
        keys: 3,
        timeout_pct: 0,
    };
    assert_checks_quickly(&generate(&spec));
}

#[test]
fn agrees_with_brute_force_on_small_random_histories() {
    let (mut ok, mut violations) = (0, 0);
    for seed in 0..3000 {
        let h = small_random_history(&mut Rng::new(seed, 0));
        let expected = brute_force(&h.operations());
        let r = check(&h);
        assert!(
            r.is_ok() == expected && (expected || r.is_violation()),
            "seed {seed}: {r}\n{h:#?}"
        );
        if expected {
            ok += 1;
        } else {
            violations += 1;
        }
    }
    // Both verdicts are well represented.
    assert!(
        ok > 500 && violations > 500,
        "{ok} ok, {violations} violations"
    );
}

/// Up to 4 clients × 3 operations on one key, with repeated values, equal times, lost
/// replies, and half the time one reply replaced by a random one.
fn small_random_history(rng: &mut Rng) -> History {
    let h = History::new();
    let mut ops = Vec::new();
    for client in 0..1 + rng.below(4) {
        let mut t = rng.below(3);
        for _ in 0..1 + rng.below(3) {
            let value = if rng.below(2) == 0 { "a" } else { "b" };
            let op = match rng.below(8) {
                0 | 1 => Op::get("k"),
                2 => Op::put("k", value),
                3 => Op::append("k", value),
                4 => Op::swap("k", value),
                5 => Op::delete("k"),
                6 => Op::scan("a", "z"),
                _ => Op::Clear,
            };
            let (call, ret) = (t, t + rng.below(6));
            t = ret + 1 + rng.below(2);
            ops.push((client, op, call, ret, rng.below(10) == 0));
        }
    }
    // Replies from one random linearization: apply each operation at a random point of
    // its interval (operations with lost replies take effect or not).
    let mut points: Vec<(u64, usize)> = Vec::new();
    for (i, (_, _, call, ret, _)) in ops.iter().enumerate() {
        points.push((2 * call + rng.below(2 * (ret - call) + 1), i));
    }
    points.sort_unstable();
    let mut map = BTreeMap::new();
    let mut replies = vec![None; ops.len()];
    for (_, i) in points {
        let (_, op, _, _, timed_out) = &ops[i];
        if !*timed_out || rng.below(2) == 0 {
            replies[i] = Some(apply(&mut map, op));
        }
    }
    if rng.below(2) == 0 {
        let i = rng.below(ops.len() as u64) as usize;
        replies[i] = Some(random_reply(rng, &ops[i].1));
    }
    for (i, (client, op, call, ret, timed_out)) in ops.into_iter().enumerate() {
        match (&replies[i], timed_out) {
            (Some(reply), false) => done(&h, client, call, ret, op, reply.clone()),
            _ => lost(&h, client, call, op),
        }
    }
    h
}

fn random_reply(rng: &mut Rng, op: &Op) -> Ret {
    let values = [
        None,
        Some("a"),
        Some("b"),
        Some("aa"),
        Some("ab"),
        Some("ba"),
        Some("bb"),
    ];
    let value = values[rng.below(values.len() as u64) as usize].map(str::to_string);
    match op {
        Op::Get { .. } | Op::Swap { .. } => Ret::Value(value),
        Op::Scan { .. } => Ret::Pairs(value.map(|v| ("k".to_string(), v)).into_iter().collect()),
        Op::Clear => Ret::Done,
        _ => found(rng.below(2) == 0),
    }
}

/// Whether some order of the operations, respecting real time, gives every reply, with
/// the whole map as the model (independent of the checker's per-key model).
fn brute_force(ops: &[Operation]) -> bool {
    fn ret_time(o: &Operation) -> Option<u64> {
        match o.outcome {
            Outcome::Returned { at, .. } => Some(at),
            _ => None,
        }
    }
    fn go(ops: &[&Operation], placed: &mut [bool], map: &BTreeMap<String, String>) -> bool {
        if (0..ops.len()).all(|i| placed[i] || ret_time(ops[i]).is_none()) {
            return true; // every operation with a reply is placed; the rest never happened
        }
        for i in 0..ops.len() {
            let blocked = (0..ops.len())
                .any(|p| !placed[p] && ret_time(ops[p]).is_some_and(|r| r < ops[i].call));
            if placed[i] || blocked {
                continue;
            }
            let mut next = map.clone();
            let reply = apply(&mut next, &ops[i].op);
            if let Outcome::Returned { ret, .. } = &ops[i].outcome {
                if *ret != reply {
                    continue;
                }
            }
            placed[i] = true;
            if go(ops, placed, &next) {
                return true;
            }
            placed[i] = false;
        }
        false
    }
    let ops: Vec<_> = ops
        .iter()
        .filter(|o| ret_time(o).is_some() || o.op.is_write())
        .collect();
    go(&ops, &mut vec![false; ops.len()], &BTreeMap::new())
}

#[test]
fn twenty_clients_on_one_key_check_quickly() {
    // 3000 operations on one key, a third of the writes appends: the hard case for the
    // search, since the order of appends shows in the value.
    let spec = Spec {
        seed: 5,
        clients: 20,
        ops_per_client: 150,
        keys: 1,
        timeout_pct: 0,
    };
    assert_checks_quickly(&generate(&spec));
}

#[test]
fn histories_with_timeouts_check_quickly() {
    for seed in 1..=3 {
        let spec = Spec {
            seed,
            clients: 10,
            ops_per_client: 200,
            keys: 3,
            timeout_pct: 2,
        };
        assert_checks_quickly(&generate(&spec));
    }
}

#[track_caller]
fn assert_checks_quickly(h: &History) {
    let started = Instant::now();
    let r = check(h);
    let took = started.elapsed();
    assert!(r.is_ok(), "{r}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// ---- a tiny deterministic history generator ---------------------------------------------

struct Spec {
    seed: u64,
    clients: u64,
    ops_per_client: u64,
    keys: u64,
    /// Percentage of operations that time out (and may or may not take effect, late).
    timeout_pct: u64,
}

/// A random operation of `client`'s `i`-th request; values are unique.
fn random_op(rng: &mut Rng, client: u64, i: u64, keys: u64) -> Op {
    let key = format!("k{}", rng.below(keys));
    let value = format!("{client}.{i};");
    match rng.below(100) {
        0..=24 => Op::get(key),
        25..=39 => Op::put(key, value),
        40..=54 => Op::append(key, value),
        55..=64 => Op::swap(key, value),
        65..=71 => Op::delete(key),
        72..=74 => Op::put(key, format!("{}", rng.below(20))),
        75..=79 => Op::incr(key, rng.below(5) as i64 - 1),
        80..=81 => Op::put_if(key, value, rng.below(2) == 0),
        82 => Op::take(key),
        83..=84 => Op::append_len(key, value),
        85..=87 => Op::keys(key, rng.below(3) as u32 + 1),
        88..=97 => {
            let (a, b) = (rng.below(keys), rng.below(keys));
            Op::scan(format!("k{}", a.min(b)), format!("k{}", a.max(b)))
        }
        _ => Op::Clear,
    }
}

/// Applies `op` to the map and returns its reply.
fn apply(map: &mut BTreeMap<String, String>, op: &Op) -> Ret {
    match op {
        Op::Get { key } => Ret::Value(map.get(key).cloned()),
        Op::Put { key, value } => found(map.insert(key.clone(), value.clone()).is_some()),
        Op::Append { key, value } => {
            let existed = map.contains_key(key);
            map.entry(key.clone()).or_default().push_str(value);
            found(existed)
        }
        Op::Swap { key, value } => Ret::Value(map.insert(key.clone(), value.clone())),
        Op::Delete { key } => found(map.remove(key).is_some()),
        Op::Scan { start, end } => Ret::Pairs(
            map.range(start.clone()..=end.clone())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Op::Clear => {
            map.clear();
            Ret::Done
        }
        Op::Incr { key, by } => {
            let n = match map.get(key) {
                None => Some(0),
                Some(v) => v.parse::<i64>().ok().filter(|n| n.to_string() == *v),
            };
            let sum = n.and_then(|n| n.checked_add(*by));
            if let Some(sum) = sum {
                map.insert(key.clone(), sum.to_string());
            }
            Ret::Counter(sum)
        }
        Op::PutIf { key, value, absent } => {
            let old = map.get(key).cloned();
            if *absent == old.is_none() {
                map.insert(key.clone(), value.clone());
            }
            Ret::Value(old)
        }
        Op::Take { key } => Ret::Value(map.remove(key)),
        Op::Keys { start, limit } => Ret::Keys(
            map.range(start.clone()..)
                .take(*limit as usize)
                .map(|(k, _)| k.clone())
                .collect(),
        ),
        Op::AppendLen { key, value } => {
            let v = map.entry(key.clone()).or_default();
            v.push_str(value);
            Ret::Length(v.len() as u64)
        }
    }
}

/// A linearizable history: clients take turns at random to invoke, apply (the
/// linearization point, no event) and reply. A timed-out write is applied at a random
/// later moment, or never.
fn generate(spec: &Spec) -> History {
    enum Phase {
        Idle,
        Invoked(OpId, Op),
        Applied(OpId, Ret),
    }
    let mut rng = Rng::new(spec.seed, 0);
    let h = History::new();
    let mut map = BTreeMap::new();
    let mut phases: Vec<Phase> = (0..spec.clients).map(|_| Phase::Idle).collect();
    let mut sent = vec![0; spec.clients as usize];
    let mut zombies: Vec<Op> = Vec::new();
    loop {
        let live: Vec<usize> = (0..phases.len())
            .filter(|&c| sent[c] < spec.ops_per_client || !matches!(phases[c], Phase::Idle))
            .collect();
        if live.is_empty() {
            break;
        }
        if !zombies.is_empty() && rng.below(10) == 0 {
            let zombie = zombies.swap_remove(rng.below(zombies.len() as u64) as usize);
            if rng.below(2) == 0 {
                apply(&mut map, &zombie);
            }
        }
        let c = live[rng.below(live.len() as u64) as usize];
        phases[c] = match std::mem::replace(&mut phases[c], Phase::Idle) {
            Phase::Idle => {
                let op = random_op(&mut rng, c as u64, sent[c], spec.keys);
                sent[c] += 1;
                Phase::Invoked(h.invoke(c as u64, op.clone()), op)
            }
            Phase::Invoked(id, op) if rng.below(100) < spec.timeout_pct => {
                h.timeout(id);
                zombies.push(op);
                Phase::Idle
            }
            Phase::Invoked(id, op) => Phase::Applied(id, apply(&mut map, &op)),
            Phase::Applied(id, reply) => {
                h.ret(id, reply);
                Phase::Idle
            }
        };
    }
    h
}
