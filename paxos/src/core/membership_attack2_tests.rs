//! The second reviewer's attack on operator membership changes (as of
//! 991bf28): its finding, fixed since by keeping every promise's reports as
//! sent and choosing whose count when an instance is proposed
//! (`candidate::Reports`).

use super::*;
use crate::membership::Change;
use crate::message::{Envelope, Message, PromisedSlot};
use crate::types::{Ballot, Entry, Reincarnation};

/// Replica `from`'s promise of `ballot` to replica 0, at `incarnation`.
fn promise(from: usize, incarnation: u64, ballot: Ballot, accepted: Vec<PromisedSlot>) -> Envelope {
    Envelope {
        from,
        to: 0,
        msg: Message::Promise {
            ballot,
            accepted,
            floor: 0,
            incarnation,
        },
    }
}

/// Delivers every message replica 0 sends to itself; returns the others.
fn pump(r: &mut Replica) -> Vec<Envelope> {
    let mut out = Vec::new();
    for _ in 0..50 {
        let ready = r.take_ready();
        let msgs: Vec<Envelope> = ready.all_messages().cloned().collect();
        if msgs.is_empty() && ready.is_empty() {
            break;
        }
        for env in msgs {
            if env.to == r.id() {
                r.handle(env);
            } else {
                out.push(env);
            }
        }
    }
    out
}

/// Was a finding (safety): a candidate dropped, at the moment each promise arrives,
/// the reports of instances in which that promiser's vote does not count *in
/// the candidate's view then*; the quorum checks made later
/// (`become_leader`'s re-check, `propose_in`/`election_holds_in`) count the
/// same promiser under the membership learned since. A learner promoted in a
/// change the candidate learns only from the promises themselves is counted
/// as a voter of the later epochs while its report of a chosen value was
/// thrown away.
///
/// Window 1, seats 0,1,2 founders. Decided: 0 Add{X} (seat 3, learner),
/// 2 claim of seat 3 (incarnation 1), 4 Promote{3} (epoch 6: voters
/// {0,1,2,3}), 6 Remove{1} (epoch 8: voters {0,2,3}, majority 2), 8 = `v`
/// chosen by {2,3} at the old leader 2's ballot. Replica 0 knows decisions
/// 0..3 only (cut off). Replica 1 accepted 4..7, knows 4,5 decided, not its
/// removal (so it still promises). 2 dies. 0 campaigns: 3 promises first
/// (reporting 4..8; all dropped, 3 is a learner in 0's view), then 1
/// (quorum {0,1} of 0's view). 0 learns 4,5 from 1's report, re-checks:
/// {0,1,3} is a majority of epochs 4, 6 and 8 — passes. It re-proposes 6, 7
/// and opens 8 with a new command; {0,3} is a majority of epoch 8:
/// decided, though `v` was chosen there.
#[test]
fn attack2_promise_reports_filtered_under_a_stale_view_lose_a_chosen_value() {
    let cfg = CoreConfig {
        window: 1,
        ..CoreConfig::new(0, 3)
    };
    let mut r = Replica::new(cfg);
    r.learn(0, Entry::Change(Change::Add { addr: "x:1".into() }), false);
    r.learn(1, Entry::Noop, false);
    let _ = Reincarnation {
        node: 3,
        nonce: 9,
        replaces: Some(0),
    };
    r.learn(
        2,
        Entry::Reincarnate {
            node: 3,
            nonce: 9,
            replaces: 0,
        },
        false,
    );
    r.learn(3, Entry::Noop, false);
    assert_eq!(r.commit_index(), 4);
    assert_eq!(r.membership().latest().len(), 4);
    let _ = pump(&mut r);
    // Past any promise guard of its own.
    r.advance(100);
    let _ = pump(&mut r);
    r.campaign_now();
    let out = pump(&mut r);
    let ballot = out
        .iter()
        .find_map(|e| match &e.msg {
            Message::Prepare { ballot, .. } => Some(*ballot),
            _ => None,
        })
        .expect("a Prepare");
    assert!(
        out.iter()
            .any(|e| e.to == 3 && matches!(e.msg, Message::Prepare { .. })),
        "seat 3 is in the audience"
    );
    let b0 = Ballot::of(1, 0, 2);
    let v = Entry::Batch(vec![bytes::Bytes::from_static(b"v")]);
    let ps = |slot, entry: Entry, decided| PromisedSlot {
        slot,
        ballot: b0,
        entry,
        decided,
    };
    // Replica 3 first: knows 4..7 decided, accepted 8 (v).
    r.handle(promise(
        3,
        1,
        ballot,
        vec![
            ps(4, Entry::Change(Change::Promote { node: 3 }), true),
            ps(5, Entry::Noop, true),
            ps(6, Entry::Change(Change::Remove { node: 1 }), true),
            ps(7, Entry::Noop, true),
            ps(8, v.clone(), false),
        ],
    ));
    let _ = pump(&mut r);
    assert!(!r.is_leader());
    r.handle(promise(
        1,
        0,
        ballot,
        vec![
            ps(4, Entry::Change(Change::Promote { node: 3 }), true),
            ps(5, Entry::Noop, true),
            ps(6, Entry::Change(Change::Remove { node: 1 }), false),
            ps(7, Entry::Noop, false),
        ],
    ));
    r.propose(b"w".to_vec());
    // Acceptors 1 and 3 promised `ballot`: they accept whatever 0 sends at it.
    for _ in 0..30 {
        let out = pump(&mut r);
        for env in out {
            if let Message::Accept {
                ballot: b, slot, ..
            } = env.msg
            {
                if (env.to == 1 || env.to == 3) && b == ballot {
                    r.handle(Envelope {
                        from: env.to,
                        to: 0,
                        msg: Message::Accepted {
                            ballot: b,
                            slot,
                            incarnation: if env.to == 3 { 1 } else { 0 },
                        },
                    });
                }
            }
        }
        r.advance(1);
    }
    eprintln!(
        "leader {} commit {} decided(8) {:?}",
        r.is_leader(),
        r.commit_index(),
        r.decided(8)
    );
    if let Some(e) = r.decided(8) {
        assert_eq!(
            e, &v,
            "instance 8: `v` was chosen by {{2,3}} (a majority of epoch 8), and 0 decided another value"
        );
    }
}
