//! Attacks on leader leases (rule 10) and on what the promise guard changed.
//!
//! Each test here demonstrated a hole before its fix: a leader elected on the
//! others' promises alone (its own Prepare ignored within the promise guard, or
//! dropped by a full inbox) had nothing at its ballot on its disk, so after a
//! restart it took the same ballot again. `become_leader` now persists its own
//! promise first (`candidate.rs`).

use super::*;

/// Delivers, among `rs`, every message `pass` lets through until none is left,
/// like `deliver_only`, but keeps replica 0's records in `disk0` (its disk, for a
/// later crash and restart). Returns the messages held back.
fn pump(
    rs: &mut [Replica],
    disk0: &mut Vec<Record>,
    pass: &dyn Fn(&Envelope) -> bool,
) -> Vec<Envelope> {
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut msgs = Vec::new();
        for (i, r) in rs.iter_mut().enumerate() {
            let ready = take(r);
            if i == 0 {
                disk0.extend(ready.records.iter().cloned());
            }
            msgs.extend(ready.messages);
        }
        if msgs.is_empty() {
            return held;
        }
        for m in msgs {
            if pass(&m) {
                let to = m.to;
                rs[to].handle(m);
            } else {
                held.push(m);
            }
        }
    }
    panic!("the group never went quiet");
}

/// The ballot replica 0 leads at, read off a follower that promised it.
fn ballot_promised_at(rs: &[Replica], i: NodeId) -> Ballot {
    rs[i].promised()
}

fn is_heartbeat(m: &Envelope) -> bool {
    matches!(m.msg, Message::Heartbeat { .. })
}

fn is_ack(m: &Envelope) -> bool {
    matches!(m.msg, Message::HeartbeatAck { .. })
}

/// Replica 0 restarts (so its guard blocks even its own promise for an
/// election timeout) and is elected at once by `campaign_now` on the promises
/// of 1 and 2 alone. It never wrote a record at its ballot.
fn elected_without_own_promise(
    rs: &mut [Replica],
    disk0: &mut Vec<Record>,
    pass: &dyn Fn(&Envelope) -> bool,
) -> Vec<Envelope> {
    rs[0] = bounce(replica(0, 3), disk0);
    rs[0].campaign_now();
    let held = pump(rs, disk0, pass);
    assert!(rs[0].is_leader(), "replica 0 was not elected");
    held
}

/// The lease counts a HeartbeatAck of an earlier leadership of the same node at
/// the same ballot.
///
/// The promise guard blocks a candidate's own Prepare (here: `campaign_now`
/// within its restart guard; in production, a self-addressed Prepare dropped by
/// a full loopback inbox does the same). The candidate is elected on the others'
/// promises alone, and since no gating record is pending,
/// `Durability::may_leave_now` lets its Heartbeats (and Accepts) leave at once:
/// no record at its ballot exists anywhere on its disk. Restarted, it campaigns
/// again at `max_round + 1` — the very same ballot — and the acceptors, whose
/// promise equals it, promise again. `Leader::new` starts the rounds at 0 again,
/// so a HeartbeatAck of the first leadership (ballot equal, round 1) still in
/// the network is counted for the second leadership's round 1, sent ten ticks
/// later: the lease outlives the guard of the replica that acknowledged, which
/// then helps elect replica 2, which decides a write; replica 0 still answers
/// from its lease at a commit index without it. Clocks all run at exactly the
/// nominal rate: the clock assumption holds.
#[test]
fn a_stale_ack_of_an_earlier_leadership_at_a_reused_ballot_does_not_extend_the_lease() {
    let mut rs: Vec<Replica> = (0..3).map(|i| replica(i, 3)).collect();
    let mut disk0 = Vec::new();
    // T = 0. Leadership A: every HeartbeatAck to replica 0 is held back in the
    // network (replica 1's is delivered later).
    let held = elected_without_own_promise(&mut rs, &mut disk0, &|m| !is_ack(m));
    // (Before the fix no record at its ballot reached replica 0's disk: its own
    // Prepare was ignored within its guard and no gating record was pending,
    // so its Heartbeats left at once.)
    let stale_ack: Vec<Envelope> = held
        .into_iter()
        .filter(|m| is_ack(m) && m.from == 1)
        .collect();
    assert_eq!(stale_ack.len(), 1);

    // Replica 0 crashes and restarts at once (its disk holds nothing at its
    // ballot). Ten ticks pass everywhere.
    rs[0] = bounce(replica(0, 3), &disk0);
    for r in rs.iter_mut() {
        r.advance(10);
        let _ = take(r);
    }
    // T = 10. Leadership B: campaign_now again (still within its restart
    // guard); its heartbeats to 1 and 2 are lost.
    rs[0].campaign_now();
    let _ = pump(&mut rs, &mut disk0, &|m| !is_heartbeat(m));
    assert!(rs[0].is_leader());
    // (Before the fix leadership B had leadership A's ballot: nothing at it was on
    // replica 0's disk, so `max_round + 1` is the same round.)

    // The stale ack of leadership A's round 1 arrives now.
    for m in stale_ack {
        rs[0].handle(m);
    }
    let _ = take(&mut rs[0]);

    // T = 30: replica 1's guard (from its ack at T = 0) ends. Replica 2
    // campaigns; 0 is cut off from 1 and 2.
    for r in rs.iter_mut() {
        r.advance(20);
        let _ = take(r);
    }
    rs[2].campaign_now();
    let cut = |m: &Envelope| m.from != 0 && m.to != 0;
    let _ = pump(&mut rs, &mut Vec::new(), &cut);
    assert!(rs[2].is_leader(), "replica 2 was not elected");
    rs[2].propose(b"w".to_vec());
    let _ = pump(&mut rs, &mut Vec::new(), &cut);
    let decided = rs[2].commit_index();
    assert_eq!(decided, 1, "replica 2 decided the write");

    // T = 30, replica 0's tick 30 (round 1 of leadership B was sent at its
    // tick 10: the lease, if it counts the stale ack, lasts until tick 33).
    rs[0].read_index(7);
    let ready = take(&mut rs[0]);
    for o in &ready.reads {
        if let ReadOutcome::Ready { id: 7, index } = o {
            assert!(
                *index >= decided,
                "stale lease read: answered at index {index}, but instance 0 was \
                 decided (by replica 2, elected at T = 30) before the read"
            );
        }
    }
}

