//! Unit tests of one replica: the exact records and messages each input produces,
//! and the persistence rules of the crate docs, checked by restoring from records.

use super::*;
use crate::message::PromisedSlot;

pub(super) fn replica(id: NodeId, n: usize) -> Replica {
    Replica::new(CoreConfig::new(id, n))
}

pub(super) fn env(from: NodeId, to: NodeId, msg: Message) -> Envelope {
    Envelope { from, to, msg }
}

pub(super) fn val(s: &str) -> Entry {
    Entry::single(s.as_bytes().to_vec())
}

/// Takes `r`'s Ready as a driver whose disk is durable at once would: every record
/// durable, every message sent.
pub(super) fn take(r: &mut Replica) -> Ready {
    let mut ready = r.take_ready();
    r.on_durable(r.records_handed_out());
    let after = std::mem::take(&mut ready.after_sync);
    ready.messages.extend(after);
    ready
}

/// Restores a replica from everything it persisted so far (a crash and restart).
fn bounce(r: Replica, records: &[Record]) -> Replica {
    Replica::restore(r.config().clone(), records.iter().cloned())
}

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

#[test]
fn a_single_replica_group_elects_itself_and_decides() {
    let mut r = replica(0, 1);
    let mut disk = Vec::new();
    r.propose(b"a".to_vec());
    for _ in 0..200 {
        r.tick();
        let ready = take(&mut r);
        disk.extend(ready.records);
        for m in ready.messages {
            r.handle(m);
        }
        if r.commit_index() > 0 {
            break;
        }
    }
    assert!(r.is_leader());
    assert_eq!(
        r.status(0),
        Status::Decided(Entry::Batch(vec![b"a".to_vec()]))
    );
}

#[test]
fn the_leader_batches_waiting_commands_into_one_instance() {
    let mut r = replica(0, 1);
    for _ in 0..200 {
        r.tick();
        let ready = take(&mut r);
        for m in ready.messages {
            r.handle(m);
        }
        if r.is_leader() {
            break;
        }
    }
    for i in 0..100u32 {
        r.propose(i.to_le_bytes().to_vec());
    }
    let ready = take(&mut r);
    let accepts: Vec<_> = ready
        .messages
        .iter()
        .filter(|m| matches!(m.msg, Message::Accept { .. }))
        .collect();
    assert_eq!(
        accepts.len(),
        1,
        "100 waiting commands should share one instance"
    );
    let Message::Accept { entry, .. } = &accepts[0].msg else {
        unreachable!()
    };
    assert_eq!(entry.commands().len(), 100);
}

#[test]
fn messages_from_outside_the_group_are_ignored() {
    let mut a = replica(1, 3);
    a.handle(env(
        7,
        1,
        Message::Prepare {
            ballot: Ballot::new(9, 7),
            from_slot: 0,
        },
    ));
    a.handle(env(
        0,
        2,
        Message::Prepare {
            ballot: Ballot::new(9, 0),
            from_slot: 0,
        },
    ));
    a.handle(env(
        0,
        1,
        Message::Heartbeat {
            ballot: Ballot::new(9, 0),
            commit: 0,
            round: 0,
            done: vec![5],
        },
    ));
    let ready = take(&mut a);
    assert!(ready.records.is_empty());
    assert_eq!(a.min(), 0, "a malformed done vector was merged");
}

#[test]
fn config_validation_rejects_nonsense() {
    assert!(CoreConfig::new(0, 3).validate().is_ok());
    assert!(CoreConfig::new(3, 3).validate().is_err());
    assert!(CoreConfig::new(0, 0).validate().is_err());
    assert!(CoreConfig::new(0, 65).validate().is_err());
    assert!(CoreConfig {
        election_ticks: 2,
        ..CoreConfig::new(0, 3)
    }
    .validate()
    .is_err());
}

