//! The 6.824 Paxos test scenarios, run on the deterministic simulator.
//!
//! Names follow the lab's tests. Where the lab relies on Go RPC details (a "deaf"
//! peer still receiving replies to its own calls), the scenario is adapted to
//! one-way messages and the adaptation is said in the test's comment.

use paxos::core::Status;
use paxos::sim::{NetOptions, Sim, UNITS_PER_TICK};
use paxos::{Entry, Slot};

/// Generous bound for anything that should happen "soon": 10 election timeouts.
const SOON: u64 = 600 * UNITS_PER_TICK;

fn val(s: impl ToString) -> Entry {
    Entry::single(s.to_string().into_bytes())
}

fn waitn(sim: &mut Sim, slot: Slot, wanted: usize) {
    let ok = sim.run_until(SOON, |s| {
        (0..s.len())
            .filter(|&i| matches!(s.node(i).map(|r| r.status(slot)), Some(Status::Decided(_))))
            .count()
            >= wanted
    });
    let got = sim.ndecided(slot);
    assert!(
        ok && got >= wanted,
        "seed {}: instance {slot} decided at {got} replicas, wanted {wanted}",
        sim.seed
    );
}

fn waitmajority(sim: &mut Sim, slot: Slot) {
    let n = sim.len();
    waitn(sim, slot, n / 2 + 1);
}

fn start(sim: &mut Sim, node: usize, slot: Slot, e: Entry) {
    sim.node_mut(node).expect("replica is up").start(slot, e);
}

#[test]
fn basic() {
    let mut sim = Sim::new(3, 1);
    start(&mut sim, 0, 0, val("hello"));
    waitn(&mut sim, 0, 3);
    assert_eq!(
        sim.node(1).unwrap().status(0),
        Status::Decided(val("hello"))
    );

    // Many proposers, same value.
    for i in 0..3 {
        start(&mut sim, i, 1, val(77));
    }
    waitn(&mut sim, 1, 3);
    assert_eq!(sim.node(2).unwrap().status(1), Status::Decided(val(77)));

    // Many proposers, different values: all agree on one of them.
    for i in 0..3 {
        start(&mut sim, i, 2, val(100 + i));
    }
    waitn(&mut sim, 2, 3);
    let Status::Decided(v) = sim.node(0).unwrap().status(2) else {
        panic!("not decided")
    };
    assert!(
        (0..3).any(|i| v == val(100 + i)),
        "decided a value nobody proposed: {v:?}"
    );

    // Out-of-order instances.
    start(&mut sim, 0, 7, val(700));
    start(&mut sim, 0, 6, val(600));
    start(&mut sim, 1, 5, val(500));
    waitn(&mut sim, 7, 3);
    start(&mut sim, 0, 4, val(400));
    start(&mut sim, 1, 3, val(300));
    for slot in 3..=7 {
        waitn(&mut sim, slot, 3);
    }
    assert_eq!(sim.node(0).unwrap().status(7), Status::Decided(val(700)));
    for i in 0..3 {
        assert_eq!(sim.node(i).unwrap().max(), 7, "replica {i} max()");
    }
}

/// In 6.824 a deaf peer still gets replies to its own RPCs; with one-way messages a
/// deaf replica hears nothing, so the lab's last step (the deaf peer proposes and
/// learns) becomes: it learns once it hears again.
#[test]
fn deaf() {
    let mut sim = Sim::new(5, 2);
    start(&mut sim, 0, 0, val("hello"));
    waitn(&mut sim, 0, 5);

    sim.set_deaf(0, true);
    sim.set_deaf(4, true);
    start(&mut sim, 1, 1, val("goodbye"));
    waitmajority(&mut sim, 1);
    sim.run(100 * UNITS_PER_TICK);
    assert_eq!(sim.ndecided(1), 3, "a deaf peer learned a decision");

    sim.set_deaf(0, false);
    waitn(&mut sim, 1, 4);
    sim.set_deaf(4, false);
    waitn(&mut sim, 1, 5);
    assert_eq!(
        sim.node(4).unwrap().status(1),
        Status::Decided(val("goodbye"))
    );
}

