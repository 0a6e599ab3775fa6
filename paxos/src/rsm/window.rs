//! The log window: the bytes of commands applied here and not yet covered by a
//! durable checkpoint, and the budget that stalls new proposals while it is
//! exceeded.
//!
//! A decided instance stays in memory (and in the log) until a checkpoint that
//! covers it is durable and the replica calls `done`. During a bulk load the
//! checkpoints, which write one file per changed key, can fall behind the
//! writes, and the window grew with the lag: a heaptrack profile of 200,000
//! writes of 1 KiB found 193 MB in it (docs/BENCHMARKS.md, "Where the memory
//! goes"). With a budget set ([`super::Rsm::with_window_budget`], diskv uses
//! [`WINDOW_BUDGET_BYTES`]), once the window holds the budget or more
//!
//! - the apply loop asks the state machine for a checkpoint at once, as if the
//!   log were idle, and again as soon as the running one ends;
//! - [`super::Rsm::execute`] waits before proposing a new command until a
//!   checkpoint brings the window back under the budget (as RocksDB stalls
//!   writes while compaction lags). The wait counts in the call's timeout: a
//!   command that timed out waiting was never proposed.
//!   [`super::Rsm::execute_unthrottled`] (reconfiguration, shard handoffs)
//!   and the protocol's own entries (membership changes, reincarnations)
//!   never wait.
//!
//! The window counts only what this replica's own checkpoint frees. The log
//! forgets an instance once *every* replica's checkpoint covers it (`min`), so
//! a replica that is down still holds the log of the others; stalling on that
//! would stop a group that lost one replica, which Paxos must survive.

use crate::types::{Entry, Slot};
use std::collections::VecDeque;

/// The budget diskv's groups give their log window: 64 MiB of commands applied
/// and not yet in a durable checkpoint (the same figure as the leader's
/// `max_inflight_bytes` of undecided proposals).
pub const WINDOW_BUDGET_BYTES: usize = 64 << 20;

/// The bytes of each instance applied since the last durable checkpoint.
#[derive(Debug, Default)]
pub struct Window {
    /// (instance, bytes of its commands), in instance order.
    instances: VecDeque<(Slot, usize)>,
    bytes: usize,
    budget: Option<usize>,
}

impl Window {
    /// Sets the budget (`None`: no stall, no early checkpoint).
    pub fn set_budget(&mut self, budget: Option<usize>) {
        self.budget = budget;
    }

    /// Bytes of commands applied and not yet covered by a durable checkpoint.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True while the window holds its budget or more.
    pub fn over_budget(&self) -> bool {
        self.budget.is_some_and(|b| self.bytes >= b)
    }

    /// `entry`, decided in `slot`, was applied.
    pub fn applied(&mut self, slot: Slot, entry: &Entry) {
        let bytes: usize = entry.commands().iter().map(|c| c.len()).sum();
        if bytes > 0 {
            self.instances.push_back((slot, bytes));
            self.bytes += bytes;
        }
    }

    /// Everything below `slot` is durable in the state machine's files (or
    /// installed from a peer's state): it leaves the window.
    pub fn covered_below(&mut self, slot: Slot) {
        while let Some(&(s, bytes)) = self.instances.front() {
            if s >= slot {
                break;
            }
            self.instances.pop_front();
            self.bytes -= bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Command;

    fn batch(sizes: &[usize]) -> Entry {
        Entry::Batch(sizes.iter().map(|&n| Command::from(vec![0u8; n])).collect())
    }

    #[test]
    fn counts_applied_commands_until_a_checkpoint_covers_them() {
        let mut w = Window::default();
        w.set_budget(Some(100));
        w.applied(3, &batch(&[40, 20]));
        w.applied(4, &Entry::Noop);
        w.applied(5, &batch(&[50]));
        assert_eq!(w.bytes(), 110);
        assert!(w.over_budget());
        w.covered_below(5);
        assert_eq!(w.bytes(), 50);
        assert!(!w.over_budget());
        w.covered_below(2);
        assert_eq!(w.bytes(), 50);
        w.covered_below(100);
        assert_eq!(w.bytes(), 0);
        w.set_budget(None);
        w.applied(6, &batch(&[1000]));
        assert!(!w.over_budget(), "no budget, no stall");
    }
}
