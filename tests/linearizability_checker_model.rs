//! Tests of the linearizability checker (`support::linearizability`): its model of
//! one key, and sequential histories.
//!
//! Hand-written histories use explicit logical times: `[call, return]`, where touching
//! intervals count as concurrent (helpers in `support/checker.rs`).

mod support;

use support::checker::{assert_ok, assert_violation, done, found, pairs};
use support::linearizability::{step, History, KeyOp, KeyRet, Op, Ret};

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
