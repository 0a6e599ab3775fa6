//! The leader's jobs, input by input: election, batching, the in-flight
//! window, read-index and catching a lagging follower up.

use super::*;

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
    assert_eq!(r.status(0), Status::Decided(Entry::batch([b"a".to_vec()])));
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

/// A new leader recovers more instances than its window. One beyond
/// `commit + window` may lie in an epoch it does not know yet, where its
/// promises may not be a majority: it is proposed only once the instances
/// below it are decided, and then decided like any other.
#[test]
fn an_instance_recovered_beyond_the_window_is_proposed_once_the_window_reaches_it() {
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
    // Only the instances within the window go out at once: instance 4 may lie
    // in an epoch the new leader does not know yet (a change decided in 0..2).
    let accepts_sent = |msgs: &[Envelope]| -> Vec<Slot> {
        msgs.iter()
            .filter_map(|m| match m.msg {
                Message::Accept { slot, .. } => Some(slot),
                _ => None,
            })
            .collect()
    };
    let mut first = accepts_sent(&msgs);
    first.dedup();
    assert_eq!(first, vec![0, 1]);
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
    let mut sent = Vec::new();
    for slot in 0..5 {
        r.handle(accepted_by_1(slot));
        let mut out: Vec<Envelope> = take(&mut r).messages;
        sent.extend(accepts_sent(&out));
        out.retain(|m| m.to == 0);
        deliver(&mut r, &mut out);
        assert!(
            sent.iter().all(|&s| s < r.commit_index() + 2),
            "an instance was opened beyond commit + window: {sent:?}"
        );
    }
    sent.dedup();
    assert_eq!(
        sent,
        vec![2, 3, 4],
        "recovered instances go out as the window reaches them"
    );
    assert_eq!(
        r.commit_index(),
        5,
        "a recovered instance was never decided"
    );
    assert_eq!(r.status(4), Status::Decided(val("v4")));
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
    // Past the lease the election gave: reads take the read-index path.
    let lease = rs[0].config().lease_ticks();
    rs[0].advance(lease);
    let _ = take(&mut rs[0]);
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
