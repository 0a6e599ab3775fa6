//! Unit tests of one replica: the exact records and messages each input produces,
//! and the persistence rules of the crate docs, checked by restoring from records.
//! The helpers here serve every test file of the core; the tests are by topic:
//! `persistence.rs` (rules 1–2, restarts, restoring from records), `lease.rs`
//! (leader leases and the promise guard, rule 10), `leader.rs`
//! (election, batching, the window, read-index, catch-up), `disk_loss.rs` (a
//! recovering replica's votes and history), `probe.rs` (the probe's fresh start
//! in a group of five), `reincarnation.rs` (reincarnation requests and
//! memberships that are stale or lost), `membership.rs` (operator membership
//! changes under faults, in the simulator).

mod disk_loss;
mod leader;
mod lease;
mod lease_attack;
pub(super) mod membership;
mod persistence;
mod probe;
mod reincarnation;

use super::*;
use crate::message::PromisedSlot;

pub(super) fn replica(id: NodeId, n: usize) -> Replica {
    Replica::new(CoreConfig::new(id, n))
}

pub(super) fn env(from: NodeId, to: NodeId, msg: Message) -> Envelope {
    Envelope { from, to, msg }
}

pub(super) fn val(s: &str) -> Entry {
    Entry::single(s.as_bytes().to_vec())
}

/// Takes `r`'s Ready as a driver whose disk is durable at once would: every record
/// durable, every message sent.
pub(super) fn take(r: &mut Replica) -> Ready {
    let mut ready = r.take_ready();
    r.on_durable(r.records_handed_out());
    let after = std::mem::take(&mut ready.after_sync);
    ready.messages.extend(after);
    ready
}

/// Restores a replica from everything it persisted so far (a crash and restart).
pub(super) fn bounce(r: Replica, records: &[Record]) -> Replica {
    Replica::restore(r.config().clone(), records.iter().cloned())
}

/// Delivers every message among `rs` until none is left (at most 100 rounds).
pub(super) fn settle(rs: &mut [Replica]) {
    for _ in 0..100 {
        let msgs: Vec<Envelope> = rs.iter_mut().flat_map(|r| take(r).messages).collect();
        if msgs.is_empty() {
            return;
        }
        for m in msgs {
            let to = m.to;
            rs[to].handle(m);
        }
    }
    panic!("the group never went quiet");
}

/// Delivers, among `rs`, every message `pass` lets through (each replica's Ready
/// durable at once), until none is left; returns the messages dropped.
pub(super) fn deliver_only(rs: &mut [Replica], pass: &dyn Fn(&Envelope) -> bool) -> Vec<Envelope> {
    let mut dropped = Vec::new();
    for _ in 0..100 {
        let msgs: Vec<Envelope> = rs.iter_mut().flat_map(|r| take(r).messages).collect();
        if msgs.is_empty() {
            return dropped;
        }
        for m in msgs {
            if pass(&m) {
                let to = m.to;
                rs[to].handle(m);
            } else {
                dropped.push(m);
            }
        }
    }
    panic!("the group never went quiet");
}
