//! Leader leases (rule 10 of the crate docs): reads answered from the lease with
//! no message sent, the read-index path once it has expired or the leader saw a
//! rival, no lease after stepping down, and the promise guard that makes the
//! lease safe — after an acknowledgement, after a restart, as a candidate.

use super::*;

/// Three replicas, replica 0 elected, every message delivered: replicas 1 and 2
/// acknowledged its first heartbeat round, so it holds a lease.
fn leased() -> Vec<Replica> {
    let mut rs: Vec<Replica> = (0..3).map(|i| replica(i, 3)).collect();
    rs[0].campaign_now();
    settle(&mut rs);
    assert!(rs[0].is_leader());
    rs
}

/// The read ids `ready` answers as ready, and the messages it sends.
fn answered(ready: &Ready) -> Vec<(u64, Slot)> {
    ready
        .reads
        .iter()
        .map(|o| match o {
            ReadOutcome::Ready { id, index } => (*id, *index),
            ReadOutcome::NotLeader { id, .. } => panic!("read {id} refused"),
        })
        .collect()
}

fn promises_from(ready: &Ready, to: NodeId) -> usize {
    ready
        .all_messages()
        .filter(|m| m.to == to && matches!(m.msg, Message::Promise { .. }))
        .count()
}

fn prepare(from: NodeId, to: NodeId, round: u64) -> Envelope {
    env(
        from,
        to,
        Message::Prepare {
            ballot: Ballot::new(round, from),
            from_slot: 0,
        },
    )
}

#[test]
fn the_lease_is_derived_from_the_election_timeout_with_room_for_drift() {
    assert_eq!(CoreConfig::new(0, 3).lease_ticks(), 23);
    let rho = MAX_CLOCK_DRIFT_PERCENT;
    for e in 3..1000u32 {
        let cfg = CoreConfig {
            election_ticks: e,
            ..CoreConfig::new(0, 3)
        };
        let lease = cfg.lease_ticks();
        // The lease on the slowest clock, lease / (1 - ρ), ends no later than
        // the guard on the fastest, (e - 1) / (1 + ρ); and not much earlier.
        assert!(lease * (100 + rho) <= u64::from(e - 1) * (100 - rho));
        assert!((lease + 1) * (100 + rho) > u64::from(e - 1) * (100 - rho));
        assert!(lease >= 1);
    }
}

#[test]
fn a_lease_read_is_answered_at_once_with_no_message_sent() {
    let mut rs = leased();
    rs[0].propose(b"w".to_vec());
    settle(&mut rs);
    let commit = rs[0].commit_index();
    assert!(commit > 0);
    rs[0].read_index(1);
    let ready = take(&mut rs[0]);
    assert_eq!(answered(&ready), vec![(1, commit)]);
    assert!(
        ready.messages.is_empty(),
        "a lease read sent {:?}",
        ready.messages
    );
    assert_eq!(
        rs[0].read_stats(),
        ReadStats {
            lease: 1,
            read_index: 0
        }
    );
}

#[test]
fn after_the_lease_expires_a_read_takes_the_read_index_path_which_renews_it() {
    let mut rs = leased();
    let lease = rs[0].config().lease_ticks();
    // The election's round was sent at tick 0: the lease holds until tick
    // `lease` (exclusive) of the leader's clock.
    rs[0].advance(lease - 1);
    let _ = take(&mut rs[0]); // its heartbeats are lost
    rs[0].read_index(1);
    assert_eq!(answered(&take(&mut rs[0])), vec![(1, 0)]);
    rs[0].tick();
    let _ = take(&mut rs[0]);
    rs[0].read_index(2);
    let ready = take(&mut rs[0]);
    assert!(ready.reads.is_empty(), "answered from an expired lease");
    let heartbeats = ready
        .messages
        .iter()
        .filter(|m| matches!(m.msg, Message::Heartbeat { .. }))
        .count();
    assert_eq!(heartbeats, 2, "a read-index round to each follower");
    for m in ready.messages {
        let to = m.to;
        rs[to].handle(m);
        for ack in take(&mut rs[to]).messages {
            rs[0].handle(ack);
        }
    }
    assert_eq!(answered(&take(&mut rs[0])), vec![(2, 0)]);
    // The round that answered it renewed the lease.
    rs[0].read_index(3);
    let ready = take(&mut rs[0]);
    assert_eq!(answered(&ready), vec![(3, 0)]);
    assert!(ready.messages.is_empty());
    assert_eq!(
        rs[0].read_stats(),
        ReadStats {
            lease: 2,
            read_index: 1
        }
    );
}