#[test]
fn forget() {
    let n = 6;
    let mut sim = Sim::new(n, 3);
    for i in 0..n {
        assert_eq!(sim.node(i).unwrap().min(), 0, "initial min()");
    }
    start(&mut sim, 0, 0, val("00"));
    start(&mut sim, 1, 1, val("11"));
    start(&mut sim, 2, 2, val("22"));
    start(&mut sim, 0, 6, val("66"));
    start(&mut sim, 1, 7, val("77"));
    for slot in [0, 1, 2, 6, 7] {
        waitn(&mut sim, slot, n);
    }
    for i in 0..n {
        assert_eq!(sim.node(i).unwrap().min(), 0, "min() before any done()");
    }

    // Every peer is done with 0; only some with 1.
    for i in 0..n {
        sim.node_mut(i).unwrap().done(0);
    }
    for i in 1..n {
        sim.node_mut(i).unwrap().done(1);
    }
    let ok = sim.run_until(SOON, |s| (0..n).all(|i| s.node(i).unwrap().min() == 1));
    assert!(ok, "min() did not advance to 1 everywhere");
    sim.run(100 * UNITS_PER_TICK);
    for i in 0..n {
        let r = sim.node(i).unwrap();
        assert_eq!(r.min(), 1, "min() advanced past a peer that is not done");
        assert_eq!(r.status(0), Status::Forgotten);
        assert_eq!(r.status(1), Status::Decided(val("11")));
    }

    // Peer 0 done with everything: min moves to 3 (instance 2 is the lowest not done
    // everywhere... all peers called done(1), so 2).
    sim.node_mut(0).unwrap().done(1);
    let ok = sim.run_until(SOON, |s| (0..n).all(|i| s.node(i).unwrap().min() == 2));
    assert!(
        ok,
        "min() did not advance to 2 once every peer was done with 1"
    );
}

#[test]
fn many_forget() {
    let n = 3;
    let mut sim = Sim::new(n, 4);
    sim.set_net(NetOptions::unreliable());
    let ninst: Slot = 300;
    for slot in 0..ninst {
        let node = (slot % n as u64) as usize;
        start(&mut sim, node, slot, val(slot));
    }
    // Peers call done() on random decided prefixes while instances complete.
    let mut rounds = 0;
    loop {
        sim.run(20 * UNITS_PER_TICK);
        rounds += 1;
        for i in 0..n {
            let r = sim.node_mut(i).unwrap();
            let c = r.commit_index();
            if c > 0 {
                r.done(c - 1 - (c - 1) % 7);
            }
        }
        if (0..n).all(|i| sim.node(i).unwrap().commit_index() >= ninst) || rounds > 400 {
            break;
        }
    }
    for i in 0..n {
        sim.node_mut(i).unwrap().done(ninst - 1);
    }
    let ok = sim.run_until(SOON, |s| (0..n).all(|i| s.node(i).unwrap().min() == ninst));
    assert!(ok, "seed {}: min() never reached {ninst}", sim.seed);
    for i in 0..n {
        assert_eq!(
            sim.node(i).unwrap().instances_in_memory(),
            0,
            "replica {i} kept forgotten instances"
        );
    }
    assert_eq!(sim.chosen().len() as u64, ninst);
}

/// Memory is really freed after done(): the instances, with their 64 KB values, leave
/// the replica's maps.
#[test]
fn forget_mem() {
    let n = 3;
    let mut sim = Sim::new(n, 5);
    let big = |i: u64| Entry::single(vec![i as u8; 64 * 1024]);
    for slot in 0..10 {
        start(&mut sim, 0, slot, big(slot));
    }
    for slot in 0..10 {
        waitn(&mut sim, slot, n);
    }
    let before: usize = (0..n)
        .map(|i| sim.node(i).unwrap().instances_in_memory())
        .sum();
    assert!(
        before >= 10 * n,
        "instances were not held before done(): {before}"
    );
    for i in 0..n {
        sim.node_mut(i).unwrap().done(9);
    }
    let ok = sim.run_until(SOON, |s| {
        (0..n).all(|i| s.node(i).unwrap().instances_in_memory() == 0)
    });
    assert!(ok, "instances not freed after every peer called done()");
    assert_eq!(sim.node(1).unwrap().status(5), Status::Forgotten);
}

#[test]
fn done_max() {
    let n = 3;
    let mut sim = Sim::new(n, 6);
    start(&mut sim, 0, 0, val("x"));
    waitn(&mut sim, 0, n);
    for slot in 1..=10 {
        start(&mut sim, 0, slot, val("y"));
    }
    for slot in 1..=10 {
        waitn(&mut sim, slot, n);
    }
    for i in 0..n {
        sim.node_mut(i).unwrap().done(10);
    }
    let ok = sim.run_until(SOON, |s| (0..n).all(|i| s.node(i).unwrap().min() == 11));
    assert!(ok, "min() did not reach 11");
    for i in 0..n {
        assert_eq!(sim.node(i).unwrap().max(), 10, "max() changed after done()");
    }
}

