//! Which acceptor incarnation votes in which instance.
//!
//! A replica that lost its disk comes back as a **new incarnation** of its index.
//! The change is itself decided in the log (`Entry::Reincarnate`) by the current
//! membership, in which the old incarnation still counts but can no longer answer.
//! If it is decided in instance `s`, the new incarnation votes only in instances
//! after `s + window` (α, the leader's in-flight window): no leader starts instance
//! `j` before every instance `<= j - window` is decided, so nothing the lost
//! incarnation ever accepted lies beyond `s + window`. Votes carry the incarnation,
//! and a vote for instance `j` counts only if it comes from the incarnation that
//! `j`'s epoch names.

use crate::types::{NodeId, Reincarnation, Slot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One replica index's current acceptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Raised by one at each reincarnation.
    pub incarnation: u64,
    /// Random number the recovering replica chose, so it recognises its own
    /// reincarnation in the log (0 for the first incarnation).
    pub nonce: u64,
}

/// Membership epochs: from which instance on which incarnations vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    epochs: BTreeMap<Slot, Vec<Member>>,
}

impl Membership {
    /// Grows with every reincarnation: the newer of two memberships has the higher.
    /// Saturates instead of overflowing: a record read from disk or a peer may hold
    /// any incarnation (found by `diskv-fuzz --target segment_log`: a membership
    /// record with an incarnation of `u64::MAX` made the log's scan panic).
    pub fn version(&self) -> u64 {
        self.latest()
            .iter()
            .fold(0, |sum: u64, m| sum.saturating_add(m.incarnation))
    }

    /// Every replica at its first incarnation, from instance 0.
    pub fn initial(peers: usize) -> Self {
        let mut epochs = BTreeMap::new();
        epochs.insert(
            0,
            vec![
                Member {
                    incarnation: 0,
                    nonce: 0
                };
                peers
            ],
        );
        Membership { epochs }
    }

    /// The members voting in `slot`.
    pub fn at(&self, slot: Slot) -> &[Member] {
        self.epochs
            .range(..=slot)
            .next_back()
            .map(|(_, m)| m.as_slice())
            .unwrap_or(&[])
    }

