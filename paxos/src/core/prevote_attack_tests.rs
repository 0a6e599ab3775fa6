//! Attack on issue #18 B3 (pre-vote, flow control, back-off): scenarios that break
//! liveness. Each test here failed on f6cbb78 (fixed since); it documents a finding.

use super::tests::take;
use super::*;
use std::collections::VecDeque;

/// A network where every message between two different replicas arrives `delay`
/// ticks after it was sent (messages to oneself arrive at once, as in the
/// daemons), and where `pass` may drop a message for good.
struct SlowNet {
    rs: Vec<Replica>,
    now: u64,
    in_flight: VecDeque<(u64, Envelope)>,
}

impl SlowNet {
    fn new(rs: Vec<Replica>) -> Self {
        SlowNet {
            rs,
            now: 0,
            in_flight: VecDeque::new(),
        }
    }

    /// Runs `ticks` ticks. `delay` gives each message's one-way delay; `pass`
    /// decides whether a message is delivered at all; `down` replicas neither tick
    /// nor receive.
    fn run(
        &mut self,
        ticks: u64,
        delay: &dyn Fn(&Envelope) -> u64,
        pass: &dyn Fn(&Envelope) -> bool,
        down: &[NodeId],
    ) {
        for _ in 0..ticks {
            self.now += 1;
            for r in self.rs.iter_mut() {
                if !down.contains(&r.id()) {
                    r.tick();
                }
            }
            // Deliver what is due, and everything sent to oneself, until quiet.
            for _ in 0..20 {
                let mut due = Vec::new();
                let mut later = VecDeque::new();
                for (t, m) in self.in_flight.drain(..) {
                    if t <= self.now {
                        due.push(m);
                    } else {
                        later.push_back((t, m));
                    }
                }
                self.in_flight = later;
                for (i, r) in self.rs.iter_mut().enumerate() {
                    if down.contains(&i) {
                        continue;
                    }
                    for m in take(r).messages {
                        if !pass(&m) {
                            continue;
                        }
                        if m.from == m.to {
                            due.push(m);
                        } else {
                            self.in_flight.push_back((self.now + delay(&m), m));
                        }
                    }
                }
                if due.is_empty() {
                    break;
                }
                for m in due {
                    if !down.contains(&m.to) {
                        let to = m.to;
                        self.rs[to].handle(m);
                    }
                }
            }
        }
    }

    fn leaders(&self, down: &[NodeId]) -> Vec<NodeId> {
        self.rs
            .iter()
            .filter(|r| r.is_leader() && !down.contains(&r.id()))
            .map(|r| r.id())
            .collect()
    }
}

/// Three replicas, replica 0 elected on a fast network.
fn group() -> SlowNet {
    let mut rs: Vec<Replica> = (0..3)
        .map(|i| Replica::new(CoreConfig::new(i, 3)))
        .collect();
    rs[0].campaign_now();
    let mut net = SlowNet::new(rs);
    net.run(5, &|_| 0, &|_| true, &[]);
    assert!(net.rs[0].is_leader());
    net
}

/// FINDING 1. The leader crashes; the survivors talk to each other with a round
/// trip a little longer than `retransmit_ticks` (12 ticks = 120 ms at the daemons'
/// 10 ms tick: a machine saturated by 16 MiB writes, the very setting of issue
/// #18). A pre-vote only counts grants echoing its current `attempt`, and a new
/// attempt replaces it every `retransmit_ticks`: every grant arrives after its
/// attempt was replaced, so no replica ever campaigns and the group has no leader
/// for good. A Prepare's promises count for a whole election timeout (30..60
/// ticks), so before the pre-vote the same network elected a leader.
#[test]
fn a_round_trip_longer_than_retransmit_ticks_prevents_every_election() {
    let mut net = group();
    let retransmit = u64::from(net.rs[0].config().retransmit_ticks);
    let election = u64::from(net.rs[0].config().election_ticks);
    let one_way = retransmit / 2 + 1; // round trip 12 ticks, election timeout >= 30
    assert!(2 * one_way < election);
    net.run(100 * election, &|_| one_way, &|_| true, &[0]);
    assert!(
        !net.leaders(&[0]).is_empty(),
        "no leader after {} election timeouts with a {}-tick round trip",
        100,
        2 * one_way
    );
}

/// Control: the same crash with a round trip just under `retransmit_ticks` elects
/// a new leader at once.
#[test]
fn control_a_round_trip_under_retransmit_ticks_elects_a_leader() {
    let mut net = group();
    let retransmit = u64::from(net.rs[0].config().retransmit_ticks);
    let election = u64::from(net.rs[0].config().election_ticks);
    let one_way = retransmit / 2 - 1;
    net.run(10 * election, &|_| one_way, &|_| true, &[0]);
    assert!(!net.leaders(&[0]).is_empty());
}

/// FINDING 3 (minor). `max_inflight_bytes: 0` passes `validate`, and the doc says
/// "one always may open", but `inflight_bytes() < 0` is never true: the leader
/// never proposes a single client command (they pile up in its queue forever).
#[test]
fn a_zero_byte_budget_is_rejected_or_still_lets_one_instance_open() {
    let cfg = |i| CoreConfig {
        max_inflight_bytes: 0,
        ..CoreConfig::new(i, 3)
    };
    let rs: Vec<Replica> = (0..3).map(|i| Replica::new(cfg(i))).collect();
    if cfg(0).validate().is_err() {
        return;
    }
    let mut net = SlowNet::new(rs);
    net.rs[0].campaign_now();
    net.run(5, &|_| 0, &|_| true, &[]);
    assert!(net.rs[0].is_leader());
    let first = net.rs[0].commit_index();
    net.rs[0].propose(b"x".to_vec());
    net.run(100, &|_| 0, &|_| true, &[]);
    assert!(
        net.rs[0].commit_index() > first,
        "validate accepted max_inflight_bytes = 0, and no command is ever proposed"
    );
}
