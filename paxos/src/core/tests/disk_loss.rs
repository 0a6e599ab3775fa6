//! A replica that lost its disk: what it may vote in, when it has a history,
//! and what it may forget.

use super::*;

/// A leader elected after a reincarnation was decided, while instances of its
/// window are still open and accepted nowhere, closes the window itself (with
/// no-ops), even with no client traffic: otherwise the recovering replica would
/// wait for traffic before its votes count, and the group would keep needing the
/// old membership.
#[test]
fn a_new_leader_closes_a_reincarnation_window_left_open() {
    const WINDOW: u64 = 8;
    let cfg = |id| CoreConfig {
        window: WINDOW,
        ..CoreConfig::new(id, 3)
    };
    let mut rs: Vec<Replica> = (0..3).map(|i| Replica::new(cfg(i))).collect();
    let mut disks: Vec<Vec<Record>> = vec![Vec::new(); 3];
    // One step: every replica ticks, its records reach its disk, and its messages
    // are delivered unless `drop` says otherwise.
    let step =
        |rs: &mut Vec<Replica>, disks: &mut Vec<Vec<Record>>, drop: &dyn Fn(&Envelope) -> bool| {
            let mut msgs = Vec::new();
            for (i, r) in rs.iter_mut().enumerate() {
                r.tick();
                let ready = take(r);
                disks[i].extend(ready.records);
                msgs.extend(ready.messages);
            }
            for m in msgs {
                if !drop(&m) {
                    let to = m.to;
                    rs[to].handle(m);
                }
            }
        };
    rs[0].campaign_now();
    for _ in 0..50 {
        step(&mut rs, &mut disks, &|_| false);
    }
    assert!(rs[0].is_leader());
    // Replica 2 loses its disk and asks to be reincarnated.
    rs[2] = Replica::new(CoreConfig {
        recovering: Some(77),
        ..cfg(2)
    });
    disks[2].clear();
    // Replica 0's Accepts beyond the reincarnation's instance (its window no-ops)
    // go nowhere, not even to itself, until replica 1 has applied it.
    let reincarnated = |r: &Replica| r.membership().latest()[2].incarnation == 1;
    let mut s = None;
    for _ in 0..300 {
        let after = s;
        step(
            &mut rs,
            &mut disks,
            &|m| matches!((m.from, after, &m.msg), (0, Some(s), Message::Accept { slot, .. }) if *slot > s),
        );
        if s.is_none() && reincarnated(&rs[0]) {
            s = (0..rs[0].commit_index())
                .find(|&i| matches!(rs[0].status(i), Status::Decided(Entry::Reincarnate { .. })));
        }
        if reincarnated(&rs[1]) {
            break;
        }
    }
    let s = s.expect("the reincarnation was never decided");
    assert!(reincarnated(&rs[1]), "replica 1 never applied it");
    assert!(
        rs[1].commit_index() <= s + WINDOW,
        "the window closed already"
    );
    // Replica 0 restarts from its disk; replica 1 takes over; no client traffic.
    rs[0] = Replica::restore(cfg(0), disks[0].iter().cloned());
    rs[1].campaign_now();
    for _ in 0..500 {
        step(&mut rs, &mut disks, &|_| false);
        if rs[2].votes_now() {
            break;
        }
    }
    assert!(rs[1].is_leader(), "replica 1 did not take over");
    assert!(
        rs[1].commit_index() > s + WINDOW,
        "the new leader left the window open: commit {} after a reincarnation in {s}",
        rs[1].commit_index()
    );
    assert!(rs[2].votes_now(), "the recovering replica never counted");
}