/// A new leader re-proposes more instances than its window. Acks for one beyond
/// `commit + window` arrive first: it must not be decided then (its epoch may not
/// be known yet), but must be once the instances below it are.
#[test]
fn an_instance_acked_beyond_the_window_is_decided_once_the_watermark_catches_up() {
    let mut r = Replica::new(CoreConfig {
        window: 2,
        ..CoreConfig::new(0, 3)
    });
    r.campaign_now();
    let mut to_self: Vec<Envelope> = r
        .take_ready()
        .messages
        .into_iter()
        .filter(|m| m.to == 0)
        .collect();
    let ballot = match to_self[0].msg {
        Message::Prepare { ballot, .. } => ballot,
        ref other => panic!("expected a prepare, got {other:?}"),
    };
    // Replica 1 accepted values in instances 0..5 under an older leader.
    let old = Ballot::new(0, 1);
    let accepted = (0..5)
        .map(|slot| PromisedSlot {
            slot,
            ballot: old,
            entry: val(&format!("v{slot}")),
            decided: false,
        })
        .collect();
    let deliver = |r: &mut Replica, msgs: &mut Vec<Envelope>| {
        while !msgs.is_empty() {
            for m in std::mem::take(msgs) {
                r.handle(m);
            }
            msgs.extend(take(r).messages.into_iter().filter(|m| m.to == 0));
        }
    };
    deliver(&mut r, &mut to_self);
    r.handle(env(
        1,
        0,
        Message::Promise {
            ballot,
            accepted,
            floor: 0,
            incarnation: 0,
        },
    ));
    let mut msgs: Vec<Envelope> = r
        .take_ready()
        .messages
        .into_iter()
        .filter(|m| m.to == 0)
        .collect();
    deliver(&mut r, &mut msgs); // the leader's own accepts
    assert!(r.is_leader());
    let accepted_by_1 = |slot| {
        env(
            1,
            0,
            Message::Accepted {
                ballot,
                slot,
                incarnation: 0,
            },
        )
    };
    r.handle(accepted_by_1(4));
    take(&mut r);
    assert_eq!(
        r.status(4),
        Status::Pending,
        "decided beyond commit + window"
    );
    for slot in 0..4 {
        r.handle(accepted_by_1(slot));
    }
    take(&mut r);
    take(&mut r);
    assert_eq!(
        r.commit_index(),
        5,
        "the deferred instance was never decided"
    );
    assert_eq!(r.status(4), Status::Decided(val("v4")));
}

/// Delivers every message among `rs` until none is left (at most 100 rounds).
pub(super) fn settle(rs: &mut [Replica]) {
    for _ in 0..100 {
        let msgs: Vec<Envelope> = rs.iter_mut().flat_map(|r| take(r).messages).collect();
        if msgs.is_empty() {
            return;
        }
        for m in msgs {
            let to = m.to;
            rs[to].handle(m);
        }
    }
    panic!("the group never went quiet");
}

/// Read-index: a read is answered only after a majority acknowledged a heartbeat
/// round that started after the read arrived, even when reads share rounds and an
/// earlier round is still in flight.
#[test]
fn a_read_waits_for_a_round_that_started_after_it_arrived() {
    let mut rs: Vec<Replica> = (0..3).map(|i| replica(i, 3)).collect();
    rs[0].campaign_now();
    settle(&mut rs);
    assert!(rs[0].is_leader());
    let heartbeats = |msgs: Vec<Envelope>, to: NodeId| -> Vec<Envelope> {
        msgs.into_iter()
            .filter(|m| m.to == to && matches!(m.msg, Message::Heartbeat { .. }))
            .collect()
    };
    let answered = |ready: &Ready| -> Vec<u64> {
        ready
            .reads
            .iter()
            .map(|o| match o {
                ReadOutcome::Ready { id, .. } => *id,
                ReadOutcome::NotLeader { id, .. } => panic!("read {id} refused"),
            })
            .collect()
    };
    // Reads 1 and 2 arrive together: one round for both.
    rs[0].read_index(1);
    rs[0].read_index(2);
    let first = heartbeats(take(&mut rs[0]).messages, 1);
    assert_eq!(
        first.len(),
        1,
        "two reads arriving together share one round"
    );
    // Read 3 arrives while that round is in flight: it needs a round of its own.
    rs[0].read_index(3);
    let second = heartbeats(take(&mut rs[0]).messages, 1);
    assert_eq!(second.len(), 1);
    // Replica 1 answers the first round only.
    rs[1].handle(first[0].clone());
    for m in take(&mut rs[1]).messages {
        rs[0].handle(m);
    }
    let ready = take(&mut rs[0]);
    assert_eq!(answered(&ready), vec![1, 2]);
    // Replica 1 answers the second round: now read 3 may be served.
    rs[1].handle(second[0].clone());
    for m in take(&mut rs[1]).messages {
        rs[0].handle(m);
    }
    assert_eq!(answered(&take(&mut rs[0])), vec![3]);
}

