//! Issue #18, B1: numbers from the network (slots, floors, commit watermarks,
//! rounds) that a forged or buggy peer can set to anything. None of them may make
//! a replica loop for long, allocate a lot, wait forever, or overflow; and the
//! group keeps deciding afterwards.

use super::tests::{env, replica, settle, take, val};
use super::*;
use crate::message::PromisedSlot;

/// A group of three whose replica 0 leads, with one instance decided everywhere.
fn group() -> Vec<Replica> {
    let mut rs: Vec<Replica> = (0..3).map(|i| replica(i, 3)).collect();
    rs[0].campaign_now();
    settle(&mut rs);
    assert!(rs[0].is_leader());
    decides_everywhere(&mut rs, 0, "warm-up");
    rs
}

/// Replica `leader` proposes `cmd`; every replica sees it decided.
fn decides_everywhere(rs: &mut [Replica], leader: NodeId, cmd: &str) {
    rs[leader].propose(cmd.as_bytes().to_vec());
    settle(rs);
    let slot = rs[leader].commit_index() - 1;
    for r in rs.iter() {
        assert_eq!(
            r.status(slot),
            Status::Decided(val(cmd)),
            "replica {} did not decide {cmd:?} in {slot}",
            r.id()
        );
    }
}

/// Replica 0 falls silent until replica 1 or 2 is elected; returns the new leader.
/// Then everyone hears everyone again.
fn elect_without_0(rs: &mut [Replica]) -> NodeId {
    for _ in 0..2000 {
        for r in rs[1..].iter_mut() {
            r.tick();
        }
        let msgs: Vec<Envelope> = rs[1..].iter_mut().flat_map(|r| take(r).messages).collect();
        for m in msgs.into_iter().filter(|m| m.to != 0) {
            let to = m.to;
            rs[to].handle(m);
        }
        if let Some(l) = (1..3).find(|&i| rs[i].is_leader()) {
            let _ = take(&mut rs[0]);
            settle(rs);
            return l;
        }
    }
    panic!("no new leader was elected");
}

/// The ballot the group's replicas follow.
fn leader_ballot(rs: &[Replica]) -> Ballot {
    rs[1].promised()
}

#[test]
fn a_heartbeat_claiming_every_instance_decided_does_not_halt_a_follower() {
    let mut rs = group();
    let ballot = leader_ballot(&rs);
    let commit = rs[1].commit_index();
    rs[1].handle(env(
        0,
        1,
        Message::Heartbeat {
            ballot,
            commit: u64::MAX,
            round: 0,
            done: vec![0; 3],
        },
    ));
    rs[2].handle(env(
        0,
        2,
        Message::Accept {
            ballot,
            slot: commit - 1,
            entry: val("warm-up"),
            commit: u64::MAX,
        },
    ));
    assert_eq!(rs[1].commit_index(), commit, "decided what it never saw");
    let _ = take(&mut rs[1]);
    let _ = take(&mut rs[2]);
    decides_everywhere(&mut rs, 0, "after");
}

#[test]
fn a_decided_floor_beyond_what_any_leader_announced_asks_for_no_snapshot() {
    let mut rs = group();
    rs[1].handle(env(
        2,
        1,
        Message::Decided {
            entries: vec![],
            floor: u64::MAX,
        },
    ));
    let ready = take(&mut rs[1]);
    assert!(
        !ready
            .events
            .iter()
            .any(|e| matches!(e, Event::SnapshotNeeded { .. })),
        "{:?}",
        ready.events
    );
    decides_everywhere(&mut rs, 0, "after");
}

#[test]
fn a_floor_is_believed_only_up_to_the_commit_a_leader_announced() {
    let mut r = replica(1, 3);
    let ballot = Ballot::new(1, 0);
    r.handle(env(
        0,
        1,
        Message::Heartbeat {
            ballot,
            commit: 40,
            round: 1,
            done: vec![0; 3],
        },
    ));
    r.handle(env(
        0,
        1,
        Message::Decided {
            entries: vec![],
            floor: u64::MAX,
        },
    ));
    let ready = take(&mut r);
    assert!(
        ready.events.contains(&Event::SnapshotNeeded { floor: 40 }),
        "{:?}",
        ready.events
    );
}

#[test]
fn a_ballot_round_far_beyond_any_seen_is_ignored() {
    let mut rs = group();
    let forged = Ballot::new(u64::MAX, 2);
    let commit = rs[0].commit_index();
    for to in [0, 1] {
        rs[to].handle(env(
            2,
            to,
            Message::Accept {
                ballot: forged,
                slot: commit,
                entry: val("forged"),
                commit: 0,
            },
        ));
        let _ = take(&mut rs[to]);
    }
    let real = leader_ballot(&rs);
    rs[0].handle(env(
        1,
        0,
        Message::Reject {
            ballot: real,
            promised: forged,
        },
    ));
    for r in &rs {
        assert!(r.promised() < forged, "replica {} promised it", r.id());
    }
    assert!(rs[0].is_leader(), "stepped down for a forged ballot");
    decides_everywhere(&mut rs, 0, "after");
    // Elections still pick ballots above every real one, without overflow.
    let leader = elect_without_0(&mut rs);
    decides_everywhere(&mut rs, leader, "new leader");
}

