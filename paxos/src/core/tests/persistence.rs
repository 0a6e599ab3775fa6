//! Persist before reply, record by record (rules 1–2 of the crate docs), and
//! what a replica restored from its records knows.

use super::*;

#[test]
fn promise_is_persisted_in_the_same_ready_as_the_promise_message() {
    let mut a = replica(1, 3);
    let b = Ballot::new(5, 2);
    a.handle(env(
        2,
        1,
        Message::Prepare {
            ballot: b,
            from_slot: 0,
        },
    ));
    let ready = take(&mut a);
    assert_eq!(ready.records, vec![Record::Promised(b)]);
    assert!(
        matches!(&ready.messages[..], [Envelope { to: 2, msg: Message::Promise { ballot, .. }, .. }] if *ballot == b)
    );
}

#[test]
fn a_promise_survives_restart_and_blocks_lower_ballots() {
    let mut a = replica(1, 3);
    let high = Ballot::new(5, 2);
    a.handle(env(
        2,
        1,
        Message::Prepare {
            ballot: high,
            from_slot: 0,
        },
    ));
    let records = take(&mut a).records;
    let mut a = bounce(a, &records);
    let low = Ballot::new(4, 0);
    a.handle(env(
        0,
        1,
        Message::Accept {
            ballot: low,
            slot: 0,
            entry: val("old"),
            commit: 0,
        },
    ));
    let ready = take(&mut a);
    assert!(
        ready.records.is_empty(),
        "accepted below its promise after restart"
    );
    assert!(
        matches!(&ready.messages[..], [Envelope { msg: Message::Reject { promised, .. }, .. }] if *promised == high)
    );
}

#[test]
fn an_accept_survives_restart_and_is_reported_in_promises() {
    let mut a = replica(1, 3);
    let b1 = Ballot::new(1, 0);
    a.handle(env(
        0,
        1,
        Message::Accept {
            ballot: b1,
            slot: 3,
            entry: val("v"),
            commit: 0,
        },
    ));
    let ready = take(&mut a);
    assert_eq!(
        ready.records,
        vec![Record::Accepted {
            slot: 3,
            ballot: b1,
            entry: val("v")
        }]
    );
    assert!(matches!(
        &ready.messages[..],
        [Envelope {
            msg: Message::Accepted { slot: 3, .. },
            ..
        }]
    ));
    let mut a = bounce(a, &ready.records);
    // A restarted replica promises nothing for a whole election timeout (rule 10).
    let guard = u64::from(a.config().election_ticks);
    a.advance(guard);
    let _ = take(&mut a);
    let b2 = Ballot::new(2, 2);
    a.handle(env(
        2,
        1,
        Message::Prepare {
            ballot: b2,
            from_slot: 0,
        },
    ));
    let ready = take(&mut a);
    let Some(Envelope {
        msg: Message::Promise { accepted, .. },
        ..
    }) = ready.messages.first()
    else {
        panic!("no promise: {:?}", ready.messages)
    };
    assert_eq!(
        accepted,
        &vec![PromisedSlot {
            slot: 3,
            ballot: b1,
            entry: val("v"),
            decided: false
        }]
    );
}

#[test]
fn a_repeated_accept_is_answered_without_a_second_record() {
    let mut a = replica(1, 3);
    let b = Ballot::new(1, 0);
    let accept = Message::Accept {
        ballot: b,
        slot: 0,
        entry: val("v"),
        commit: 0,
    };
    a.handle(env(0, 1, accept.clone()));
    assert_eq!(take(&mut a).records.len(), 1);
    a.handle(env(0, 1, accept));
    let ready = take(&mut a);
    assert!(ready.records.is_empty());
    assert_eq!(ready.messages.len(), 1);
}

#[test]
fn decisions_survive_restart_through_commit_and_learned_records() {
    let mut a = replica(1, 3);
    let b = Ballot::new(1, 0);
    let mut disk = Vec::new();
    a.handle(env(
        0,
        1,
        Message::Accept {
            ballot: b,
            slot: 0,
            entry: val("x"),
            commit: 0,
        },
    ));
    disk.extend(take(&mut a).records);
    // The leader's commit watermark decides slot 0 (accepted at the same ballot);
    // slot 1 is learned by catch-up with a value this replica never accepted.
    a.handle(env(
        0,
        1,
        Message::Decided {
            entries: vec![(1, val("y"))],
            floor: 0,
        },
    ));
    a.handle(env(
        0,
        1,
        Message::Heartbeat {
            ballot: b,
            commit: 2,
            round: 1,
            done: vec![0; 3],
        },
    ));
    let ready = take(&mut a);
    assert_eq!(ready.committed, vec![(0, val("x")), (1, val("y"))]);
    assert!(ready.records.contains(&Record::Learned {
        slot: 1,
        entry: val("y")
    }));
    // The watermark is written once the Learned record it covers is durable.
    assert!(!ready.records.contains(&Record::Committed { upto: 2 }));
    disk.extend(ready.records);
    let ready = take(&mut a);
    assert_eq!(ready.records, vec![Record::Committed { upto: 2 }]);
    disk.extend(ready.records);
    let a = bounce(a, &disk);
    assert_eq!(a.commit_index(), 2);
    assert_eq!(a.status(0), Status::Decided(val("x")));
    assert_eq!(a.status(1), Status::Decided(val("y")));
}

