//! Tests of the linearizability checker (`support::linearizability`): scans and
//! clears, and malformed histories.
//!
//! Hand-written histories use explicit logical times: `[call, return]`, where touching
//! intervals count as concurrent (helpers in `support/checker.rs`).

mod support;

use support::checker::{assert_ok, assert_violation, done, found, lost, pairs};
use support::linearizability::{check, expand_scan, CheckResult, History, Op, Ret};

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