#[test]
fn a_promise_reporting_instances_far_beyond_the_window_does_not_make_a_leader_fill_the_gap() {
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
    let reported = |slot| PromisedSlot {
        slot,
        ballot: Ballot::new(1, 1),
        entry: val("v"),
        decided: false,
    };
    r.handle(env(
        1,
        0,
        Message::Promise {
            ballot,
            accepted: vec![reported(0)],
            floor: 0,
            incarnation: 0,
        },
    ));
    r.handle(env(
        2,
        0,
        Message::Promise {
            ballot,
            accepted: vec![reported(1 << 40), reported(u64::MAX)],
            floor: 0,
            incarnation: 0,
        },
    ));
    // The far promise is ignored whole: whatever the candidate does next, it
    // proposes nothing beyond instance 0.
    let ready = take(&mut r);
    let slots: Vec<Slot> = ready
        .messages
        .iter()
        .filter_map(|e| match e.msg {
            Message::Accept { slot, .. } if e.to == 0 => Some(slot),
            _ => None,
        })
        .collect();
    assert!(
        slots.iter().all(|&s| s == 0),
        "proposed beyond any possible acceptance: {slots:?}"
    );
}

#[test]
fn an_accept_for_the_last_slot_number_overflows_nothing() {
    let mut rs = group();
    let ballot = leader_ballot(&rs);
    rs[1].handle(env(
        0,
        1,
        Message::Accept {
            ballot,
            slot: u64::MAX,
            entry: val("far"),
            commit: 0,
        },
    ));
    let records = take(&mut rs[1]).records;
    let restored = Replica::restore(rs[1].config().clone(), records);
    assert_eq!(restored.floor(), 0);
    decides_everywhere(&mut rs, 0, "after");
    // Replica 1 ignored the far instance, so it has nothing to report when it
    // promises: the new leader has no gap to fill.
    let leader = elect_without_0(&mut rs);
    decides_everywhere(&mut rs, leader, "new leader");
}

#[test]
fn a_heartbeat_ack_for_a_round_never_sent_confirms_no_read() {
    let mut rs = group();
    let ballot = leader_ballot(&rs);
    let commit = rs[0].commit_index();
    // Past the lease the election gave, so the read takes the read-index path.
    let lease = rs[0].config().lease_ticks();
    rs[0].advance(lease);
    let _ = take(&mut rs[0]);
    rs[0].handle(env(
        1,
        0,
        Message::HeartbeatAck {
            ballot,
            round: u64::MAX,
            commit,
            done: 0,
            incarnation: Some(0),
        },
    ));
    rs[0].read_index(7);
    let ready = take(&mut rs[0]);
    assert!(
        !ready
            .reads
            .iter()
            .any(|r| matches!(r, ReadOutcome::Ready { id: 7, .. })),
        "a read confirmed by an acknowledgement of a round not yet sent: {:?}",
        ready.reads
    );
}

#[test]
fn a_forwarded_start_far_ahead_is_ignored() {
    let mut rs = group();
    rs[0].handle(env(
        1,
        0,
        Message::ForwardStart {
            slot: 1 << 40,
            entry: val("far"),
        },
    ));
    let _ = take(&mut rs[0]);
    assert!(!rs[0].has_ready(), "the leader keeps filling the gap");
    let near = rs[0].commit_index() + 3;
    rs[0].handle(env(
        1,
        0,
        Message::ForwardStart {
            slot: near,
            entry: val("near"),
        },
    ));
    settle(&mut rs);
    assert_eq!(rs[2].status(near), Status::Decided(val("near")));
}

/// Issue #18, B2: a 100 MiB value made a record above the log's frame limit;
/// storage failed and the replica stopped voting. No command too large for one
/// record is proposed, and no batch of many commands grows past one record.
#[test]
fn no_record_encodes_above_the_log_frame_limit() {
    use crate::storage::frame::{self, MAX_FRAME_PAYLOAD};
    let mut cfg = CoreConfig::new(0, 1);
    cfg.max_batch_bytes = MAX_FRAME_PAYLOAD * 2;
    assert!(cfg.validate().is_err(), "a batch limit above one record");
    cfg.max_batch_bytes = MAX_COMMAND_BYTES;
    assert_eq!(cfg.validate(), Ok(()));
    let mut r = Replica::new(cfg);
    while !r.is_leader() {
        r.tick();
        for m in take(&mut r).messages {
            r.handle(m);
        }
    }
    r.propose(vec![0; MAX_FRAME_PAYLOAD + 1]);
    for i in 1..=6u8 {
        r.propose(vec![i; 12 << 20]);
    }
    let mut buf = Vec::new();
    let mut decided = 0;
    for _ in 0..100 {
        let ready = take(&mut r);
        for rec in &ready.records {
            buf.clear();
            let len = frame::encode(rec, &mut buf).expect("every record fits one frame");
            assert!(len <= MAX_FRAME_PAYLOAD + frame::HEADER_LEN);
        }
        decided += ready
            .committed
            .iter()
            .map(|(_, e)| e.commands().len())
            .sum::<usize>();
        for m in ready.messages {
            r.handle(m);
        }
    }
    assert_eq!(
        decided, 6,
        "the six commands that fit are decided, not the other"
    );
}