/// Issue #12, bug 1: after a lost disk, a snapshot install raises the floor above
/// instances the lost incarnation voted in. A stale leader's `Accept` for such an
/// instance must get no `Accepted` (it would carry incarnation 0, the lost one's
/// number, and count as its vote: FAST'18's double decision).
#[test]
fn a_recovering_replica_never_answers_accepted_below_its_snapshot() {
    let mut x = Replica::new(CoreConfig {
        recovering: Some(77),
        ..CoreConfig::new(2, 5)
    });
    x.install_snapshot(10);
    let _ = take(&mut x);
    let stale = Ballot::new(1, 0);
    x.handle(env(
        0,
        2,
        Message::Accept {
            ballot: stale,
            slot: 4,
            entry: val("v'"),
            commit: 0,
        },
    ));
    let ready = take(&mut x);
    let accepted: Vec<_> = ready
        .all_messages()
        .filter(|e| matches!(e.msg, Message::Accepted { .. }))
        .collect();
    assert!(accepted.is_empty(), "voted while recovering: {accepted:?}");
}

/// Bug 1, admitted variant: once the new incarnation is known, instances of the
/// epochs before it (below its snapshot's floor) still get no vote from it.
#[test]
fn a_new_incarnation_never_answers_accepted_in_an_earlier_epoch() {
    let mut x = Replica::new(CoreConfig {
        recovering: Some(77),
        window: 4,
        ..CoreConfig::new(2, 5)
    });
    let mut m = Membership::initial(5);
    assert!(m.reincarnate(
        20,
        4,
        crate::Reincarnation {
            node: 2,
            nonce: 77,
            replaces: Some(0)
        }
    ));
    x.merge_membership(&m);
    assert_eq!(x.incarnation(), Some(1));
    x.install_snapshot(30);
    let _ = take(&mut x);
    for slot in [4, 24] {
        x.handle(env(
            0,
            2,
            Message::Accept {
                ballot: Ballot::new(1, 0),
                slot,
                entry: val("v'"),
                commit: 0,
            },
        ));
        let ready = take(&mut x);
        assert!(
            !ready
                .all_messages()
                .any(|e| matches!(e.msg, Message::Accepted { .. })),
            "voted in instance {slot}, which belongs to the lost incarnation"
        );
    }
}

/// Issue #12, bug 5: a candidate that holds a promise from another replica has a
/// history (that replica, wiped, must not start fresh: its old promise could
/// still complete this candidate's quorum).
#[test]
fn a_candidate_holding_another_replicas_promise_has_a_history() {
    let mut rs: Vec<Replica> = (0..5).map(|i| replica(i, 5)).collect();
    rs[1].campaign_now();
    let prepare = rs[1]
        .take_ready()
        .all_messages()
        .find(|e| e.to == 0)
        .cloned()
        .expect("a prepare for replica 0");
    rs[0].handle(prepare);
    let promise = rs[0]
        .take_ready()
        .all_messages()
        .find(|e| e.to == 1)
        .cloned()
        .expect("a promise");
    assert!(!rs[1].has_history(), "nothing received yet");
    rs[1].handle(promise);
    assert!(rs[1].has_history());
}

/// Bug 5, in flight: a candidate that answers `Fresh` to a probe drops its
/// ballot, so a promise the prober's lost incarnation sent before the loss (still
/// in flight) can never complete its quorum.
#[test]
fn a_candidate_that_answers_fresh_drops_its_ballot() {
    let mut rs: Vec<Replica> = (0..5).map(|i| replica(i, 5)).collect();
    rs[1].campaign_now();
    let prepares: Vec<Envelope> = take(&mut rs[1]).all_messages().cloned().collect();
    // Replicas 0 and 3 promise; their answers are in flight while 0 is wiped and
    // probes replica 1.
    let mut promises = Vec::new();
    for p in prepares {
        let to = p.to;
        if to == 0 || to == 3 || to == 1 {
            rs[to].handle(p);
            promises.extend(take(&mut rs[to]).all_messages().cloned());
        }
    }
    assert_eq!(rs[1].probe_answer(), ProbeAnswer::Fresh);
    for p in promises.into_iter().filter(|e| e.to == 1) {
        rs[1].handle(p);
    }
    let _ = take(&mut rs[1]);
    assert!(
        !rs[1].is_leader(),
        "a quorum completed with a promise from before the probe"
    );
}