#[test]
fn a_leader_that_steps_down_does_not_answer_from_its_lease() {
    let mut rs = leased();
    let own = rs[0].promised();
    // A heartbeat of a higher ballot (a leader elected elsewhere): it follows.
    rs[0].handle(env(
        2,
        0,
        Message::Heartbeat {
            ballot: Ballot::new(own.round + 1, 2),
            commit: 0,
            round: 1,
            done: vec![0; 3],
        },
    ));
    assert!(!rs[0].is_leader());
    rs[0].read_index(1);
    let ready = take(&mut rs[0]);
    assert!(matches!(
        &ready.reads[..],
        [ReadOutcome::NotLeader { id: 1, .. }]
    ));
    assert_eq!(rs[0].read_stats().lease, 0);
}

#[test]
fn a_leader_that_sees_a_higher_ballot_stops_answering_from_its_lease() {
    let mut rs = leased();
    let own = rs[0].promised();
    // A rival's Prepare: the leader (with a live majority) ignores it, but its
    // lease no longer counts the rounds sent before.
    rs[0].handle(prepare(2, 0, own.round + 1));
    assert!(rs[0].is_leader());
    rs[0].read_index(1);
    let ready = take(&mut rs[0]);
    assert!(ready.reads.is_empty(), "answered from a voided lease");
    assert_eq!(promises_from(&ready, 2), 0);
}

#[test]
fn a_follower_that_acknowledged_a_leader_promises_no_one_else_for_an_election_timeout() {
    let mut rs = leased();
    let e = u64::from(rs[1].config().election_ticks);
    // Replica 1 acknowledged the leader's heartbeat at its tick 0. Replica 2
    // campaigns, and replica 1 campaigns itself (an operator's campaign_now):
    // neither gets its promise while the guard holds — not even a candidate's
    // own (a candidate is never sticky, but the guard is not stickiness).
    rs[1].campaign_now();
    let own = take(&mut rs[1]);
    for m in own.messages.into_iter().filter(|m| m.to == 1) {
        rs[1].handle(m);
    }
    let ready = take(&mut rs[1]);
    assert!(
        !ready
            .records
            .iter()
            .any(|r| matches!(r, Record::Promised(_))),
        "promised its own campaign within the guard"
    );
    assert_eq!(promises_from(&ready, 1), 0);
    rs[1].advance(e - 1);
    let _ = take(&mut rs[1]);
    rs[1].handle(prepare(2, 1, 50));
    assert_eq!(promises_from(&take(&mut rs[1]), 2), 0);
    // A whole election timeout after the acknowledgement: free again.
    rs[1].tick();
    let _ = take(&mut rs[1]);
    rs[1].handle(prepare(2, 1, 51));
    assert_eq!(promises_from(&take(&mut rs[1]), 2), 1);
}

#[test]
fn the_guard_lets_the_acknowledged_leader_campaign_again() {
    let mut rs = leased();
    // The leader stepped down and campaigns again: its lease is gone with its
    // role, and the followers may promise it.
    rs[1].handle(prepare(0, 1, 50));
    assert_eq!(promises_from(&take(&mut rs[1]), 0), 1);
}

#[test]
fn a_follower_that_acknowledged_two_leaders_promises_no_one_until_both_guards_end() {
    let mut rs = leased();
    let e = u64::from(rs[1].config().election_ticks);
    rs[1].advance(5);
    let _ = take(&mut rs[1]);
    // A heartbeat of leader 2 at a higher ballot: replica 1 acknowledges it too.
    rs[1].handle(env(
        2,
        1,
        Message::Heartbeat {
            ballot: Ballot::new(40, 2),
            commit: 0,
            round: 1,
            done: vec![0; 3],
        },
    ));
    let _ = take(&mut rs[1]);
    // Neither leader may be promised while 0's guard holds (0 may still hold a
    // lease replica 1 helped give), nor another after it until 2's ends.
    rs[1].handle(prepare(0, 1, 41));
    rs[1].handle(prepare(2, 1, 42));
    let ready = take(&mut rs[1]);
    assert_eq!(promises_from(&ready, 0) + promises_from(&ready, 2), 0);
    rs[1].advance(e - 5);
    let _ = take(&mut rs[1]);
    rs[1].handle(prepare(0, 1, 43));
    assert_eq!(promises_from(&take(&mut rs[1]), 0), 0, "2's guard holds");
    rs[1].handle(prepare(2, 1, 44));
    assert_eq!(promises_from(&take(&mut rs[1]), 2), 1);
}