/// With a stable leader an agreed instance costs one Accept and one Accepted per
/// follower: decisions ride on later Accepts and on heartbeats (not counted).
#[test]
fn rpc_count() {
    let n = 3;
    let mut sim = Sim::new(n, 7);
    start(&mut sim, 0, 0, val("warm-up"));
    waitn(&mut sim, 0, n);
    let leader = sim.leader().expect("a leader after the first instance");
    let base: u64 = sim
        .sent_by_kind
        .iter()
        .filter(|(k, _)| !k.starts_with("heartbeat"))
        .map(|(_, v)| v)
        .sum();
    let ninst = 50;
    for slot in 1..=ninst {
        start(&mut sim, leader, slot, val(slot));
        waitn(&mut sim, slot, n);
    }
    let total: u64 = sim
        .sent_by_kind
        .iter()
        .filter(|(k, _)| !k.starts_with("heartbeat"))
        .map(|(_, v)| v)
        .sum();
    let per_instance = (total - base) as f64 / ninst as f64;
    let limit = 2.0 * (n - 1) as f64;
    assert!(
        per_instance <= limit,
        "{per_instance} messages per instance, limit {limit}: {:?}",
        sim.sent_by_kind
    );
    assert_eq!(
        sim.sent_by_kind.get("prepare").copied().unwrap_or(0),
        (n - 1) as u64,
        "more than one election"
    );
}

#[test]
fn many() {
    let n = 3;
    let mut sim = Sim::new(n, 8);
    start(&mut sim, 0, 0, val(0));
    waitn(&mut sim, 0, n);
    let ninst = 50;
    for slot in 1..ninst {
        for i in 0..n {
            start(&mut sim, i, slot, val(slot * 10 + i as u64));
        }
    }
    for slot in 1..ninst {
        waitn(&mut sim, slot, n);
    }
}

/// A peer that was down while an instance was decided proposes for it later and
/// must end up with the old value.
#[test]
fn old() {
    let n = 5;
    let mut sim = Sim::new(n, 9);
    sim.crash(3, false);
    sim.crash(4, false);
    start(&mut sim, 1, 1, val(11));
    waitn(&mut sim, 1, 3);
    sim.restart(3);
    start(&mut sim, 3, 1, val(33));
    waitn(&mut sim, 1, 4);
    sim.restart(4);
    waitn(&mut sim, 1, 5);
    assert_eq!(sim.node(3).unwrap().status(1), Status::Decided(val(11)));
}

#[test]
fn many_unreliable() {
    let n = 3;
    let mut sim = Sim::new(n, 10);
    sim.set_net(NetOptions::unreliable());
    let ninst = 50;
    for slot in 0..ninst {
        for i in 0..n {
            start(&mut sim, i, slot, val(slot * 10 + i as u64));
        }
    }
    for slot in 0..ninst {
        waitn(&mut sim, slot, n);
    }
}

#[test]
fn partition() {
    let n = 5;
    let mut sim = Sim::new(n, 11);
    sim.partition(&[&[0, 2], &[1, 3], &[4]]);
    for i in 0..n {
        start(&mut sim, i, 1, val(i));
    }
    sim.run(300 * UNITS_PER_TICK);
    assert_eq!(sim.ndecided(1), 0, "a minority decided");

    // Decide in the majority partition only.
    sim.partition(&[&[0, 1, 2], &[3], &[4]]);
    waitmajority(&mut sim, 1);
    sim.run(100 * UNITS_PER_TICK);
    assert_eq!(sim.ndecided(1), 3, "a replica outside the majority learned");

    // Everybody agrees once healed.
    sim.heal();
    waitn(&mut sim, 1, n);

    // One peer switches partitions, twice.
    for iter in 0..2u64 {
        let slot = 2 + iter;
        sim.partition(&[&[0, 1, 2], &[3, 4]]);
        start(&mut sim, 0, slot, val(slot));
        start(&mut sim, 3, slot, val(1000 + slot));
        waitn(&mut sim, slot, 3);
        assert_eq!(sim.ndecided(slot), 3);
        sim.partition(&[&[0, 1], &[2, 3, 4]]);
        waitn(&mut sim, slot, n);
    }
}

/// 20 simulated seconds of random re-partitioning on an unreliable network while
/// every replica keeps proposing; then heal and require every instance decided
/// everywhere (agreement is checked on every report).
#[test]
fn lots() {
    let n = 5;
    let mut sim = Sim::new(n, 12);
    sim.set_net(NetOptions::unreliable());
    let mut rng_state: u64 = 12;
    let mut next = || {
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng_state >> 33
    };
    let mut slot: Slot = 0;
    // 20 s at 10 ms per tick.
    let end = 2000 * UNITS_PER_TICK;
    while sim.now() < end {
        let mut sides: Vec<Vec<usize>> = vec![Vec::new(), Vec::new(), Vec::new()];
        for i in 0..n {
            sides[(next() % 3) as usize].push(i);
        }
        let groups: Vec<&[usize]> = sides.iter().map(|v| v.as_slice()).collect();
        sim.partition(&groups);
        for _ in 0..3 {
            let who = (next() % n as u64) as usize;
            start(&mut sim, who, slot, val(slot * 10 + who as u64));
            slot += 1;
        }
        sim.run(next() % (30 * UNITS_PER_TICK) + UNITS_PER_TICK);
    }
    sim.heal();
    sim.set_net(NetOptions::reliable());
    for s in 0..slot {
        waitn(&mut sim, s, n);
    }
}