/// Issue #12, bug 4: the application records "recovered" (clearing the recovering
/// mark of its identity) once `votes_now`; a restart then takes the incarnation
/// from the log's membership record. So `votes_now` must wait until that record
/// is durable, not just applied in memory.
#[test]
fn a_recovered_replica_votes_only_once_its_new_membership_is_durable() {
    let mut x = Replica::new(CoreConfig {
        recovering: Some(77),
        window: 4,
        ..CoreConfig::new(2, 3)
    });
    let mut m = Membership::initial(3);
    assert!(m.reincarnate(
        20,
        4,
        crate::Reincarnation {
            node: 2,
            nonce: 77,
            replaces: Some(0)
        }
    ));
    x.merge_membership(&m);
    x.install_snapshot(30);
    let ready = x.take_ready();
    assert!(ready.sync, "a membership record is synced at once");
    assert!(
        !x.votes_now(),
        "votes before its new incarnation is durable: a crash now would restart it as \
         incarnation 0"
    );
    let records: Vec<Record> = ready.records;
    x.on_durable(x.records_handed_out());
    assert!(x.votes_now());
    // And indeed a restart without the recovering mark finds the incarnation.
    let back = Replica::restore(CoreConfig::new(2, 3), records);
    assert_eq!(back.incarnation(), Some(1));
}

/// Found by the simulator: a candidate whose promises showed the group had
/// forgotten instances it never applied "installed" a snapshot in its log (a
/// `Forgotten` record, and its commit watermark moved) before the application
/// had any such state. Killed before it fetched one, it could never start again
/// ("the log forgot everything below 343" with a checkpoint at 325), and the
/// decisions after the gap went to a state machine that had skipped it. Such a
/// candidate must not lead: it asks for a snapshot and lets a replica that has
/// the state lead.
#[test]
fn a_candidate_behind_the_groups_floor_asks_for_a_snapshot_instead_of_leading() {
    let mut r = replica(0, 3);
    r.campaign_now();
    let ballot = take(&mut r)
        .messages
        .iter()
        .find_map(|e| match e.msg {
            Message::Prepare { ballot, .. } => Some(ballot),
            _ => None,
        })
        .expect("a prepare");
    for from in [1, 2] {
        r.handle(env(
            from,
            0,
            Message::Promise {
                ballot,
                accepted: vec![],
                floor: 10,
                incarnation: 0,
            },
        ));
    }
    let ready = take(&mut r);
    assert!(!r.is_leader(), "led without the state below the floor");
    assert_eq!(r.commit_index(), 0);
    assert!(
        !ready
            .records
            .iter()
            .any(|rec| matches!(rec, Record::Forgotten { .. })),
        "forgot instances the application never had: {:?}",
        ready.records
    );
    assert!(
        ready.events.contains(&Event::SnapshotNeeded { floor: 10 }),
        "{:?}",
        ready.events
    );
}

/// Found by the simulator: a replica that lost its disk took its own `done`
/// watermark from the leader's gossip (its lost incarnation's), forgot instances
/// its new state machine had not made durable, and after a power loss could never
/// start again. Its own watermark comes from its application only.
#[test]
fn a_replica_never_forgets_on_the_word_of_others_about_itself() {
    let mut r = replica(1, 3);
    let b = Ballot::new(1, 0);
    for slot in 0..4 {
        r.handle(env(
            0,
            1,
            Message::Accept {
                ballot: b,
                slot,
                entry: val("v"),
                commit: slot,
            },
        ));
    }
    let _ = take(&mut r);
    // Everyone, this replica included as far as the leader knows, is done with 3.
    r.handle(env(
        0,
        1,
        Message::Heartbeat {
            ballot: b,
            commit: 4,
            round: 1,
            done: vec![3, 3, 3],
        },
    ));
    let ready = take(&mut r);
    assert_eq!(r.commit_index(), 4);
    assert_eq!(
        r.floor(),
        0,
        "forgot what its own application never made durable"
    );
    assert!(!ready
        .records
        .iter()
        .any(|rec| matches!(rec, Record::Forgotten { .. })));
    // Once its application is done too, it forgets.
    r.done(2);
    let ready = take(&mut r);
    assert_eq!(r.floor(), 3);
    assert!(ready.records.contains(&Record::Forgotten { below: 3 }));
}