/// Three replicas where replica 2 heard nothing while five instances were
/// decided; returns them and replica 2's commit index.
fn lagging_follower(catchup_bytes: usize) -> (Vec<Replica>, Slot) {
    let cfg = |id| CoreConfig {
        catchup_bytes,
        ..CoreConfig::new(id, 3)
    };
    let mut rs: Vec<Replica> = (0..3).map(|i| Replica::new(cfg(i))).collect();
    rs[0].campaign_now();
    settle(&mut rs);
    assert!(rs[0].is_leader());
    for i in 0..5u32 {
        rs[0].propose(i.to_le_bytes().to_vec());
        for _ in 0..10 {
            let msgs: Vec<Envelope> = rs[..2]
                .iter_mut()
                .flat_map(|r| take(r).messages)
                .filter(|m| m.to != 2)
                .collect();
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                let to = m.to;
                rs[to].handle(m);
            }
        }
    }
    let lag = rs[2].commit_index();
    assert!(rs[0].commit_index() >= lag + 5, "nothing to catch up on");
    (rs, lag)
}

/// Replica 2's heartbeat acknowledgement reporting `commit`, to leader `r`.
fn ack_from_2(r: &Replica, commit: Slot) -> Envelope {
    env(
        2,
        0,
        Message::HeartbeatAck {
            ballot: r.promised(),
            round: 0,
            commit,
            done: 0,
            incarnation: Some(0),
        },
    )
}

/// The first slot of every catch-up message `r` sends to replica 2.
fn catch_ups_to_2(r: &mut Replica) -> Vec<Vec<Slot>> {
    take(r)
        .messages
        .into_iter()
        .filter_map(|m| match m.msg {
            Message::Decided { entries, .. } if m.to == 2 => {
                Some(entries.iter().map(|(s, _)| *s).collect())
            }
            _ => None,
        })
        .collect()
}

/// A follower far behind acknowledges every heartbeat; the leader answers with one
/// large catch-up message at a time — the next once the follower reports having
/// learned the last, or after `retransmit_ticks` (it may have been lost) — not a
/// fresh copy of the same entries per acknowledgement.
#[test]
fn a_lagging_follower_gets_one_catch_up_message_at_a_time() {
    // A budget of one byte: every catch-up holds one instance and counts as large.
    let (mut rs, lag) = lagging_follower(1);
    for _ in 0..5 {
        let ack = ack_from_2(&rs[0], lag);
        rs[0].handle(ack);
    }
    assert_eq!(
        catch_ups_to_2(&mut rs[0]),
        vec![vec![lag]],
        "one message for five acks"
    );
    // Learned: the next instance goes at once.
    let ack = ack_from_2(&rs[0], lag + 1);
    rs[0].handle(ack);
    assert_eq!(catch_ups_to_2(&mut rs[0]), vec![vec![lag + 1]]);
    // Lost: sent again once retransmit_ticks have passed, not before.
    for _ in 0..rs[0].config().retransmit_ticks - 1 {
        rs[0].tick();
        let ack = ack_from_2(&rs[0], lag + 1);
        rs[0].handle(ack);
    }
    assert!(
        catch_ups_to_2(&mut rs[0]).is_empty(),
        "resent before retransmit_ticks"
    );
    rs[0].tick();
    let ack = ack_from_2(&rs[0], lag + 1);
    rs[0].handle(ack);
    assert_eq!(catch_ups_to_2(&mut rs[0]), vec![vec![lag + 1]]);
}

/// The usual small lag (an Accept or two lost) is caught up on every
/// acknowledgement, as before: waiting `retransmit_ticks` for a lost small
/// catch-up slowed shard handovers under a lossy network.
#[test]
fn a_small_lag_is_caught_up_on_every_ack() {
    let (mut rs, lag) = lagging_follower(CoreConfig::new(0, 3).catchup_bytes);
    for _ in 0..3 {
        let ack = ack_from_2(&rs[0], lag);
        rs[0].handle(ack);
    }
    let sent = catch_ups_to_2(&mut rs[0]);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent.iter().all(|c| c.first() == Some(&lag) && c.len() >= 5));
}

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

// ---- review: the probe's fresh start in a group of five ----

