//! The bounded queue of envelopes waiting to go to one peer, and its counters.

use crate::message::{Envelope, Message};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// Counters of one peer link; all monotonic.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) enqueued: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) calls: AtomicU64,
    pub(super) failed_calls: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) failed_connects: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A FIFO of at most `capacity` envelopes and about `max_bytes` of them. When full,
/// the **oldest** envelopes are dropped to make room: the newest messages carry the
/// sender's latest ballot and watermarks, while old ones are the likeliest to be
/// superseded or retransmitted anyway. The byte bound keeps a slow peer from
/// holding gigabytes of retransmitted large entries (issue #18, B3); a single
/// envelope larger than it is still queued, alone.
#[derive(Debug)]
pub(super) struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    capacity: usize,
    max_bytes: usize,
    pub(super) counters: Counters,
}

/// The envelopes and their estimated size.
#[derive(Debug, Default)]
struct Queue {
    envelopes: VecDeque<Envelope>,
    bytes: usize,
}

impl Queue {
    fn pop_front(&mut self) -> bool {
        match self.envelopes.pop_front() {
            Some(env) => {
                self.bytes -= approx_size(&env);
                true
            }
            None => false,
        }
    }
}

impl Outbox {
    pub(super) fn new(capacity: usize, max_bytes: usize) -> Self {
        Outbox {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            capacity: capacity.max(1),
            max_bytes: max_bytes.max(1),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `env`, evicting the oldest envelopes while the queue is full. Never
    /// blocks beyond the (uncontended, short) queue lock.
    pub(super) fn push(&self, env: Envelope) {
        let size = approx_size(&env);
        let evicted = {
            let mut queue = self.lock();
            let mut evicted = 0;
            while queue.envelopes.len() >= self.capacity
                || (queue.bytes + size > self.max_bytes && !queue.envelopes.is_empty())
            {
                queue.pop_front();
                evicted += 1;
            }
            queue.bytes += size;
            queue.envelopes.push_back(env);
            evicted
        };
        Counters::add(&self.counters.enqueued, 1);
        Counters::add(&self.counters.dropped, evicted);
        self.ready.notify_one();
    }

    /// Takes the oldest envelopes, at most `max_messages` and about `max_bytes` (always at
    /// least one if any is queued, however big). Empty when nothing is queued.
    pub(super) fn take_batch(&self, max_messages: usize, max_bytes: usize) -> Vec<Envelope> {
        let mut queue = self.lock();
        let mut bytes = 0;
        let mut count = 0;
        for env in queue.envelopes.iter() {
            let size = approx_size(env);
            if count > 0 && (count >= max_messages || bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            count += 1;
        }
        queue.bytes -= bytes;
        queue.envelopes.drain(..count).collect()
    }

    /// Drops the oldest envelopes so that at most `keep` remain; returns how many went.
    pub(super) fn trim(&self, keep: usize) -> usize {
        let dropped = {
            let mut queue = self.lock();
            let excess = queue.envelopes.len().saturating_sub(keep);
            for _ in 0..excess {
                queue.pop_front();
            }
            excess
        };
        Counters::add(&self.counters.dropped, dropped);
        dropped
    }

    /// Envelopes currently queued.
    pub(super) fn len(&self) -> usize {
        self.lock().envelopes.len()
    }

    /// Estimated bytes currently queued.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Waits until something is queued. Meant for the one task draining this outbox.
    pub(super) async fn wait_nonempty(&self) {
        while self.len() == 0 {
            // `notify_one` leaves a permit when nobody waits, so a push between the
            // check and this await is not lost.
            self.ready.notified().await;
        }
    }

    /// Completes at the next push (or at once if one happened since the last wait).
    pub(super) async fn pushed(&self) {
        self.ready.notified().await;
    }
}

/// A cheap estimate of an envelope's encoded size, to bound batches.
pub(super) fn approx_size(env: &Envelope) -> usize {
    const HEADER: usize = 48;
    HEADER
        + match &env.msg {
            Message::Accept { entry, .. } | Message::ForwardStart { entry, .. } => {
                entry.size_hint()
            }
            Message::Promise { accepted, .. } => accepted
                .iter()
                .map(|slot| 32 + slot.entry.size_hint())
                .sum(),
            Message::Decided { entries, .. } => entries
                .iter()
                .map(|(_, entry)| 10 + entry.size_hint())
                .sum(),
            Message::Forward { commands } => commands.iter().map(|c| c.len() + 4).sum(),
            Message::Heartbeat { done, .. } => 10 * done.len(),
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Ballot, Entry};

    fn heartbeat(round: u64) -> Envelope {
        Envelope {
            from: 0,
            to: 1,
            msg: Message::Heartbeat {
                ballot: Ballot::ZERO,
                commit: 0,
                round,
                done: vec![],
            },
        }
    }

    fn round(env: &Envelope) -> Option<u64> {
        match env.msg {
            Message::Heartbeat { round, .. } => Some(round),
            _ => None,
        }
    }

    fn accept(slot: u64, bytes: usize) -> Envelope {
        Envelope {
            from: 0,
            to: 1,
            msg: Message::Accept {
                ballot: Ballot::ZERO,
                slot,
                entry: Entry::batch([vec![7; bytes]]),
                commit: 0,
            },
        }
    }

    /// Issue #18, B3: retransmitted large entries to a slow peer must not pile up
    /// without bound; the newest stay, one oversized envelope still goes alone.
    #[test]
    fn an_outbox_holds_about_its_byte_bound_of_the_newest_envelopes() {
        let outbox = Outbox::new(1000, 40 << 20);
        for slot in 0..20 {
            outbox.push(accept(slot, 16 << 20));
        }
        assert_eq!(outbox.len(), 2, "two 16 MiB entries fit in 40 MiB");
        assert!(outbox.bytes() <= 40 << 20);
        let kept: Vec<u64> = outbox
            .take_batch(100, usize::MAX)
            .iter()
            .map(|e| match e.msg {
                Message::Accept { slot, .. } => slot,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(kept, vec![18, 19], "the newest are kept");
        assert_eq!(outbox.bytes(), 0);
        outbox.push(accept(99, 64 << 20));
        assert_eq!(
            outbox.len(),
            1,
            "an envelope above the bound is queued alone"
        );
        assert_eq!(outbox.counters.dropped.load(Ordering::Relaxed), 18);
    }

    #[test]
    fn full_outbox_drops_oldest() {
        let outbox = Outbox::new(3, usize::MAX);
        for i in 0..5 {
            outbox.push(heartbeat(i));
        }
        let batch = outbox.take_batch(10, usize::MAX);
        let rounds: Vec<_> = batch.iter().filter_map(round).collect();
        assert_eq!(rounds, vec![2, 3, 4]);
        assert_eq!(Counters::get(&outbox.counters.enqueued), 5);
        assert_eq!(Counters::get(&outbox.counters.dropped), 2);
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let outbox = Outbox::new(100, usize::MAX);
        for i in 0..10 {
            outbox.push(heartbeat(i));
        }
        assert_eq!(outbox.take_batch(4, usize::MAX).len(), 4);
        assert_eq!(outbox.take_batch(100, 1).len(), 1, "at least one");
        assert_eq!(outbox.take_batch(100, 2 * 48).len(), 2);
        assert_eq!(outbox.len(), 3);

        let big = Envelope {
            from: 0,
            to: 1,
            msg: Message::Accept {
                ballot: Ballot::ZERO,
                slot: 0,
                entry: Entry::single(vec![0; 10_000]),
                commit: 0,
            },
        };
        outbox.push(big);
        let batch = outbox.take_batch(100, 5_000);
        assert_eq!(batch.len(), 3, "stops before the big one");
        assert_eq!(outbox.take_batch(100, 5_000).len(), 1);
    }

    #[test]
    fn trim_keeps_newest() {
        let outbox = Outbox::new(100, usize::MAX);
        for i in 0..10 {
            outbox.push(heartbeat(i));
        }
        assert_eq!(outbox.trim(4), 6);
        let rounds: Vec<_> = outbox
            .take_batch(100, usize::MAX)
            .iter()
            .filter_map(round)
            .collect();
        assert_eq!(rounds, vec![6, 7, 8, 9]);
        assert_eq!(Counters::get(&outbox.counters.dropped), 6);
    }
}
