//! A replica that lost its disk must not vote again in instances it may have voted
//! in before (Alagappan et al., "Protocol-Aware Recovery for Consensus-Based
//! Storage", FAST'18). These tests replay the dangerous schedule on the simulator:
//! with the safe rule (a new incarnation, decided through the log, voting only after
//! `s + window`) nothing is decided two ways; with the unsafe rule the very same
//! schedule decides an instance two ways, which shows the test has teeth.

use paxos::core::{CoreConfig, Status};
use paxos::sim::{NetOptions, Sim, UNITS_PER_TICK};
use paxos::Entry;
use std::panic::{catch_unwind, AssertUnwindSafe};

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn val(s: &str) -> Entry {
    Entry::single(s.as_bytes().to_vec())
}

fn cfg(id: usize, election_ticks: u32, unsafe_rejoin: bool) -> CoreConfig {
    CoreConfig {
        election_ticks,
        unsafe_rejoin,
        seed: 7,
        ..CoreConfig::new(id, 3)
    }
}

fn show(sim: &Sim, what: &str) {
    let v: Vec<String> = (0..3)
        .map(|i| match sim.node(i) {
            Some(r) => format!(
                "[{i}: leader={} follows={:?} promised={} s1={:?} commit={} inc={:?}]",
                r.is_leader(),
                r.leader(),
                r.promised(),
                r.status(1),
                r.commit_index(),
                r.incarnation()
            ),
            None => format!("[{i}: down]"),
        })
        .collect();
    eprintln!("{what}: {}", v.join(" "));
}

fn decided_everywhere(sim: &Sim, slot: u64) -> bool {
    (0..3).all(|i| {
        matches!(
            sim.node(i).map(|r| r.status(slot)),
            Some(Status::Decided(_))
        )
    })
}

/// The schedule. Returns the simulator at the end (panics on a safety violation).
fn dangerous_schedule(unsafe_rejoin: bool) -> Sim {
    let slow = 1000; // A keeps leading while cut off; C never campaigns.
    let mut sim = Sim::with_configs(
        vec![
            cfg(A, slow, unsafe_rejoin),
            cfg(B, slow, unsafe_rejoin),
            cfg(C, slow, unsafe_rejoin),
        ],
        1,
    );
    sim.node_mut(A).unwrap().campaign_now();
    sim.node_mut(A).unwrap().start(0, val("warm-up"));
    assert!(
        sim.run_until(200 * UNITS_PER_TICK, |s| decided_everywhere(s, 0)),
        "no warm-up decision"
    );
    assert_eq!(sim.leader(), Some(A));

    // B will campaign soon once it stops hearing A.
    sim.set_config(B, cfg(B, 10, unsafe_rejoin));
    sim.crash(B, false);
    sim.restart(B);
    sim.hold(A, B);
    sim.hold(B, A);
    // C's answers to A stay in flight.
    sim.hold(C, A);
    sim.node_mut(A).unwrap().start(1, val("v1"));
    sim.run(5 * UNITS_PER_TICK);
    assert!(
        sim.disk(C)
            .iter()
            .any(|r| matches!(r, paxos::Record::Accepted { slot: 1, .. })),
        "C did not accept v1"
    );
    assert_eq!(sim.node(A).unwrap().status(1), Status::Pending);

    // C loses its disk while its Accepted(v1) is still on its way to A.
    sim.hold(A, C);
    if unsafe_rejoin {
        sim.lose_disk_unsafely(C);
    } else {
        sim.lose_disk(C);
    }
    show(&sim, "after disk loss");
    // B campaigns; only C (new) can answer it. B wants instance 1 for v2.
    sim.node_mut(B).unwrap().start(1, val("v2"));
    sim.run(300 * UNITS_PER_TICK);
    show(&sim, "after B's campaign");
    // The old Accepted arrives: with it, A has a majority for v1.
    sim.release(C, A);
    sim.run(50 * UNITS_PER_TICK);
    show(&sim, "after release");
    // Everything heals.
    sim.release(A, B);
    sim.release(B, A);
    sim.release(A, C);
    sim.set_net(NetOptions::reliable());
    let ok = sim.run_until(3000 * UNITS_PER_TICK, |s| decided_everywhere(s, 1));
    show(&sim, "end");
    assert!(ok, "instance 1 never decided everywhere");
    sim
}

