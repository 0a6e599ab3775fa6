//! Attack tests for operator membership changes, written by a reviewer whose
//! job was to break them. Safety only: the simulator panics on two decided
//! values, a stale read, or two replicas disagreeing on the membership of an
//! instance they both applied. `SEED=n ATTACK_MIX=m cargo test -p paxos --lib
//! attack_debug -- --ignored --nocapture` replays one run with a trace.

use crate::core::{Change, ChangeAnswer, CoreConfig, Seat};
use crate::sim::{NetOptions, Sim, UNITS_PER_TICK};
use crate::types::NodeId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A harsher sweep: small windows, reads at every replica every step, torn
/// crashes right after a change, partitions of any minority (the leader's too),
/// one-way holds, lost disks while a change is pending (one at a time).
fn attack_one(seed: u64, steps: u32, mix: u32) {
    let window = [1u64, 2, 3, 5, 8][(seed % 5) as usize];
    let n0 = if mix.is_multiple_of(2) { 3 } else { 5 };
    let configs: Vec<CoreConfig> = (0..n0)
        .map(|i| CoreConfig {
            seed,
            window,
            ..CoreConfig::new(i, n0)
        })
        .collect();
    let mut sim = Sim::with_configs(configs, seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xa77ac4 ^ u64::from(mix));
    if mix >= 2 || rng.gen_bool(0.5) {
        sim.set_net(NetOptions::unreliable());
    }
    let mut next_cmd = 0u64;
    let mut read_id = 0u64;
    let mut down: Vec<NodeId> = Vec::new();
    let mut partitioned = false;
    let mut held: Vec<(NodeId, NodeId)> = Vec::new();
    let verbose = std::env::var("SEED").is_ok();
    for _ in 0..steps {
        let n = sim.len();
        // Reads everywhere, every step.
        for i in 0..n {
            read_id += 1;
            sim.read(i, read_id);
        }
        match rng.gen_range(0..100) {
            0..=29 => super::tests::membership::propose_next(&mut sim, &mut next_cmd),
            30..=39 => {
                let i = rng.gen_range(0..n);
                let max_down = (n - 1) / 2;
                if sim.is_up(i) && down.len() < max_down.min(1) {
                    if verbose {
                        eprintln!("t={} crash {i}", sim.now());
                    }
                    sim.crash(i, rng.gen_bool(0.7));
                    down.push(i);
                }
            }
            40..=47 => {
                if let Some(i) = down.pop() {
                    if verbose {
                        eprintln!("t={} restart {i}", sim.now());
                    }
                    sim.restart(i);
                }
            }
            48..=55 => {
                if partitioned {
                    sim.heal();
                    partitioned = false;
                } else {
                    // Any minority, often the leader's side.
                    let k = rng.gen_range(1..=((n - 1) / 2).max(1));
                    let mut cut: Vec<NodeId> = Vec::new();
                    if let Some(l) = sim.leader().filter(|_| rng.gen_bool(0.5)) {
                        cut.push(l);
                    }
                    while cut.len() < k {
                        let c = rng.gen_range(0..n);
                        if !cut.contains(&c) {
                            cut.push(c);
                        }
                    }
                    let rest: Vec<NodeId> = (0..n).filter(|i| !cut.contains(i)).collect();
                    if verbose {
                        eprintln!("t={} partition {cut:?} | {rest:?}", sim.now());
                    }
                    sim.partition(&[&rest, &cut]);
                    partitioned = true;
                }
            }
            56..=59 => {
                if held.is_empty() || rng.gen_bool(0.5) {
                    let a = rng.gen_range(0..n);
                    let b = rng.gen_range(0..n);
                    if a != b {
                        sim.hold(a, b);
                        held.push((a, b));
                    }
                } else {
                    let (a, b) = held.remove(rng.gen_range(0..held.len()));
                    sim.release(a, b);
                }
            }
            60..=84 => step_change(&mut sim, &mut rng, &mut down, verbose),
            85..=89 => {
                // The leader crashes (torn) right after whatever it just did.
                if let Some(l) = sim.leader() {
                    if down.is_empty() {
                        if verbose {
                            eprintln!("t={} crash leader {l} torn", sim.now());
                        }
                        sim.crash(l, true);
                        down.push(l);
                    }
                }
            }
            _ => {}
        }
        let units = rng.gen_range(1..=6) * UNITS_PER_TICK;
        if verbose {
            for _ in 0..units {
                let before = sim.chosen().len();
                sim.run(1);
                if sim.chosen().len() != before || std::env::var("DUMP").is_ok() {
                    dump(&sim);
                }
            }
        } else {
            sim.run(units);
        }
        sim.check_memberships();
    }
    // Release everything and settle; then check again.
    for (a, b) in held.drain(..) {
        sim.release(a, b);
    }
    sim.heal();
    sim.set_net(NetOptions::reliable());
    for i in down.drain(..) {
        sim.restart(i);
    }
    for _ in 0..50 {
        let n = sim.len();
        for i in 0..n {
            read_id += 1;
            sim.read(i, read_id);
        }
        sim.run(10 * UNITS_PER_TICK);
        sim.check_memberships();
    }
}