/// Delivers, among `rs`, every message `pass` lets through (each replica's Ready
/// durable at once), until none is left; returns the messages dropped.
fn deliver_only(rs: &mut [Replica], pass: &dyn Fn(&Envelope) -> bool) -> Vec<Envelope> {
    let mut dropped = Vec::new();
    for _ in 0..100 {
        let msgs: Vec<Envelope> = rs.iter_mut().flat_map(|r| take(r).messages).collect();
        if msgs.is_empty() {
            return dropped;
        }
        for m in msgs {
            if pass(&m) {
                let to = m.to;
                rs[to].handle(m);
            } else {
                dropped.push(m);
            }
        }
    }
    panic!("the group never went quiet");
}

/// Review: "answering Fresh is a promise about the past *and* the future" holds
/// for a candidate that answers (it drops its ballot), but not for a follower
/// that answers `Fresh` and *later* promises the ballot of a replica that did not
/// answer (3 of the 4 others suffice in a group of five). That silent candidate
/// may hold the prober's lost promise: its quorum {silent, lost promise, follower}
/// then never saw what the prober's new incarnation (same incarnation number 0)
/// accepted, and two values are chosen in one instance.
#[test]
fn review_a_fresh_answer_does_not_stop_a_silent_candidate_holding_the_lost_promise() {
    use crate::probe::{decide, Verdict};
    let (a, b, c, d, e) = (0, 1, 2, 3, 4);
    let mut rs: Vec<Replica> = (0..5).map(|i| replica(i, 5)).collect();
    // Replica e campaigns a few times (its round grows); its last Prepare reaches
    // only itself and a, and a's promise reaches e.
    for _ in 0..3 {
        rs[e].campaign_now();
        let _ = take(&mut rs[e]);
    }
    rs[e].campaign_now();
    let prepares: Vec<Envelope> = take(&mut rs[e]).messages;
    let prepare_to_b = prepares.iter().find(|m| m.to == b).cloned().unwrap();
    for p in prepares.into_iter().filter(|m| m.to == e || m.to == a) {
        rs[p.to].handle(p);
    }
    deliver_only(&mut rs, &|m| m.to == e && (m.from == a || m.from == e));
    // a loses its disk and probes: b, c and d answer; e is cut off.
    let answers = vec![
        None,
        Some(rs[b].probe_answer()),
        Some(rs[c].probe_answer()),
        Some(rs[d].probe_answer()),
        None,
    ];
    if decide(a, &answers) != Verdict::Fresh {
        return; // a recovers as a lost disk: a new incarnation, safe
    }
    rs[a] = replica(a, 5);
    // d leads with a (new), c and itself, and decides "x" in instance 0; nothing
    // of this reaches b or e.
    rs[d].campaign_now();
    let cut = |m: &Envelope| m.to != b && m.to != e && m.from != e && m.from != b;
    deliver_only(&mut rs, &cut);
    assert!(rs[d].is_leader());
    rs[d].propose(b"x".to_vec());
    deliver_only(&mut rs, &cut);
    assert_eq!(rs[d].decided(0), Some(&val("x")));
    // e's Prepare, retransmitted, reaches b (which answered Fresh): quorum
    // {e, a's lost promise, b}. e proposes "y": e, b and the new a accept.
    rs[b].handle(prepare_to_b);
    let to_e = |m: &Envelope| (m.to == e && m.from != d) || (m.from == e && m.to != d);
    deliver_only(&mut rs, &to_e);
    assert!(rs[e].is_leader(), "e never completed its quorum");
    rs[e].propose(b"y".to_vec());
    deliver_only(&mut rs, &to_e);
    assert_eq!(
        rs[e].decided(0),
        rs[d].decided(0),
        "two values chosen in instance 0"
    );
}

