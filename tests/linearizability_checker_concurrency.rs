//! Tests of the linearizability checker (`support::linearizability`): concurrent
//! operations, appends, and operations whose outcome is unknown.
//!
//! Hand-written histories use explicit logical times: `[call, return]`, where touching
//! intervals count as concurrent (helpers in `support/checker.rs`).

mod support;

use support::checker::{assert_ok, assert_violation, done, found, lost};
use support::linearizability::{History, Op, Ret};

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
