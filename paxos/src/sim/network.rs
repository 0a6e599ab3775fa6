//! The simulated network: delays, drops, duplicates, reordering and partitions.

use crate::message::Envelope;
use crate::types::NodeId;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeMap;

/// How the simulated network misbehaves. Probabilities are in `[0, 1]`.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Smallest delivery delay in time units.
    pub min_delay: u64,
    /// Largest delivery delay in time units (different delays reorder messages).
    pub max_delay: u64,
}

impl NetOptions {
    /// A network that delivers everything in order after one unit.
    pub fn reliable() -> Self {
        NetOptions {
            drop: 0.0,
            duplicate: 0.0,
            min_delay: 1,
            max_delay: 1,
        }
    }

    /// A network that loses 10% of messages, duplicates 5% and reorders freely.
    pub fn unreliable() -> Self {
        NetOptions {
            drop: 0.1,
            duplicate: 0.05,
            min_delay: 1,
            max_delay: 30,
        }
    }
}

pub(super) struct Network {
    pub(super) opts: NetOptions,
    pub(super) deaf: Vec<bool>,
    /// Partition id of every replica; messages only flow within one id.
    side: Vec<usize>,
    queue: BTreeMap<(u64, u64), Envelope>,
    counter: u64,
    /// Links whose messages are held back, and what they hold.
    held: BTreeMap<(NodeId, NodeId), Vec<Envelope>>,
}

impl Network {
    pub(super) fn new(n: usize) -> Self {
        Network {
            opts: NetOptions::reliable(),
            deaf: vec![false; n],
            side: vec![0; n],
            queue: BTreeMap::new(),
            counter: 0,
            held: BTreeMap::new(),
        }
    }

    /// Makes room for one more replica (on the healed side).
    pub(super) fn grow(&mut self) {
        self.deaf.push(false);
        self.side.push(0);
    }

    pub(super) fn partition(&mut self, groups: &[&[NodeId]]) {
        let n = self.side.len();
        for (i, s) in self.side.iter_mut().enumerate() {
            *s = n + i + 1;
        }
        for (g, members) in groups.iter().enumerate() {
            for &m in members.iter() {
                self.side[m] = g;
            }
        }
    }

    pub(super) fn hold(&mut self, from: NodeId, to: NodeId) {
        self.held.entry((from, to)).or_default();
    }

    pub(super) fn release(&mut self, from: NodeId, to: NodeId, now: u64) {
        for env in self.held.remove(&(from, to)).unwrap_or_default() {
            self.push(now + 1, env);
        }
    }

    pub(super) fn heal(&mut self) {
        self.side.iter_mut().for_each(|s| *s = 0);
    }

    pub(super) fn send(&mut self, env: Envelope, now: u64, rng: &mut StdRng) {
        if env.to >= self.side.len() {
            return;
        }
        if let Some(held) = self.held.get_mut(&(env.from, env.to)) {
            held.push(env);
            return;
        }
        if env.to == env.from {
            // Loopback never fails.
            self.push(now + 1, env);
            return;
        }
        if rng.gen_bool(self.opts.drop) {
            return;
        }
        let copies = if rng.gen_bool(self.opts.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay =
                rng.gen_range(self.opts.min_delay..=self.opts.max_delay.max(self.opts.min_delay));
            self.push(now + delay, env.clone());
        }
    }

    fn push(&mut self, at: u64, env: Envelope) {
        self.counter += 1;
        self.queue.insert((at, self.counter), env);
    }

    /// Messages due at `now`, in an order that is random among equal times. The
    /// partition and deafness are checked at delivery time.
    pub(super) fn due(&mut self, now: u64, rng: &mut StdRng) -> Vec<Envelope> {
        let later = self.queue.split_off(&(now + 1, 0));
        let mut due: Vec<Envelope> = std::mem::replace(&mut self.queue, later)
            .into_values()
            .collect();
        // Shuffle lightly when the network reorders.
        if self.opts.max_delay > self.opts.min_delay {
            for k in (1..due.len()).rev() {
                let j = rng.gen_range(0..=k);
                due.swap(k, j);
            }
        }
        due.into_iter()
            .filter(|env| {
                env.to == env.from
                    || (!self.deaf[env.to] && self.side[env.to] == self.side[env.from])
            })
            .collect()
    }
}
