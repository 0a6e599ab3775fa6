//! The simulated network: every message is delayed, and may be dropped,
//! duplicated, reordered, held back for a long time (a stale leader's `Accept`
//! arriving long after), or stopped by a partition — symmetric (sides) or
//! asymmetric (one direction of one link). Partitions are checked when a message
//! arrives, as on a real network.

use crate::clock::{Time, MS};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeSet;

/// An endpoint: a replica of a group, or a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Addr {
    /// Replica `node` of group `group` (group 0 is the shardmaster).
    Replica {
        /// The group.
        group: u64,
        /// The replica's index.
        node: usize,
    },
    /// A client.
    Client(u64),
}

/// How the network misbehaves now.
#[derive(Clone, Debug)]
pub struct Weather {
    /// Chance a message is lost.
    pub drop: f64,
    /// Chance a message is delivered twice.
    pub duplicate: f64,
    /// Delay range of an ordinary message.
    pub delay: (Time, Time),
    /// Chance a message is held back for `hold` (reordered far behind later ones).
    pub hold_chance: f64,
    /// How long a held message may wait.
    pub hold: (Time, Time),
}

impl Weather {
    /// A quiet LAN: small delays, nothing lost.
    pub fn calm() -> Self {
        Weather::quiet((100, 600))
    }

    /// Nothing lost, one-way delays in `delay`.
    fn quiet(delay: (Time, Time)) -> Self {
        Weather {
            drop: 0.0,
            duplicate: 0.0,
            delay,
            hold_chance: 0.0,
            hold: (0, 0),
        }
    }

    /// The run's quiet weather: a LAN, or in one run in seven a WAN with one-way
    /// delays of 20–80 ms, longer than a retransmission interval (the attack on
    /// issue #18's pre-vote: grants that took longer than that were all dropped and
    /// no one was ever elected). `SIM_CALM_DELAY_MS=lo,hi` forces the delays.
    pub fn calm_for_run(rng: &mut impl rand::Rng) -> Self {
        let forced = std::env::var("SIM_CALM_DELAY_MS").ok().and_then(|v| {
            let (lo, hi) = v.split_once(',')?;
            Some((
                lo.trim().parse::<Time>().ok()? * MS,
                hi.trim().parse::<Time>().ok()? * MS,
            ))
        });
        let wan = rng.gen_bool(1.0 / 7.0);
        match forced {
            Some(delay) => Weather::quiet(delay),
            None if wan => Weather::quiet((20 * MS, 80 * MS)),
            None => Weather::calm(),
        }
    }

    /// A bad network: losses, duplicates, reordering, and stragglers.
    pub fn stormy(rng: &mut StdRng) -> Self {
        Weather {
            drop: rng.gen_range(0.0..0.2),
            duplicate: rng.gen_range(0.0..0.1),
            delay: (100, rng.gen_range(1..30) * MS),
            hold_chance: rng.gen_range(0.0..0.02),
            hold: (100 * MS, rng.gen_range(1..6) * 1000 * MS),
        }
    }
}

/// The network's state: weather and partitions.
pub struct Network {
    /// How messages fare now.
    pub weather: Weather,
    /// Side of each endpoint in a partition (absent: side 0, with the clients).
    sides: Vec<(Addr, u32)>,
    /// One-way links that carry nothing: (from, to).
    blocked: BTreeSet<(Addr, Addr)>,
    /// This run's quiet weather ([`Weather::calm_for_run`]).
    pub calm: Weather,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            weather: Weather::calm(),
            sides: Vec::new(),
            blocked: BTreeSet::new(),
            calm: Weather::calm(),
        }
    }
}

impl Network {
    /// The delivery times of one message sent now (none if lost; two if
    /// duplicated).
    pub fn fate(&self, rng: &mut StdRng, now: Time, from: Addr, to: Addr) -> Vec<Time> {
        let w = &self.weather;
        if from == to {
            // A replica's message to itself: lost at half the drop rate, as a
            // full loopback inbox loses it in the tokio driver (the lease
            // attack's ballot reuse needed a leader elected without its own
            // promise), else delivered at once.
            if w.drop > 0.0 && rng.gen_bool(w.drop / 2.0) {
                return Vec::new();
            }
            return vec![now + 1];
        }
        if rng.gen_bool(w.drop) {
            return Vec::new();
        }
        let copies = if rng.gen_bool(w.duplicate) { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let (lo, hi) = if w.hold_chance > 0.0 && rng.gen_bool(w.hold_chance) {
                    w.hold
                } else {
                    w.delay
                };
                now + rng.gen_range(lo..=hi.max(lo))
            })
            .collect()
    }

    /// True if a message from `from` reaches `to` now.
    pub fn passes(&self, from: Addr, to: Addr) -> bool {
        from == to || (self.side(from) == self.side(to) && !self.blocked.contains(&(from, to)))
    }

    fn side(&self, a: Addr) -> u32 {
        self.sides
            .iter()
            .find(|(x, _)| *x == a)
            .map_or(0, |(_, s)| *s)
    }

    /// Puts each endpoint of `sides[i]` on side `i + 1` (away from the clients'
    /// side 0 unless `i + 1` is moved there by listing it first with side 0).
    pub fn partition(&mut self, sides: Vec<(Addr, u32)>) {
        self.sides = sides;
    }

    /// Cuts the link from `from` to `to` in that direction only.
    pub fn block(&mut self, from: Addr, to: Addr) {
        self.blocked.insert((from, to));
    }

    /// Heals every partition and blocked link.
    pub fn heal(&mut self) {
        self.sides.clear();
        self.blocked.clear();
    }

    /// A short description, for traces.
    pub fn describe(&self) -> String {
        format!(
            "sides {:?} blocked {:?} drop {:.2} dup {:.2} delay {:?} hold {:.3}",
            self.sides,
            self.blocked,
            self.weather.drop,
            self.weather.duplicate,
            self.weather.delay,
            self.weather.hold_chance
        )
    }
}