fn step_change(sim: &mut Sim, rng: &mut StdRng, down: &mut Vec<NodeId>, verbose: bool) {
    use super::tests::membership::{grow, look, Seen};
    let Some(Seen {
        leader: l,
        latest,
        voters,
        healthy,
    }) = look(sim)
    else {
        return;
    };
    let change = match rng.gen_range(0..6) {
        k @ 0..=1 => match grow(sim, &latest, k == 1) {
            Some(c) => c,
            None => return,
        },
        2 if voters.len() > 2 && healthy => Change::Remove {
            // Often the leader itself.
            node: if rng.gen_bool(0.4) {
                l
            } else {
                voters[rng.gen_range(0..voters.len())]
            },
        },
        3 if down.is_empty() && voters.len() >= 3 && healthy => {
            let node = if rng.gen_bool(0.4) {
                l
            } else {
                voters[rng.gen_range(0..voters.len())]
            };
            Change::Move {
                node,
                addr: format!("moved{}-{}", node, rng.gen::<u16>()),
            }
        }
        4 if down.is_empty()
            && voters.len() >= 3
            && healthy
            && latest.iter().all(|m| !m.vacant) =>
        {
            // A lost disk, even while a change is pending.
            let i = voters[rng.gen_range(0..voters.len())];
            if verbose {
                eprintln!("t={} lose disk {i} (leader {l})", sim.now());
            }
            sim.lose_disk(i);
            return;
        }
        5 => {
            // A learner's process loses its disk.
            if let Some(node) =
                (0..latest.len()).find(|&i| latest[i].seat == Seat::Learner && !latest[i].vacant)
            {
                if down.is_empty() && sim.is_up(node) {
                    if verbose {
                        eprintln!("t={} learner {node} loses its disk", sim.now());
                    }
                    sim.lose_disk(node);
                }
            }
            return;
        }
        _ => return,
    };
    let answer = sim.propose_change(change.clone());
    if verbose {
        eprintln!("t={} {change} at {l}: {answer:?}", sim.now());
    }
    if answer != Some(ChangeAnswer::Proposed) {
        return;
    }
    // Sometimes tear the leader right after proposing.
    if rng.gen_bool(0.2) && down.is_empty() {
        sim.run(rng.gen_range(0..3) * UNITS_PER_TICK);
        if verbose {
            eprintln!("t={} tear leader {l} after the change", sim.now());
        }
        sim.crash(l, true);
        down.push(l);
    }
    super::tests::membership::start_new_process(sim, &change, latest.len(), down);
}

#[test]
fn attack_sweep() {
    let seeds: u64 = std::env::var("ATTACK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let first: u64 = std::env::var("ATTACK_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mixes: Vec<u32> = match std::env::var("ATTACK_MIX")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(mix) => vec![mix],
        None => vec![0, 1, 2, 3],
    };
    for mix in mixes {
        for seed in first..first + seeds {
            attack_one(seed, 300, mix);
        }
    }
}

#[test]
#[ignore]
fn attack_debug() {
    let seed: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    let mix: u32 = std::env::var("ATTACK_MIX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    attack_one(seed, 300, mix);
}

fn dump(sim: &Sim) {
    let watch: u64 = std::env::var("WATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    eprintln!(
        "-- t={} chosen[{watch}]={:?}",
        sim.now(),
        sim.chosen().get(&watch)
    );
    for i in 0..sim.len() {
        match sim.node(i) {
            Some(r) => eprintln!(
                "   {i}: inc {:?} commit {} leader {:?} is_leader {} ls {} m {:?} acc[{watch}]={:?} dec={:?} promised {:?}",
                r.incarnation(),
                r.commit_index(),
                r.leader(),
                r.is_leader(),
                r.membership().latest_start(),
                r.membership().epoch_starts().iter().map(|&e| (e, r.membership().at(e).iter().map(|m| (m.incarnation, match m.seat { Seat::Voter => 'V', Seat::Learner => 'L', Seat::Removed => 'R' }, m.vacant)).collect::<Vec<_>>())).collect::<Vec<_>>(),
                r.accepted.get(&watch).map(|(b, e)| (*b, e.clone())),
                r.decided(watch),
                r.promised,
            ),
            None => eprintln!("   {i}: down"),
        }
    }
}

/// Was a VIOLATION of agreement (fixed: `propose_in` and `become_leader` check
/// the promises against each instance's epoch). 5 replicas, window 8: seats 0 and 3 removed (epochs
/// 19 and 29); leader 4 decides `c21` in instance 29 with {2, 4} (a majority
/// of epoch 29's voters {1, 2, 4}). Replica 1, cut off at commit 10, campaigns
/// and is promised by 0 and 3 (removed, but still answering Prepares): a
/// majority of the only epoch it knows. It learns the decisions up to 24 from
/// 3's report (now it knows epoch 29), yet still opens instance 29 with `c27`:
/// replica 4 accepts it at the higher ballot, overwriting the chosen `c21`.
/// `try_decide` refuses (promisers not a quorum of 29) and 1 steps down, but the
/// damage is done: 4 restarts and `restore` rebuilds decided[29] from its
/// accepted `c27`; 4 reports it decided to 1's next campaign; `c27` is decided.
#[test]
fn stale_view_leader_overwrites_a_chosen_value_seed799() {
    attack_one(799, 300, 1);
}

/// Was a VIOLATION of agreement (same cause), 3 replicas on a lossy network.
#[test]
fn stale_view_leader_overwrites_a_chosen_value_seed3739() {
    attack_one(3739, 300, 2);
}
