//! Attack on f6cbb78 (issue #18 B3, pre-vote): a group whose round trip exceeds
//! `retransmit_ticks` (100 ms with the defaults and the daemons' 10 ms tick: any
//! cross-region deployment) never elected a leader, not even at boot: the first
//! pre-vote dropped its grants every `retransmit_ticks`. Failed on f6cbb78; a
//! pre-vote now lasts one election timeout (`core/prevote.rs`).

use paxos::core::Status;
use paxos::sim::{NetOptions, Sim, UNITS_PER_TICK};
use paxos::Entry;

fn decides_on_a_slow_lan(seed: u64, min_delay: u64, max_delay: u64) -> bool {
    let mut sim = Sim::new(3, seed);
    sim.set_net(NetOptions {
        drop: 0.0,
        duplicate: 0.0,
        min_delay,
        max_delay,
    });
    sim.node_mut(0)
        .unwrap()
        .start(0, Entry::single(b"hello".to_vec()));
    // 100 election timeouts (30 s of daemon time).
    sim.run_until(3000 * UNITS_PER_TICK, |s| {
        (0..3).any(|i| matches!(s.node(i).map(|r| r.status(0)), Some(Status::Decided(_))))
    })
}

/// Seeds 0..5 each decide with one-way delays of `min..=max` ticks.
fn elects_with_delays(min: u64, max: u64) {
    for seed in 0..5 {
        assert!(
            decides_on_a_slow_lan(seed, min * UNITS_PER_TICK, max * UNITS_PER_TICK),
            "seed {seed}: nothing decided in 30 s: no leader was ever elected"
        );
    }
}

/// One-way 60 ms (round trip 120 ms, e.g. us-east <-> eu-west), no loss.
#[test]
fn a_fresh_group_with_a_120ms_round_trip_elects_a_leader() {
    elects_with_delays(6, 6);
}

/// One-way 50..80 ms (round trip 100..160 ms), no loss: grants that happen to come back within 100 ms
/// still count only if the attempt was not replaced meanwhile.
#[test]
fn a_fresh_group_with_a_jittery_wan_elects_a_leader() {
    elects_with_delays(5, 8);
}

/// Control: 40 ms one way (80 ms round trip) works.
#[test]
fn control_a_fresh_group_with_an_80ms_round_trip_elects_a_leader() {
    elects_with_delays(4, 4);
}
