//! Rebuilding a replica from the records its storage returned.

use super::{CoreConfig, Replica};
use crate::record::Record;
use crate::types::{Entry, Slot};
use std::collections::BTreeMap;

impl Replica {
    /// Rebuilds a replica from the records its storage returned, in order.
    pub fn restore(cfg: CoreConfig, records: impl IntoIterator<Item = Record>) -> Self {
        let mut r = Replica::new(cfg);
        let mut learned: BTreeMap<Slot, Entry> = BTreeMap::new();
        let mut committed = 0;
        for rec in records {
            match rec.upgraded() {
                Record::Promised(b) => r.promised = r.promised.max(b),
                Record::Accepted {
                    slot,
                    ballot,
                    entry,
                } => {
                    r.promised = r.promised.max(ballot);
                    r.accepted.insert(slot, (ballot, entry));
                }
                Record::Learned { slot, entry } => {
                    learned.insert(slot, entry);
                }
                Record::Committed { upto } => committed = committed.max(upto),
                Record::Forgotten { below } => r.floor = r.floor.max(below),
                Record::LegacyMembership(_) => {}
                Record::Membership(m) => {
                    if r.provisional || m.version() >= r.membership.version() {
                        r.provisional = false;
                        r.membership = m;
                    }
                }
            }
        }
        let floor = r.floor;
        r.accepted = r.accepted.split_off(&floor);
        learned = learned.split_off(&floor);
        r.max_round = r
            .promised
            .round
            .max(r.accepted.values().map(|(b, _)| b.round).max().unwrap_or(0));
        r.commit = floor;
        for slot in floor..committed {
            let value = learned
                .remove(&slot)
                .or_else(|| r.accepted.get(&slot).map(|(_, e)| e.clone()));
            match value {
                Some(entry) => {
                    r.decided.insert(slot, entry);
                }
                None => break,
            }
        }
        r.decided.extend(learned);
        // Bounded by the last slot: a record read from disk may name any slot.
        // A replica still without a membership but its start list applies
        // nothing (`advance_commit`): its decisions wait for the peers'.
        while !r.provisional && r.commit < Slot::MAX && r.decided.contains_key(&r.commit) {
            r.commit += 1;
        }
        r.commit_persisted = r.commit;
        r.durability.durable_commit = r.commit;
        r.announced_commit = r.commit;
        // Reincarnations and changes decided after the last Membership record
        // was written, in log order.
        let window = r.cfg.window;
        for (&slot, entry) in r.decided.range(..r.commit).filter(|_| !r.provisional) {
            if let Some(re) = entry.reincarnation() {
                r.membership.reincarnate(slot, window, re);
            }
            if let Some(c) = entry.change() {
                r.membership.apply(slot, window, c);
            }
        }
        // Rule 10: a restarted replica does not know whom it acknowledged
        // before; it promises no one, itself included, until a whole promise
        // guard has passed on its new clock. A group of one has no other
        // leader whose lease it could cut short (its own died with its
        // process), so it may lead at once.
        if !(r.alone() && r.membership.seats() == 1) {
            r.guard = super::acceptor::PromiseGuard::nobody_until(u64::from(r.cfg.election_ticks));
        }
        r.incarnation = match r.cfg.recovering {
            Some(nonce) => r.membership.incarnation_of(r.cfg.id, nonce).map(|(k, _)| k),
            None => r.membership.latest().get(r.cfg.id).map(|m| m.incarnation),
        };
        r.done = vec![floor; super::MAX_SEATS];
        r.seen_end = [
            r.commit,
            r.accepted
                .keys()
                .next_back()
                .map_or(0, |s| s.saturating_add(1)),
            r.decided
                .keys()
                .next_back()
                .map_or(0, |s| s.saturating_add(1)),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        r
    }
}
