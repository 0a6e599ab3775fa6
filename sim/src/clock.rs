//! Simulated time and the queue of scheduled events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Simulated time in microseconds since the start of a run.
pub type Time = u64;

/// One millisecond of simulated time.
pub const MS: Time = 1_000;
/// One second of simulated time.
pub const SECOND: Time = 1_000_000;

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