#[test]
fn a_replica_that_lost_its_disk_does_not_vote_twice_in_an_instance() {
    let mut sim = dangerous_schedule(false);
    assert_eq!(
        sim.node(B).unwrap().status(1),
        Status::Decided(val("v1")),
        "v1 was chosen by A and C's old incarnation"
    );
    // The new C was reincarnated and votes in later instances: with A down, B and
    // C decide new instances.
    assert!(
        sim.run_until(3000 * UNITS_PER_TICK, |s| s.node(C).unwrap().incarnation()
            == Some(1)),
        "C was never reincarnated"
    );
    // The leader closes the old membership's instances at once.
    let first_new = *sim
        .node(B)
        .unwrap()
        .membership()
        .epoch_starts()
        .last()
        .unwrap();
    assert!(
        sim.run_until(1000 * UNITS_PER_TICK, |s| s.node(B).unwrap().commit_index()
            >= first_new),
        "old-membership instances left open"
    );
    let next = sim.node(B).unwrap().max() + 100;
    sim.crash(A, false);
    sim.node_mut(B).unwrap().start(next, val("after"));
    let ok = sim.run_until(5000 * UNITS_PER_TICK, |s| {
        [B, C]
            .iter()
            .all(|&i| s.node(i).unwrap().status(next) == Status::Decided(val("after")))
    });
    assert!(
        ok,
        "B and the reincarnated C could not decide a new instance"
    );
}

#[test]
fn the_unsafe_rule_decides_an_instance_two_ways_on_the_same_schedule() {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        dangerous_schedule(true);
    }));
    let err = outcome.expect_err("the unsafe rule should have decided instance 1 two ways");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("SAFETY VIOLATION"),
        "failed for another reason: {msg}"
    );
}

/// A replica that lost its disk is admitted (its incarnation decided) before its
/// votes count: the instances its lost incarnation may have voted in still need a
/// majority of the old membership. Until `votes_now`, losing another replica stalls
/// the group (safely); once `votes_now`, the group survives it. Recovery reports a
/// replica "voting again" only then (`paxos::recovery::run`).
#[test]
fn an_admitted_replica_counts_once_the_old_membership_is_no_longer_needed() {
    let mut sim = Sim::new(3, 11);
    assert!(
        sim.run_until(500 * UNITS_PER_TICK, |s| s.leader().is_some()),
        "no leader"
    );
    let leader = sim.leader().unwrap();
    let (other, lost) = ((leader + 1) % 3, (leader + 2) % 3);
    sim.node_mut(leader).unwrap().propose(b"warm-up".to_vec());
    assert!(
        sim.run_until(500 * UNITS_PER_TICK, |s| decided_everywhere(s, 0)),
        "no warm-up decision"
    );

    sim.lose_disk(lost);
    // The other old member goes down as soon as the leader decided the
    // reincarnation, before the window is closed: the leader and the new
    // incarnation are two replicas, but not a majority for those instances.
    assert!(
        sim.run_until(500 * UNITS_PER_TICK, |s| s.node(leader).is_some_and(|r| r
            .membership()
            .latest()[lost]
            .incarnation
            == 1)),
        "the leader never decided the reincarnation"
    );
    sim.crash(other, false);
    sim.node_mut(leader)
        .unwrap()
        .propose(b"while stalled".to_vec());
    assert!(
        sim.run_until(300 * UNITS_PER_TICK, |s| s
            .node(lost)
            .is_some_and(|r| r.incarnation().is_some())),
        "the lost replica never learned it was admitted"
    );
    sim.run(300 * UNITS_PER_TICK);
    let admitted = sim.node(lost).unwrap();
    assert!(
        !admitted.votes_now(),
        "counted at commit {} without the old membership closing the window",
        admitted.commit_index()
    );
    // The instances before the new epoch are not all decided: nothing of the new
    // epoch either, since that would need every window instance decided first.
    let stalled = sim.node(leader).unwrap();
    assert!(
        stalled.commit_index() < stalled.membership().latest_start(),
        "the window was closed without a majority of the old membership (commit {}, new \
         epoch from {})",
        stalled.commit_index(),
        stalled.membership().latest_start()
    );

    sim.restart(other);
    assert!(
        sim.run_until(2000 * UNITS_PER_TICK, |s| s
            .node(lost)
            .is_some_and(|r| r.votes_now())),
        "the window never closed with the old membership back"
    );
    sim.crash(other, false);
    assert!(
        sim.run_until(2000 * UNITS_PER_TICK, |s| s
            .leader()
            .is_some_and(|l| l != other)),
        "no leader among the two replicas left"
    );
    let now_leader = sim.leader().unwrap();
    let before = sim.node(now_leader).unwrap().commit_index();
    sim.node_mut(now_leader).unwrap().propose(b"after".to_vec());
    assert!(
        sim.run_until(2000 * UNITS_PER_TICK, |s| {
            s.applied(lost).iter().any(|(slot, e)| {
                *slot >= before && e.commands().iter().any(|c| c[..] == b"after"[..])
            })
        }),
        "the leader and the admitted replica did not decide a new instance together"
    );
}