    /// The newest epoch's members.
    pub fn latest(&self) -> &[Member] {
        self.epochs
            .values()
            .next_back()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// True if a vote of `node` at `incarnation` counts in `slot`.
    pub fn counts(&self, slot: Slot, node: NodeId, incarnation: u64) -> bool {
        self.at(slot)
            .get(node)
            .is_some_and(|m| m.incarnation == incarnation)
    }

    /// The incarnation a replica recovering with `nonce` was given, if decided.
    pub fn incarnation_of(&self, node: NodeId, nonce: u64) -> Option<(u64, Slot)> {
        self.epochs
            .iter()
            .find(|(_, ms)| ms.get(node).is_some_and(|m| m.nonce == nonce))
            .map(|(&from, ms)| (ms[node].incarnation, from))
    }

    /// Applies a reincarnation decided in `slot`: a new epoch from
    /// `slot + window + 1`. Returns false, changing nothing, if it was already
    /// applied (same nonce), names no replica, or replaces an incarnation that is
    /// no longer the newest (a stale request).
    pub fn reincarnate(&mut self, slot: Slot, window: u64, r: Reincarnation) -> bool {
        let Reincarnation {
            node,
            nonce,
            replaces,
        } = r;
        let mut members = self.latest().to_vec();
        if node >= members.len() || self.incarnation_of(node, nonce).is_some() {
            return false;
        }
        if replaces.is_some_and(|k| k != members[node].incarnation) {
            return false;
        }
        // Saturating: a decided entry read from disk or a peer may name any slot
        // and replace any incarnation.
        members[node] = Member {
            incarnation: members[node].incarnation.saturating_add(1),
            nonce,
        };
        self.epochs
            .insert(slot.saturating_add(window).saturating_add(1), members);
        true
    }

    /// The first instance of the newest epoch (0 while no replica was reincarnated).
    pub fn latest_start(&self) -> Slot {
        self.epochs.keys().next_back().copied().unwrap_or(0)
    }

    /// True if an epoch starts at `slot`.
    pub fn starts_at(&self, slot: Slot) -> bool {
        self.epochs.contains_key(&slot)
    }

    /// The first instance of every epoch, ascending.
    pub fn epoch_starts(&self) -> Vec<Slot> {
        self.epochs.keys().copied().collect()
    }

    /// The epochs that cover any instance at or after `slot`.
    pub fn epochs_from(&self, slot: Slot) -> impl Iterator<Item = &[Member]> {
        let first = self
            .epochs
            .range(..=slot)
            .next_back()
            .map(|(&k, _)| k)
            .unwrap_or(0);
        self.epochs.range(first..).map(|(_, m)| m.as_slice())
    }

    /// Forgets epochs that only cover instances below `floor`.
    pub fn prune_below(&mut self, floor: Slot) {
        let keep_from = self
            .epochs
            .range(..=floor)
            .next_back()
            .map(|(&k, _)| k)
            .unwrap_or(0);
        self.epochs = self.epochs.split_off(&keep_from);
    }

    /// Takes in every epoch of `other` (both are facts about decided instances).
    ///
    /// A replica restored past a reincarnation without its membership record
    /// applies later reincarnations on a view that lacks it: its epoch at that
    /// start slot names an older incarnation of some replica than the group's.
    /// Incarnations only grow from epoch to epoch, so where two epochs start at
    /// the same slot each replica takes the higher incarnation, and each epoch
    /// names at least the incarnations of the epoch before it.
    pub fn merge(&mut self, other: &Membership) {
        for (&from, ms) in &other.epochs {
            let mine = self.epochs.entry(from).or_insert_with(|| ms.clone());
            for (m, o) in mine.iter_mut().zip(ms) {
                if o.incarnation > m.incarnation {
                    *m = *o;
                }
            }
        }
        let mut prev: Option<Vec<Member>> = None;
        for ms in self.epochs.values_mut() {
            if let Some(prev) = &prev {
                for (m, p) in ms.iter_mut().zip(prev) {
                    if p.incarnation > m.incarnation {
                        *m = *p;
                    }
                }
            }
            prev = Some(ms.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(node: NodeId, nonce: u64, replaces: u64) -> Reincarnation {
        Reincarnation {
            node,
            nonce,
            replaces: Some(replaces),
        }
    }

    #[test]
    fn a_reincarnation_takes_effect_after_the_window() {
        let mut m = Membership::initial(3);
        assert!(m.reincarnate(10, 4, re(1, 77, 0)));
        // Decided in 10 with a window of 4: instances up to 14 stay with the old one.
        assert!(
            m.counts(14, 1, 0),
            "the old incarnation still counts up to s + window"
        );
        assert!(!m.counts(14, 1, 1));
        assert!(m.counts(15, 1, 1));
        assert!(
            !m.counts(15, 1, 0),
            "the old incarnation never counts after"
        );
        assert_eq!(m.incarnation_of(1, 77), Some((1, 15)));
        assert!(
            !m.reincarnate(20, 4, re(1, 77, 1)),
            "the same request applied twice"
        );
        assert!(m.reincarnate(20, 4, re(1, 78, 1)));
        assert!(m.counts(25, 1, 2));
    }

    #[test]
    fn a_stale_reincarnation_changes_nothing() {
        let mut m = Membership::initial(3);
        // Nonce 22 replaced incarnation 0; nonce 11 asked to replace it too, but
        // its request was decided later: the live incarnation stays.
        assert!(m.reincarnate(10, 4, re(1, 22, 0)));
        let before = m.clone();
        assert!(!m.reincarnate(12, 4, re(1, 11, 0)));
        assert_eq!(m, before);
        assert_eq!(m.latest()[1].nonce, 22);
        // A legacy entry (no `replaces`) applies as before.
        assert!(m.reincarnate(
            20,
            4,
            Reincarnation {
                node: 1,
                nonce: 33,
                replaces: None
            }
        ));
        assert_eq!(m.latest()[1].incarnation, 2);
    }

    #[test]
    fn pruning_keeps_the_epoch_in_effect() {
        let mut m = Membership::initial(3);
        m.reincarnate(10, 4, re(0, 5, 0));
        m.prune_below(20);
        assert!(m.counts(20, 0, 1));
        assert_eq!(m.epochs_from(0).count(), 1);
    }
}