#[test]
fn a_value_accepted_at_another_ballot_is_not_decided_by_the_watermark() {
    let mut a = replica(1, 3);
    a.handle(env(
        0,
        1,
        Message::Accept {
            ballot: Ballot::new(1, 0),
            slot: 0,
            entry: val("old"),
            commit: 0,
        },
    ));
    take(&mut a);
    // A new leader at ballot 2.2 says slot 0 is decided: its value may differ.
    a.handle(env(
        2,
        1,
        Message::Heartbeat {
            ballot: Ballot::new(2, 2),
            commit: 1,
            round: 1,
            done: vec![0; 3],
        },
    ));
    let ready = take(&mut a);
    assert!(
        ready.committed.is_empty(),
        "decided from an accept of another ballot"
    );
    assert_eq!(a.status(0), Status::Pending);
}

/// Review: a lagging replica installs a peer's snapshot covering every instance
/// below 3 (its state machine makes it durable at once) and its core writes
/// `Forgotten { below: 3 }` — a record that needs no sync of its own. A power
/// loss takes that record; the state machine restarts at 3, the log at commit 0.
/// The group has forgotten below 3 meanwhile (this replica reported `done` 3).
/// The leader's catch-up starts at its floor 3, so the core asks for a snapshot
/// at 3, which the application already has: the Applier does nothing, and the
/// replica's commit index never moves again (it never applies another instance,
/// never leads, and its `done` holds the whole group's log at 3 forever).
#[test]
fn review_a_replica_whose_forgotten_record_was_lost_catches_up_again() {
    use crate::node::{restore, Decision};
    use crate::rsm::{Applier, StateMachine};
    use crate::storage::{MemStorage, Storage};
    struct Nothing;
    impl StateMachine for Nothing {
        type Command = u64;
        type Output = ();
        fn apply(&mut self, _slot: Slot, _cmd: u64) {}
    }
    let mut rs: Vec<Replica> = (0..3).map(|i| replica(i, 3)).collect();
    let mut disk1 = MemStorage::new();
    rs[0].campaign_now();
    settle(&mut rs);
    assert!(rs[0].is_leader());
    disk1.append(&rs[1].take_ready().records).unwrap();
    // Replica 1 is cut off while instances 0..3 are decided.
    for i in 0..3u32 {
        rs[0].propose(i.to_le_bytes().to_vec());
        deliver_only(&mut rs, &|m| m.to != 1 && m.from != 1);
    }
    assert_eq!(rs[0].commit_index(), 3);
    // Its application installs a snapshot at 3 (durable in its own files).
    rs[1].install_snapshot(3);
    let ready = rs[1].take_ready();
    assert!(!ready.sync, "the Forgotten record is synced lazily");
    // Everyone checkpoints at 3; the group forgets below 3.
    rs[0].done(2);
    rs[2].done(2);
    rs[1].done(2);
    for _ in 0..5 {
        rs[0].tick();
        rs[0].tick();
        rs[0].tick();
        settle(&mut rs);
    }
    assert_eq!(rs[0].floor(), 3, "the group forgot below 3");
    // Power loss on replica 1 before the lazy sync: its log has no Forgotten.
    let cfg = rs[1].config().clone();
    let (restarted, replay) = restore(&cfg, &mut disk1, 3).unwrap();
    assert!(replay.is_empty());
    rs[1] = restarted;
    let mut app = Applier::new(Nothing, 3, 1, 9);
    let mut wanted = None;
    for i in 3..6u32 {
        rs[0].propose(i.to_le_bytes().to_vec());
        for _ in 0..10 {
            for r in rs.iter_mut() {
                r.tick();
            }
            // The apply side of replica 1, as the drivers run it.
            let mut ready = rs[1].take_ready();
            let handed = rs[1].records_handed_out();
            rs[1].on_durable(handed);
            let mut msgs: Vec<Envelope> = ready.messages.drain(..).collect();
            msgs.append(&mut ready.after_sync);
            let decisions = ready
                .committed
                .into_iter()
                .map(|(s, e)| Decision::Entry(s, e))
                .chain(ready.events.into_iter().filter_map(|ev| match ev {
                    Event::SnapshotNeeded { floor } => Some(Decision::SnapshotNeeded(floor)),
                    _ => None,
                }));
            for d in decisions {
                let out = app.apply(d);
                if let Some(upto) = out.installed {
                    rs[1].install_snapshot(upto);
                }
                wanted = wanted.or(out.snapshot_wanted);
            }
            for r in [0, 2] {
                msgs.extend(take(&mut rs[r]).messages);
            }
            for m in msgs {
                let to = m.to;
                rs[to].handle(m);
            }
        }
    }
    assert_eq!(rs[0].commit_index(), 6);
    assert!(
        rs[1].commit_index() == 6 || wanted.is_some(),
        "replica 1 is stuck at commit {} (applied 3, group floor 3) and asks for nothing",
        rs[1].commit_index()
    );
    assert_eq!(app.applied(), 6);
}

/// Found with `diskv-fuzz --target segment_log` (corpus file
/// `fuzz/corpus/segment_log/crash-learned-last-slot`): a log whose records
/// forget everything below the last slot and learn that slot made `restore`
/// step its commit watermark past `u64::MAX`; a reincarnation decided there
/// made the new epoch's first slot overflow too.
#[test]
fn a_log_that_learned_the_last_slot_restores() {
    let records = vec![
        Record::Forgotten {
            below: Slot::MAX - 1,
        },
        Record::Learned {
            slot: Slot::MAX - 1,
            entry: Entry::Reincarnate {
                node: 0,
                nonce: 5,
                replaces: 0,
            },
        },
        Record::Learned {
            slot: Slot::MAX,
            entry: Entry::Noop,
        },
    ];
    let r = Replica::restore(CoreConfig::new(1, 3), records);
    assert_eq!(r.status(Slot::MAX), Status::Decided(Entry::Noop));
    assert_eq!(r.membership().latest()[0].incarnation, 1);
}