/// Without the lease: the same reused ballot breaks agreement. Replica 0's
/// first leadership sends Accept(b, 0, v) (its own Accept to itself is lost
/// with the crash); restarted at the same ballot b it proposes w in instance 0,
/// and the delayed Accepts of v, accepted by 1 and 2 (their promise is b), come
/// back as `Accepted { ballot: b, slot: 0 }`, which it counts for w.
#[test]
fn a_leader_elected_without_its_own_promise_never_reuses_its_ballot() {
    let mut rs: Vec<Replica> = (0..3).map(|i| replica(i, 3)).collect();
    let mut disk0 = Vec::new();
    elected_without_own_promise(&mut rs, &mut disk0, &|_| true);
    let ballot_a = ballot_promised_at(&rs, 1);
    // Leadership A proposes v: its Accepts to 1 and 2 are delayed in the
    // network; it crashes before it handles its own.
    rs[0].propose(b"v".to_vec());
    let delayed = pump(&mut rs, &mut disk0, &|m| {
        !matches!(m.msg, Message::Accept { .. })
    });
    let delayed: Vec<Envelope> = delayed
        .into_iter()
        .filter(|m| matches!(m.msg, Message::Accept { .. }) && m.to != 0)
        .collect();
    assert_eq!(delayed.len(), 2);
    rs[0] = bounce(replica(0, 3), &disk0);
    for r in rs.iter_mut() {
        r.advance(5);
        let _ = take(r);
    }
    // Leadership B, same ballot; it proposes w, whose Accepts to 1 and 2 are
    // lost; the delayed Accepts of v arrive.
    rs[0].campaign_now();
    let _ = pump(&mut rs, &mut disk0, &|_| true);
    assert!(rs[0].is_leader());
    let ballot_b = ballot_promised_at(&rs, 1);
    rs[0].propose(b"w".to_vec());
    let _ = pump(&mut rs, &mut disk0, &|m| {
        !(matches!(m.msg, Message::Accept { .. }) && m.to != 0)
    });
    for m in delayed {
        let to = m.to;
        rs[to].handle(m);
    }
    let _ = pump(&mut rs, &mut disk0, &|_| true);
    let at_0 = rs[0].decided(0).cloned();
    // Replica 2 takes over later and recovers instance 0 from 1 and 2.
    for r in rs.iter_mut() {
        r.advance(40);
        let _ = take(r);
    }
    rs[2].campaign_now();
    let _ = pump(&mut rs, &mut Vec::new(), &|m| m.from != 0 && m.to != 0);
    let at_2 = rs[2].decided(0).cloned();
    assert!(
        at_0.is_none() || at_2.is_none() || at_0 == at_2,
        "agreement broken: instance 0 decided {at_0:?} at replica 0 and {at_2:?} at \
         replica 2 (replica 0 led twice at ballot {ballot_a} = {ballot_b})"
    );
    assert!(
        ballot_a < ballot_b,
        "replica 0 led twice at ballot {ballot_a} (no record of it on its disk)"
    );
}