/// Review: in a group of five, two replicas whose directories were emptied
/// (a minority of disks lost) probe at once and each answers `Fresh` to the
/// other while probing. With two more peers that never took part (cut off), each
/// counts three `Fresh` answers and starts fresh, though the lost pair and the
/// silent fifth formed the quorum that chose a value.
#[test]
fn review_two_wiped_replicas_of_five_vouch_for_each_other() {
    use crate::probe::{decide, Verdict};
    let (e, a, x, b, c) = (0, 1, 2, 3, 4);
    let mut rs: Vec<Replica> = (0..5).map(|i| replica(i, 5)).collect();
    let trio = |m: &Envelope| [e, a, x].contains(&m.to) && [e, a, x].contains(&m.from);
    rs[e].campaign_now();
    deliver_only(&mut rs, &trio);
    assert!(rs[e].is_leader());
    rs[e].propose(b"v".to_vec());
    deliver_only(&mut rs, &trio);
    assert_eq!(rs[e].decided(0), Some(&val("v")));
    // a and x lose their disks and probe at once (each answers Fresh while it
    // probes); e is cut off, b and c never heard anything.
    for me in [a, x] {
        let mut answers = vec![None; 5];
        for (i, ans) in answers.iter_mut().enumerate() {
            if i == b || i == c {
                *ans = Some(rs[i].probe_answer());
            } else if (i == a || i == x) && i != me {
                *ans = Some(ProbeAnswer::Fresh); // probing itself
            }
        }
        if decide(me, &answers) != Verdict::Fresh {
            return; // it recovers as a lost disk: a new incarnation, safe
        }
    }
    rs[a] = replica(a, 5);
    rs[x] = replica(x, 5);
    let four = |m: &Envelope| m.to != e && m.from != e;
    rs[b].campaign_now();
    deliver_only(&mut rs, &four);
    assert!(rs[b].is_leader());
    rs[b].propose(b"w".to_vec());
    deliver_only(&mut rs, &four);
    assert_eq!(
        rs[e].decided(0),
        rs[b].decided(0),
        "two values chosen in instance 0"
    );
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

/// Review: replica 2 loses its disk, asks to be reincarnated (nonce 11), loses
/// its disk again before that is decided and asks again (nonce 22). Its second
/// request is decided; it votes again. Then its first request, delayed in the
/// network, reaches the leader, which proposes it (`on_reincarnate` only checks
/// that nonce 11 is not in the membership yet): a newer epoch names incarnation 2
/// with nonce 11 — a process that no longer exists — and the live replica 2
/// (incarnation 1, nonce 22) never counts again; restarted, it still recovers
/// with nonce 22 and never votes. The group has lost a replica for good.
#[test]
fn review_a_stale_reincarnation_request_disowns_the_live_incarnation() {
    const WINDOW: u64 = 4;
    let cfg = |id| CoreConfig {
        window: WINDOW,
        ..CoreConfig::new(id, 3)
    };
    let mut rs: Vec<Replica> = (0..3).map(|i| Replica::new(cfg(i))).collect();
    let run = |rs: &mut Vec<Replica>, ticks: usize, hold: &mut Vec<Envelope>| {
        for _ in 0..ticks {
            let mut msgs = Vec::new();
            for r in rs.iter_mut() {
                r.tick();
                msgs.extend(take(r).messages);
            }
            for m in msgs {
                if matches!(m.msg, Message::Reincarnate { nonce: 11, .. }) {
                    hold.push(m); // delayed in the network
                } else {
                    let to = m.to;
                    rs[to].handle(m);
                }
            }
        }
    };
    let mut held = Vec::new();
    rs[0].campaign_now();
    run(&mut rs, 20, &mut held);
    assert!(rs[0].is_leader());
    // Lost disk: recovering with nonce 11; its requests are delayed.
    rs[2] = Replica::new(CoreConfig {
        recovering: Some(11),
        ..cfg(2)
    });
    run(&mut rs, 30, &mut held);
    assert!(!held.is_empty());
    // Lost again: nonce 22.
    rs[2] = Replica::new(CoreConfig {
        recovering: Some(22),
        ..cfg(2)
    });
    run(&mut rs, 200, &mut held);
    assert!(rs[2].votes_now(), "the second request was never decided");
    // The first request arrives at last.
    for m in held.drain(..).filter(|m| m.to == 0).take(1) {
        rs[0].handle(m);
    }
    for i in 0..20u32 {
        rs[0].propose(i.to_le_bytes().to_vec());
        run(&mut rs, 5, &mut held);
    }
    assert!(
        rs[2].votes_now(),
        "replica 2 no longer counts: membership {:?}",
        rs[0].membership().latest()
    );
}

/// A group of `peers` replicas with an in-flight window of 4, replica 0 elected.
fn led_group(peers: usize) -> Vec<Replica> {
    let mut rs: Vec<Replica> = (0..peers)
        .map(|i| Replica::new(window_4(i, peers)))
        .collect();
    rs[0].campaign_now();
    exchange(&mut rs, 20);
    assert!(rs[0].is_leader());
    rs
}

/// Replica `id` of `peers` after a lost disk, recovering with `nonce`.
fn recovering(id: NodeId, peers: usize, nonce: u64) -> Replica {
    Replica::new(CoreConfig {
        recovering: Some(nonce),
        ..window_4(id, peers)
    })
}

fn window_4(id: NodeId, peers: usize) -> CoreConfig {
    CoreConfig {
        window: 4,
        ..CoreConfig::new(id, peers)
    }
}

/// Ticks every replica `ticks` times, delivering every message at once.
fn exchange(rs: &mut [Replica], ticks: usize) {
    for _ in 0..ticks {
        let mut msgs = Vec::new();
        for r in rs.iter_mut() {
            r.tick();
            msgs.extend(take(r).messages);
        }
        for m in msgs {
            let to = m.to;
            rs[to].handle(m);
        }
    }
}

/// Replica 0 proposes one command per number in `values`, five ticks apart.
fn propose_and_exchange(rs: &mut [Replica], values: std::ops::Range<u32>) {
    for i in values {
        rs[0].propose(i.to_le_bytes().to_vec());
        exchange(rs, 5);
    }
}

/// Found by the simulator (seed 777, once a replica had to be a voter after the
/// faults): a recovering replica installed a snapshot past its own
/// reincarnation, and the disk filled before the membership record that came
/// with it was written. Restarted, its state and log floor were past the
/// `Reincarnate` instance, its membership was not: no decision, snapshot or
/// heartbeat would ever tell it its incarnation, and it stayed a non-voter for
/// good. A replica that knows a request is decided now answers it with its
/// membership.
#[test]
fn a_replica_that_lost_the_record_of_its_reincarnation_learns_it_again() {
    let mut rs = led_group(3);
    rs[2] = recovering(2, 3, 11);
    exchange(&mut rs, 50);
    propose_and_exchange(&mut rs, 0..10);
    assert!(rs[2].votes_now(), "the reincarnation was never decided");
    let floor = rs[0].commit_index();
    // Restarted from a log that kept the snapshot's floor but not the membership.
    rs[2] = recovering(2, 3, 11);
    rs[2].install_snapshot(floor);
    assert_eq!(rs[2].incarnation(), None);
    exchange(&mut rs, 50);
    assert_eq!(
        rs[2].incarnation(),
        Some(1),
        "the replica never learned its decided reincarnation"
    );
    propose_and_exchange(&mut rs, 10..20);
    assert!(rs[2].votes_now());
}

/// Found by the simulator (seed 2150): a replica lost its disk a second time and
/// recovered from a snapshot whose membership record it could not write (a full
/// disk); its view still named incarnation 0 for itself, so every request it
/// sent named 0 as the incarnation it replaces, and the group, whose newest was 1,
/// left each one out. Now the request is answered with the membership, and the
/// next one names the newest incarnation.
#[test]
fn a_recovering_replica_with_a_stale_membership_is_reincarnated() {
    const WINDOW: u64 = 4;
    let cfg = |id| CoreConfig {
        window: WINDOW,
        ..CoreConfig::new(id, 3)
    };
    let mut rs: Vec<Replica> = (0..3).map(|i| Replica::new(cfg(i))).collect();
    rs[0].campaign_now();
    exchange(&mut rs, 20);
    rs[2] = Replica::new(CoreConfig {
        recovering: Some(11),
        ..cfg(2)
    });
    exchange(&mut rs, 50);
    propose_and_exchange(&mut rs, 0..10);
    assert_eq!(rs[2].incarnation(), Some(1));
    // Lost again; its state comes from a snapshot, its membership does not.
    let floor = rs[0].commit_index();
    rs[2] = Replica::new(CoreConfig {
        recovering: Some(22),
        ..cfg(2)
    });
    rs[2].install_snapshot(floor);
    exchange(&mut rs, 50);
    propose_and_exchange(&mut rs, 10..20);
    assert_eq!(
        rs[2].incarnation(),
        Some(2),
        "the replica was never reincarnated: membership {:?}",
        rs[0].membership().latest()
    );
    assert!(rs[2].votes_now());
}

/// Attack: a replica that lost its disk right after asking to be reincarnated
/// (nonce 11) asks again from its next disk (nonce 22), naming incarnation 0
/// too. The leader has 11's request in flight, not yet decided, so its view
/// still names 0 as the newest: it proposes 22's request right behind it. In
/// log order 11's is applied, and 22's, naming 0 where the newest is now 1, is
/// stale and changes nothing. But replica 2 (nonce 22) recovers from a snapshot
/// that covers 11's instance and not 22's, and a crash keeps its state and not
/// the membership record (seed 777's restart): on its stale view 22's entry
/// names the newest, so it applies it and takes incarnation 1, the group's
/// incarnation of nonce 11. Its votes then count as that lost incarnation's.
#[test]
fn attack_a_doomed_request_gives_a_stale_replica_another_nonces_incarnation() {
    let mut rs = led_group(3);
    propose_and_exchange(&mut rs, 0..3);
    // Nonce 11 asked and lost its disk at once; nonce 22's first request (it
    // knows no membership yet) reaches the leader in the same tick.
    rs[2] = recovering(2, 3, 22);
    for nonce in [11, 22] {
        rs[0].handle(env(2, 0, Message::Reincarnate { nonce, replaces: 0 }));
    }
    // Replica 2 is down while both are decided by replicas 0 and 1.
    let down = |m: &Envelope| m.to != 2 && m.from != 2;
    for _ in 0..30 {
        for r in rs.iter_mut().take(2) {
            r.tick();
        }
        deliver_only(&mut rs, &down);
    }
    propose_and_exchange_without(&mut rs, 3..6, 2);
    let slot_of = |r: &Replica, n: u64| {
        (0..r.commit_index()).find(
            |&s| matches!(r.decided(s).and_then(Entry::reincarnation), Some(x) if x.nonce == n),
        )
    };
    let truth = rs[0].membership().clone();
    assert_eq!(
        truth.latest()[2],
        Member {
            incarnation: 1,
            nonce: 11
        }
    );
    // (A leader that leaves 22's request out: the snapshot covers 11's.)
    let s11 = slot_of(&rs[0], 11).expect("11's request decided");
    let snap = slot_of(&rs[0], 22).unwrap_or(s11 + 1);
    // Restarted from a snapshot covering 11's instance, not 22's, whose
    // membership record the crash lost.
    rs[2] = recovering(2, 3, 22);
    rs[2].install_snapshot(snap);
    // Catch-up arrives before any answer carrying the membership.
    let no_membership = |m: &Envelope| !matches!(m.msg, Message::Membership { .. });
    for _ in 0..12 {
        for r in rs.iter_mut() {
            r.tick();
        }
        deliver_only(&mut rs, &no_membership);
    }
    exchange(&mut rs, 50);
    propose_and_exchange(&mut rs, 6..12);
    // With replica 1 cut off, does the leader decide on replica 2's vote?
    let before = rs[0].commit_index();
    propose_and_exchange_without(&mut rs, 12..13, 1);
    let counted = rs[0].commit_index() > before;
    exchange(&mut rs, 20);
    let k = rs[2].incarnation();
    assert!(
        k.is_none() || rs[0].membership().incarnation_of(2, 22).map(|(k, _)| k) == k,
        "replica 2 (nonce 22) votes as incarnation {k:?}, which the group gave to \
         {:?} (the leader decided on its vote: {counted}); its view: {:?}",
        rs[0].membership().latest()[2],
        rs[2].membership()
    );
    assert!(rs[2].votes_now(), "replica 2 was never reincarnated");
}

/// Like `propose_and_exchange`, with replica `down` cut off.
fn propose_and_exchange_without(rs: &mut [Replica], values: std::ops::Range<u32>, down: NodeId) {
    let pass = |m: &Envelope| m.to != down && m.from != down;
    for i in values {
        rs[0].propose(i.to_le_bytes().to_vec());
        for _ in 0..5 {
            for (j, r) in rs.iter_mut().enumerate() {
                if j != down {
                    r.tick();
                }
            }
            deliver_only(rs, &pass);
        }
    }
}

/// Attack: replica 4 is reincarnated, then restarts from a snapshot past that
/// instance whose membership record a crash lost (seed 777's restart). While it
/// is down replica 1 is reincarnated. Back, replica 4 learns that instance by
/// catch-up before any answer with the membership arrives, and applies it on
/// its stale view: its new epoch names replica 4's lost incarnation 0, where
/// every other replica's names 1. The membership that comes next is merged by
/// start slot, its own epoch kept: it learns its incarnation 1 from the older
/// epoch, but the newest one does not count it, so it never votes again, and
/// no longer asks.
#[test]
fn attack_a_reincarnation_applied_on_a_stale_membership_leaves_a_replica_out_for_good() {
    let mut rs = led_group(5);
    rs[4] = recovering(4, 5, 11);
    exchange(&mut rs, 50);
    propose_and_exchange(&mut rs, 0..10);
    assert!(rs[4].votes_now(), "the reincarnation was never decided");
    let floor = rs[0].commit_index();
    // Replica 4 restarts past its reincarnation without the membership, and
    // stays down while replica 1 loses its disk and is reincarnated.
    rs[4] = recovering(4, 5, 11);
    rs[4].install_snapshot(floor);
    rs[1] = recovering(1, 5, 33);
    let down = |m: &Envelope| m.to != 4 && m.from != 4;
    for _ in 0..50 {
        for r in rs.iter_mut().take(4) {
            r.tick();
        }
        deliver_only(&mut rs, &down);
    }
    propose_and_exchange_without(&mut rs, 10..20, 4);
    assert!(rs[1].votes_now(), "replica 1 was never reincarnated");
    // Back: catch-up before the membership.
    let no_membership = |m: &Envelope| !matches!(m.msg, Message::Membership { .. });
    for _ in 0..9 {
        for r in rs.iter_mut() {
            r.tick();
        }
        deliver_only(&mut rs, &no_membership);
    }
    exchange(&mut rs, 50);
    propose_and_exchange(&mut rs, 20..30);
    assert!(
        rs[4].votes_now(),
        "replica 4 (incarnation {:?}) never votes again: its view {:?}, the group's {:?}",
        rs[4].incarnation(),
        rs[4].membership(),
        rs[0].membership()
    );
}

/// The root of the two holes above: a replica restarted with its application
/// state past its log (a snapshot installed, then a crash that lost the log's
/// tail with the snapshot's membership) applied reincarnations on a stale
/// membership. Here the group decided two requests of replica 2 in a row, 11's
/// and then 22's naming the same incarnation (as a deposed leader's leftover
/// can still make it); 22's is stale. Replica 2 (nonce 22) restarts with its
/// state covering 11's instance only. In doubt, it neither votes nor applies
/// until a peer's membership covering its state arrives; then 22's entry
/// changes nothing for it either, and it asks again under the right view.
#[test]
fn a_replica_whose_state_is_ahead_of_its_log_waits_for_the_membership() {
    let mut rs = led_group(3);
    propose_and_exchange(&mut rs, 0..3);
    let s = rs[0].commit_index();
    for (slot, nonce) in [(s, 11), (s + 1, 22)] {
        rs[0].start(
            slot,
            Entry::Reincarnate {
                node: 2,
                nonce,
                replaces: 0,
            },
        );
    }
    exchange(&mut rs, 10);
    propose_and_exchange(&mut rs, 3..6);
    assert_eq!(
        rs[0].membership().incarnation_of(2, 11).map(|(k, _)| k),
        Some(1)
    );
    assert_eq!(rs[0].membership().incarnation_of(2, 22), None);
    // Replica 2 (nonce 22) restarts: state covering 11's instance, not 22's.
    rs[2] = recovering(2, 3, 22);
    rs[2].doubt_membership(s + 1);
    let no_membership = |m: &Envelope| !matches!(m.msg, Message::Membership { .. });
    for _ in 0..12 {
        for r in rs.iter_mut() {
            r.tick();
        }
        deliver_only(&mut rs, &no_membership);
    }
    // Without the membership, it may learn the decisions again and apply them
    // in order (11's request first): never may 22's stale request give it the
    // incarnation 11's request created.
    assert_ne!(
        rs[2].incarnation(),
        Some(1),
        "applied 22's stale request on a stale membership"
    );
    exchange(&mut rs, 50);
    propose_and_exchange(&mut rs, 6..16);
    let group = rs[0].membership().incarnation_of(2, 22).map(|(k, _)| k);
    assert_eq!(group, Some(2), "22 was never reincarnated");
    assert_eq!(rs[2].incarnation(), group);
    assert!(rs[2].votes_now());
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