#[test]
fn a_restarted_replica_promises_no_one_for_an_election_timeout() {
    let mut rs = leased();
    let e = u64::from(rs[1].config().election_ticks);
    // Replica 1 acknowledged leader 0, then crashed and restarted: it forgot
    // whom it acknowledged.
    let a = std::mem::replace(&mut rs[1], replica(1, 3));
    let mut a = bounce(a, &[]);
    a.handle(prepare(2, 1, 50));
    assert_eq!(promises_from(&take(&mut a), 2), 0);
    // Its own campaign gets no promise from itself either: with one other
    // replica that does not hear leader 0, that would elect it.
    a.campaign_now();
    let own = take(&mut a);
    for m in own.messages.into_iter().filter(|m| m.to == 1) {
        a.handle(m);
    }
    let ready = take(&mut a);
    assert_eq!(promises_from(&ready, 1), 0);
    assert!(!ready
        .records
        .iter()
        .any(|r| matches!(r, Record::Promised(_))));
    a.advance(e - 1);
    let _ = take(&mut a);
    a.handle(prepare(2, 1, 60));
    assert_eq!(promises_from(&take(&mut a), 2), 0);
    a.tick();
    let _ = take(&mut a);
    a.handle(prepare(2, 1, 61));
    assert_eq!(promises_from(&take(&mut a), 2), 1);
}

#[test]
fn a_replica_recovering_a_lost_disk_starts_with_the_guard() {
    let cfg = CoreConfig {
        recovering: Some(7),
        ..CoreConfig::new(1, 3)
    };
    let r = Replica::new(cfg);
    assert!(!r.guard.allows(0, 2));
    assert!(!r.guard.allows(29, 1));
    assert!(r.guard.allows(30, 2));
}

#[test]
fn advancing_many_ticks_does_the_duties_of_one() {
    let mut rs = leased();
    // Three heartbeat intervals at once (within the liveness window).
    let ticks = 3 * u64::from(rs[0].config().heartbeat_ticks) + 1;
    rs[0].advance(ticks);
    let heartbeats = take(&mut rs[0])
        .messages
        .iter()
        .filter(|m| matches!(m.msg, Message::Heartbeat { .. }))
        .count();
    assert_eq!(
        heartbeats, 2,
        "one heartbeat per follower, not one per tick"
    );
}

#[test]
fn a_group_of_one_leads_at_its_first_tick_after_a_restart() {
    // No other replica can hold a lease it might cut short, and it has no
    // leader to wait for: no restart guard and no election timeout.
    let before = Ballot::of(3, 0, 0);
    let mut rs = vec![bounce(replica(0, 1), &[Record::Promised(before)])];
    rs[0].tick();
    settle(&mut rs);
    assert!(rs[0].is_leader(), "a group of one waited to lead");
    assert!(rs[0].promised() > before);
    // The exception is for a group of one only: a replica of three restarted
    // the same way does not campaign at its first tick.
    let mut three = bounce(replica(0, 3), &[Record::Promised(before)]);
    three.tick();
    let ready = take(&mut three);
    assert!(
        !ready
            .messages
            .iter()
            .any(|m| matches!(m.msg, Message::Prepare { .. })),
        "a replica of three campaigned at its first tick"
    );
}

/// Replicas 1 and 2 advance `followers` ticks and replica 0, the leader cut off
/// from them, `leader` ticks; then 2 is elected and decides a write, and 0 is
/// asked a read. Returns the index 0 answered at once, if it did, and the
/// instance 2 decided.
fn read_after_a_rival_won(followers: u64, leader: u64) -> (Option<Slot>, Slot) {
    let mut rs = leased();
    rs[0].advance(leader);
    let _ = take(&mut rs[0]);
    for r in &mut rs[1..] {
        r.advance(followers);
        let _ = take(r);
    }
    let cut = |m: &Envelope| m.from != 0 && m.to != 0;
    rs[2].campaign_now();
    let _ = deliver_only(&mut rs, &cut);
    assert!(rs[2].is_leader(), "replica 2 was not elected");
    rs[2].propose(b"w".to_vec());
    let _ = deliver_only(&mut rs, &cut);
    let decided = rs[2].commit_index();
    assert!(decided >= 1, "replica 2 decided the write");
    rs[0].read_index(7);
    let now = answered(&take(&mut rs[0])).first().map(|&(_, index)| index);
    (now, decided)
}

#[test]
fn clocks_beyond_the_drift_bound_can_make_a_lease_read_stale_and_within_it_cannot() {
    let e = u64::from(CoreConfig::new(0, 3).election_ticks);
    // The followers' guards end after `e` of their ticks. Within the bound
    // (followers 10% fast, the leader 10% slow), the leader's clock has come
    // to at least e * 0.9 / 1.1 ticks by then: its lease is over, the read
    // waits for a round, and no round reaches anyone.
    let within = e * 9 / 11;
    let (now, _) = read_after_a_rival_won(e, within);
    assert_eq!(
        now, None,
        "a lease read {within} ticks in, within the bound"
    );
    // Beyond it (the leader's clock at a third of the followers' rate) the
    // lease still holds when the rival has decided a write: the read misses
    // it. docs/REFERENCE.md §6 says so.
    let (now, decided) = read_after_a_rival_won(e, e / 3);
    let index = now.expect("the old leader answered from its lease");
    assert!(
        index < decided,
        "answered at {index}: the stale read beyond the bound did not happen"
    );
}
