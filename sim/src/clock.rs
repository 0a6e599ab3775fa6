//! Simulated time and the queue of scheduled events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Simulated time in microseconds since the start of a run.
pub type Time = u64;

/// One millisecond of simulated time.
pub const MS: Time = 1_000;
/// One second of simulated time.
pub const SECOND: Time = 1_000_000;

/// The nominal length of a replica's tick (the daemons' 10 ms).
pub const NOMINAL_TICK: Time = 10 * MS;

/// A tick length for a machine whose clock runs within `drift_percent` of
/// nominal: a third of the draws at the fast bound, a third at the slow bound,
/// the rest anywhere between. The bounds are rounded inwards, so the rate
/// (`NOMINAL_TICK / len`) is never outside them. With the default
/// `paxos::core::MAX_CLOCK_DRIFT_PERCENT` every clock keeps the assumption that
/// leader leases rest on; a larger spread (`diskv-sim --drift-percent 30`)
/// breaks it on purpose.
pub fn draw_tick_len(rng: &mut impl rand::Rng, drift_percent: u64) -> Time {
    let drift = drift_percent.min(99);
    // Fastest: rate 1 + drift, so len >= NOMINAL / (1 + drift).
    let shortest = (NOMINAL_TICK * 100).div_ceil(100 + drift);
    // Slowest: rate 1 - drift, so len <= NOMINAL / (1 - drift).
    let longest = NOMINAL_TICK * 100 / (100 - drift);
    match rng.gen_range(0..3) {
        0 => shortest,
        1 => longest,
        _ => rng.gen_range(shortest..=longest),
    }
}

/// Events ordered by the time they are due, ties broken by the order they were
/// scheduled in, so a run is the same every time.
pub struct Agenda<E> {
    heap: BinaryHeap<Reverse<Entry>>,
    events: Vec<Option<E>>,
    free: Vec<usize>,
    scheduled: u64,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Time,
    seq: u64,
    slot: usize,
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            scheduled: 0,
        }
    }
}

impl<E> Agenda<E> {
    /// Schedules `event` at time `at`.
    pub fn at(&mut self, at: Time, event: E) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.events[s] = Some(event);
                s
            }
            None => {
                self.events.push(Some(event));
                self.events.len() - 1
            }
        };
        self.scheduled += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.scheduled,
            slot,
        }));
    }

    /// The next event and its time, if any.
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let Reverse(entry) = self.heap.pop()?;
        let event = self.events[entry.slot].take()?;
        self.free.push(entry.slot);
        Some((entry.at, event))
    }

    /// Number of events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True if no event waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_lengths_keep_the_rate_within_the_drift_bound() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for drift in [0, 10, 30] {
            for _ in 0..1000 {
                let len = draw_tick_len(&mut rng, drift) as f64;
                let rate = NOMINAL_TICK as f64 / len;
                let d = drift as f64 / 100.0;
                assert!(rate <= 1.0 + d && rate >= 1.0 - d, "rate {rate} drift {d}");
            }
        }
    }

    #[test]
    fn events_come_in_time_order_and_ties_in_scheduling_order() {
        let mut a = Agenda::default();
        a.at(5, "late");
        a.at(1, "first");
        a.at(1, "second");
        assert_eq!(a.pop(), Some((1, "first")));
        assert_eq!(a.pop(), Some((1, "second")));
        assert_eq!(a.pop(), Some((5, "late")));
        assert_eq!(a.pop(), None);
    }
}
