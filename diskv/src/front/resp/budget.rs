//! The door's memory budget: the bytes every connection holds for commands not
//! yet complete, replies being built and replies not yet sent, summed over all
//! connections and capped ([`super::RespOptions::memory_budget`]). Without it,
//! each connection may hold a 64 MiB command and an MGET may gather gigabytes,
//! and a few clients could take the memory of the process, which in `diskv
//! serve` is also the durable replica. A connection that would go over is told
//! so and closed; the others go on.
//!
//! It is not the transport's frame budget (`paxos::transport::guard::FrameBudget`,
//! 1 GiB per process), though both cap bytes held for connections: that one
//! reserves, before a byte of the body is read, the length a tarpc frame's
//! header announces, once per frame, on the ports the mux serves (peers and
//! Clerks), and the RESP port is not one of them. A RESP command announces no
//! total length (an array arrives element by element), and what a connection
//! holds here grows and shrinks with its work — the command being parsed, the
//! values an MGET gathers, replies built but not yet written — so a [`Charge`] is
//! a running total set again at each step, and a refusal is answered before the
//! connection closes. The shared part is a capped counter of a few lines; one
//! type for both would tie the front door to the transport for that.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes each connection holds without charging the budget, so small traffic
/// never touches the shared counter's limit.
pub const FREE_PER_CONNECTION: usize = 64 << 10;

/// Bytes charged, over every connection.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// What one connection has charged to a [`Budget`]; given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    /// Bytes the connection holds, the free allowance included.
    holds: usize,
    /// Bytes charged to the budget (`holds` beyond the allowance).
    charged: usize,
}

impl Charge {
    /// A connection's charge, holding nothing yet.
    pub fn new(budget: Arc<Budget>) -> Charge {
        Charge {
            budget,
            holds: 0,
            charged: 0,
        }
    }

    /// The connection now holds `bytes`; false (and nothing changed) if the
    /// budget cannot cover them.
    pub fn set(&mut self, bytes: usize) -> bool {
        let want = bytes.saturating_sub(FREE_PER_CONNECTION);
        if want > self.charged && !self.budget.take(want - self.charged) {
            return false;
        }
        if want < self.charged {
            self.budget.give(self.charged - want);
        }
        self.charged = want;
        self.holds = bytes;
        true
    }

    /// The connection holds `bytes` more (a reply being gathered); false if the
    /// budget cannot cover them.
    pub fn add(&mut self, bytes: usize) -> bool {
        self.set(self.holds.saturating_add(bytes))
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_over_connections_and_come_back_when_dropped() {
        let budget = Budget::new(10 << 20);
        let mut a = Charge::new(budget.clone());
        let mut b = Charge::new(budget.clone());
        assert!(a.set(FREE_PER_CONNECTION), "the allowance is free");
        assert_eq!(budget.used(), 0);
        assert!(a.set(FREE_PER_CONNECTION + (6 << 20)));
        assert!(!b.set(FREE_PER_CONNECTION + (5 << 20)), "over the limit");
        assert_eq!(budget.used(), 6 << 20, "a refusal charges nothing");
        assert!(b.add(FREE_PER_CONNECTION + (4 << 20)));
        assert!(!b.add(1), "full");
        assert!(a.set(0));
        assert_eq!(budget.used(), 4 << 20);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
