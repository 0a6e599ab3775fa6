//! Membership changes (`crate::membership`): a group grows, shrinks and moves a
//! seat through its own log, and no schedule of crashes, lost disks, partitions
//! and a lossy network makes two replicas decide differently or a leader answer
//! a read from a stale membership. The simulator panics on either.

use crate::core::{Change, ChangeAnswer, Seat};
use crate::sim::{NetOptions, Sim, UNITS_PER_TICK};
use crate::types::{Entry, NodeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Time units allowed for anything that should happen "soon".
const SOON: u64 = 400 * UNITS_PER_TICK;

fn leader_of(sim: &mut Sim) -> NodeId {
    assert!(
        sim.run_until(SOON, |s| s.leader().is_some()),
        "no leader elected (seed {})",
        sim.seed
    );
    sim.leader().unwrap()
}

/// Proposes `cmd` at the leader and runs until some replica reports it decided.
fn write(sim: &mut Sim, cmd: &str) {
    let entry = Entry::single(cmd.as_bytes().to_vec());
    let ok = sim.run_until(SOON, |s| s.chosen().values().any(|e| *e == entry)) || {
        let l = leader_of(sim);
        sim.node_mut(l).unwrap().propose(cmd.as_bytes().to_vec());
        sim.run_until(SOON, |s| s.chosen().values().any(|e| *e == entry))
    };
    assert!(ok, "{cmd} was not decided (seed {})", sim.seed);
}

/// Asks the leader for `change` until it is in effect at every live replica
/// that knows the newest membership.
fn change(sim: &mut Sim, c: Change) {
    for _ in 0..20 {
        let l = leader_of(sim);
        if sim.node(l).unwrap().membership().already(&c) {
            return;
        }
        match sim.propose_change(c.clone()) {
            Some(ChangeAnswer::Refused(crate::core::ChangeRefused::Pending { .. })) => {}
            Some(ChangeAnswer::Refused(why)) => panic!("{c} refused: {why}"),
            Some(_) | None => {}
        }
        let c2 = c.clone();
        if sim.run_until(SOON, |s| {
            s.leader()
                .and_then(|l| s.node(l))
                .is_some_and(|r| r.membership().already(&c2))
        }) {
            return;
        }
    }
    panic!("{c} never took effect (seed {})", sim.seed);
}

/// Runs until seat `node` is held by a process (claimed by reincarnation) and
/// that is in force (until then the seat's vote is missing).
fn claimed(sim: &mut Sim, node: NodeId) {
    let ok = sim.run_until(4 * SOON, |s| {
        s.leader().and_then(|l| s.node(l)).is_some_and(|r| {
            r.membership().latest().get(node).is_some_and(|m| !m.vacant)
                && r.membership().latest_start() <= r.commit_index()
        })
    });
    assert!(ok, "seat {node} was never claimed (seed {})", sim.seed);
}

#[test]
fn a_group_grows_votes_with_its_new_member_then_shrinks() {
    let mut sim = Sim::new(3, 7);
    write(&mut sim, "before");
    change(&mut sim, Change::Add { addr: "d".into() });
    let d = sim.add_seat();
    assert_eq!(d, 3);
    claimed(&mut sim, d);
    // A learner does not vote: with two founders down nothing is decided.
    change(&mut sim, Change::Promote { node: d });
    write(&mut sim, "with four voters");
    // Four voters: a majority is three. With replica 0 down, 1, 2 and the new
    // one decide, so the new one's votes count.
    let down = if sim.leader() == Some(0) { 1 } else { 0 };
    sim.crash(down, false);
    write(&mut sim, "without one founder");
    sim.restart(down);
    // Shrink: remove a founder; three voters remain, a majority is two.
    change(&mut sim, Change::Remove { node: down });
    let l = leader_of(&mut sim);
    let other = (0..4).find(|&n| n != l && n != down).unwrap();
    sim.crash(other, false);
    write(&mut sim, "two of three");
    assert!(sim.node(l).unwrap().membership().is_removed(down));
}

#[test]
fn a_moved_seat_is_claimed_by_a_new_process_and_the_old_one_stops_counting() {
    let mut sim = Sim::new(3, 11);
    write(&mut sim, "before");
    let l = leader_of(&mut sim);
    let moved = (l + 1) % 3;
    change(
        &mut sim,
        Change::Move {
            node: moved,
            addr: "new-host:7000".into(),
        },
    );
    // The replacement machine: an empty disk at the same seat.
    sim.lose_disk(moved);
    claimed(&mut sim, moved);
    let l = leader_of(&mut sim);
    let m = sim.node(l).unwrap().membership().latest()[moved].clone();
    assert_eq!(m.addr.as_deref(), Some("new-host:7000"));
    assert_eq!(m.seat, Seat::Voter);
    // The new process votes: with the third replica down, it and the leader decide.
    let third = (0..3).find(|&n| n != l && n != moved).unwrap();
    sim.crash(third, false);
    write(&mut sim, "after the move");
}

#[test]
fn a_second_change_waits_for_the_first_to_be_in_force() {
    let mut sim = Sim::new(3, 5);
    write(&mut sim, "x");
    let l = leader_of(&mut sim);
    let r = sim.node_mut(l).unwrap();
    assert_eq!(
        r.propose_change(Change::Add { addr: "d".into() }),
        ChangeAnswer::Proposed
    );
    match r.propose_change(Change::Add { addr: "e".into() }) {
        ChangeAnswer::Refused(crate::core::ChangeRefused::Pending { .. }) => {}
        other => panic!("a second change while one is pending: {other:?}"),
    }
    assert_eq!(
        r.propose_change(Change::Remove { node: 7 }),
        ChangeAnswer::Refused(crate::core::ChangeRefused::NoSuchSeat { node: 7 }),
        "a change that can never be made is refused for what it is"
    );
    let follower = (l + 1) % 3;
    assert!(matches!(
        sim.node_mut(follower)
            .unwrap()
            .propose_change(Change::Remove { node: 0 }),
        ChangeAnswer::NotLeader(_)
    ));
}

/// Two seats added and promoted while replica 0 was cut off: it knows only the
/// founding membership, of which it and replica 1 are a majority. Promised by
/// them, it learns the newer membership from replica 1's report and must not
/// lead on its stale view: it campaigns, yet answers no read (the simulator
/// also panics on any stale read the others answer).
#[test]
fn a_leader_elected_by_a_stale_majority_serves_no_read() {
    let mut sim = Sim::new(3, 3);
    write(&mut sim, "first");
    let l = leader_of(&mut sim);
    if l == 0 {
        sim.crash(0, false);
        leader_of(&mut sim);
        sim.restart(0);
    }
    // Replica 0 cut off; seats added later join the others' side.
    sim.partition(&[&[1, 2], &[0]]);
    for addr in ["d", "e"] {
        change(&mut sim, Change::Add { addr: addr.into() });
        let n = sim.add_seat();
        claimed(&mut sim, n);
        change(&mut sim, Change::Promote { node: n });
    }
    for i in 0..20 {
        write(&mut sim, &format!("w{i}"));
    }
    // Now replica 0 and 1 alone together; 2, 3 and 4 keep deciding.
    sim.partition(&[&[0, 1], &[2, 3, 4]]);
    let mut id = 0;
    let mut zero_ran = false;
    for round in 0..200 {
        if round % 10 == 0 {
            if let Some(l) = sim.leader() {
                if l >= 2 {
                    sim.node_mut(l)
                        .unwrap()
                        .propose(format!("late{round}").into_bytes());
                }
            }
        }
        for i in [0, 1] {
            id += 1;
            sim.read(i, id);
        }
        if round % 50 == 0 {
            sim.node_mut(0).unwrap().campaign_now();
        }
        sim.run(5 * UNITS_PER_TICK);
        zero_ran |= sim
            .node(0)
            .is_some_and(|r| r.promised().node == 0 && r.promised().round > 1);
    }
    // Replica 0 ran for office on its stale view (its own ballot promised),
    // and answered no read at all: whatever it was promised, it never held a
    // leadership that counts in the membership in force (and the simulator
    // checked every read the others answered).
    assert!(
        zero_ran,
        "replica 0 never campaigned: the stale majority was not exercised"
    );
    assert!(
        !sim.reads(0)
            .iter()
            .any(|r| matches!(r, crate::core::ReadOutcome::Ready { .. })),
        "replica 0 answered a read on a stale membership"
    );
}

/// One seeded run: commands, reads, crashes, partitions, lost disks and
/// membership changes at random, then a calm in which the group must decide
/// again.
fn sweep_one(seed: u64, steps: u32) {
    let mut sim = Sim::new(3, seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    if rng.gen_bool(0.5) {
        sim.set_net(NetOptions::unreliable());
    }
    let mut next_cmd = 0u64;
    let mut read_id = 0u64;
    let mut down: Vec<NodeId> = Vec::new();
    let mut unresolved: Vec<Change> = Vec::new();
    let mut partitioned = false;
    for _ in 0..steps {
        let n = sim.len();
        match rng.gen_range(0..100) {
            0..=39 => propose_next(&mut sim, &mut next_cmd),
            40..=54 => {
                let i = rng.gen_range(0..n);
                read_id += 1;
                sim.read(i, read_id);
            }
            55..=62 => {
                // Crash one (a minority at most, so the group stays live).
                let i = rng.gen_range(0..n);
                if sim.is_up(i) && down.is_empty() {
                    sim.crash(i, rng.gen_bool(0.5));
                    down.push(i);
                }
            }
            63..=70 => {
                if let Some(i) = down.pop() {
                    sim.restart(i);
                }
            }
            71..=74 => {
                if partitioned {
                    sim.heal();
                    partitioned = false;
                } else {
                    let cut = rng.gen_range(0..n);
                    let rest: Vec<NodeId> = (0..n).filter(|&i| i != cut).collect();
                    sim.partition(&[&rest, &[cut]]);
                    partitioned = true;
                }
            }
            75..=89 => membership_step(&mut sim, &mut rng, &mut down, &mut unresolved),
            _ => {}
        }
        sim.run(rng.gen_range(1..=6) * UNITS_PER_TICK);
        sim.check_memberships();
    }
    // Calm: heal, restart, and the group decides again.
    sim.heal();
    sim.set_net(NetOptions::reliable());
    for i in down.drain(..) {
        sim.restart(i);
    }
    for _ in 0..10 {
        staff_vacant_seats(&mut sim, &mut down);
        sim.run(SOON / 4);
    }
    let entry = Entry::single(b"final".to_vec());
    let ok = (0..40).any(|_| {
        if let Some(l) = sim.leader() {
            sim.node_mut(l).unwrap().propose(b"final".to_vec());
        }
        sim.run_until(SOON, |s| s.chosen().values().any(|e| *e == entry))
    });
    if !ok {
        for i in 0..sim.len() {
            match sim.node(i) {
                Some(r) => eprintln!(
                    "replica {i}: incarnation {:?} commit {} leader {:?} is_leader {} latest_start {} latest {:?}",
                    r.incarnation(),
                    r.commit_index(),
                    r.leader(),
                    r.is_leader(),
                    r.membership().latest_start(),
                    r.membership()
                        .latest()
                        .iter()
                        .map(|m| (m.incarnation, m.seat, m.vacant))
                        .collect::<Vec<_>>()
                ),
                None => eprintln!("replica {i}: down"),
            }
        }
    }
    assert!(
        ok,
        "seed {seed}: the group never decided again after the calm"
    );
    // And answers reads again (a leader whose election does not hold in the
    // newest epoch must not refuse them forever).
    let read_served = (0..40).any(|k| {
        let Some(l) = sim.leader() else {
            sim.run(SOON);
            return false;
        };
        let id = 1_000_000 + k;
        sim.read(l, id);
        sim.run_until(SOON, |s| {
            s.reads(l)
                .iter()
                .any(|r| matches!(r, crate::core::ReadOutcome::Ready { id: got, .. } if *got == id))
        })
    });
    assert!(
        read_served,
        "seed {seed}: no read was answered after the calm"
    );
}

/// The operator's follow-up of a change that took effect late (a new leader
/// decided it from its predecessor's proposal): every vacant seat in the
/// leader's newest epoch gets its new process — a new replica for an added
/// seat, an empty process replacing the old one for a moved seat.
fn staff_vacant_seats(sim: &mut Sim, down: &mut Vec<NodeId>) {
    let Some(seen) = look(sim) else {
        return;
    };
    for (i, m) in seen.latest.iter().enumerate() {
        if !m.vacant || m.seat == Seat::Removed {
            continue;
        }
        if i >= sim.len() {
            if i == sim.len() {
                sim.add_seat();
            }
        } else if sim.node(i).is_none_or(|r| r.incarnation().is_some()) {
            down.retain(|&d| d != i);
            sim.lose_disk(i);
        }
    }
}

/// Proposes the next numbered command at the leader, if there is one.
pub(in crate::core) fn propose_next(sim: &mut Sim, next_cmd: &mut u64) {
    if let Some(l) = sim.leader() {
        *next_cmd += 1;
        let cmd = format!("c{next_cmd}").into_bytes();
        sim.node_mut(l).unwrap().propose(cmd);
    }
}

/// What a sweep step sees at the current leader.
pub(in crate::core) struct Seen {
    pub leader: NodeId,
    /// The leader's newest epoch.
    pub latest: Vec<crate::core::Member>,
    /// Its voter seats.
    pub voters: Vec<NodeId>,
    /// Every voter is up and votes at its incarnation.
    pub healthy: bool,
}

/// The group as its leader sees it, if there is one.
pub(in crate::core) fn look(sim: &Sim) -> Option<Seen> {
    let leader = sim.leader()?;
    let latest = sim.node(leader)?.membership().latest().to_vec();
    let voters: Vec<NodeId> = (0..latest.len())
        .filter(|&i| latest[i].seat == Seat::Voter)
        .collect();
    let healthy = voters
        .iter()
        .all(|&v| sim.node(v).is_some_and(|r| r.votes_now()));
    Some(Seen {
        leader,
        latest,
        voters,
        healthy,
    })
}

/// An Add while there is room (at most 7 seats, and every seat has its
/// process), or with `promote` a Promote of a learner whose process joined.
pub(in crate::core) fn grow(
    sim: &Sim,
    latest: &[crate::core::Member],
    promote: bool,
) -> Option<Change> {
    if promote {
        return (0..latest.len())
            .find(|&i| latest[i].seat == Seat::Learner && !latest[i].vacant)
            .map(|node| Change::Promote { node });
    }
    (latest.len() < 7 && sim.len() == latest.len()).then(|| Change::Add {
        addr: format!("seat{}", latest.len()),
    })
}

/// One membership step of a sweep: add (and start) a replica, promote a
/// learner that joined, remove a seat, move a seat to a new empty process, or
/// lose a disk.
///
/// `unresolved` holds the removals and moves proposed and not yet seen in
/// effect: one may still be decided later (recovered from an acceptor by a
/// new leader), so no disk is lost meanwhile — as an operator would not wipe
/// another machine while a replacement is unresolved.
fn membership_step(
    sim: &mut Sim,
    rng: &mut StdRng,
    down: &mut Vec<NodeId>,
    unresolved: &mut Vec<Change>,
) {
    staff_vacant_seats(sim, down);
    if let Some(l) = sim.leader() {
        let m = sim.node(l).unwrap().membership();
        unresolved.retain(|c| !m.already(c));
    }
    let Some(Seen {
        leader: l,
        latest,
        voters,
        healthy,
    }) = look(sim)
    else {
        return;
    };
    let m = sim.node(l).unwrap().membership().clone();
    // The operators' rule for taking a vote away (a lost disk, a move): one at
    // a time, only while every voter votes, and never in a group of two (whose
    // every instance needs both).
    // Removals too, since a group that shrinks to two cannot lose anyone: the
    // leader's own check sees a disk lost a moment ago only once the new
    // process answers.
    let all_vote = voters.len() >= 3 && !sim.node(l).unwrap().change_under_way() && healthy;
    let change = match rng.gen_range(0..5) {
        k @ 0..=1 => match grow(sim, &latest, k == 1) {
            Some(c) => c,
            None => return,
        },
        2 if voters.len() > 2 && healthy => Change::Remove {
            node: voters[rng.gen_range(0..voters.len())],
        },
        3 if down.is_empty() && all_vote => {
            let node = voters[rng.gen_range(0..voters.len())];
            Change::Move {
                node,
                addr: format!("moved{}-{}", node, rng.gen::<u16>()),
            }
        }
        4 if down.is_empty()
            && all_vote
            && unresolved.is_empty()
            && latest.iter().all(|m| !m.vacant) =>
        {
            // A lost disk, one at a time (the operators' rule).
            let i = voters[rng.gen_range(0..voters.len())];
            if m.latest_start() <= sim.node(l).unwrap().commit_index() {
                sim.lose_disk(i);
            }
            return;
        }
        _ => return,
    };
    let answer = sim.propose_change(change.clone());
    if answer != Some(ChangeAnswer::Proposed) {
        return;
    }
    if matches!(change, Change::Remove { .. } | Change::Move { .. }) {
        unresolved.push(change.clone());
    }
    start_new_process(sim, &change, latest.len(), down);
}

/// After an Add or a Move was proposed: once the leader has it, starts the
/// process that will claim the seat (empty, like a new machine). `seats` is
/// how many seats the group had before; `down` loses the moved seat's old
/// process if it was listed there.
pub(in crate::core) fn start_new_process(
    sim: &mut Sim,
    change: &Change,
    seats: usize,
    down: &mut Vec<NodeId>,
) {
    let known = |s: &Sim, c: &Change| {
        s.leader()
            .and_then(|l| s.node(l))
            .is_some_and(|r| r.membership().already(c))
    };
    let is_add = matches!(change, Change::Add { .. });
    let moved = match change {
        &Change::Move { node, .. } => Some(node),
        _ => None,
    };
    if !(is_add || moved.is_some()) || !sim.run_until(SOON, |s| known(s, change)) {
        return;
    }
    if is_add && sim.len() <= seats {
        sim.add_seat();
    }
    if let Some(node) = moved {
        down.retain(|&d| d != node);
        sim.lose_disk(node);
    }
}

#[test]
fn membership_changes_under_faults_keep_agreement_and_fresh_reads() {
    let seeds: u64 = std::env::var("DISKV_MEMBERSHIP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let first: u64 = std::env::var("DISKV_MEMBERSHIP_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first..first + seeds {
        sweep_one(seed, 400);
    }
}
