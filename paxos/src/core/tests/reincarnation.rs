//! Reincarnation requests that are stale or doomed, and memberships lost or
//! behind: a replica must never be left out for good.

use super::*;

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
            nonce: 11,
            seat: crate::membership::Seat::Voter,
            vacant: false,
            addr: None,
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
