//! Which acceptor incarnation votes in which instance, and where it listens.
//!
//! The membership is a series of **epochs**: from instance `e` on, these seats
//! (replica indexes) hold these incarnations. Every change is itself decided in
//! the log and takes effect α instances later (α = the leader's in-flight
//! window): if it is decided in instance `s`, the new epoch starts at
//! `s + window + 1`. No leader starts instance `j` before every instance
//! `<= j - window` is decided, so whoever runs instance `j` knows its epoch.
//!
//! Two kinds of change:
//!
//! - A replica that lost its disk comes back as a **new incarnation** of its
//!   seat (`Entry::Reincarnate`). The old incarnation still counts up to
//!   `s + window` but can no longer answer; nothing it ever accepted lies beyond.
//! - An operator's **membership change** (`Entry::Change`): add a seat (a
//!   learner that does not vote), promote a learner to voter, remove a seat, or
//!   move a seat to another address. A new or moved seat is **vacant**: no
//!   process holds it, and the process that will (started with an empty
//!   directory) claims it the way a lost disk comes back, by reincarnation, so
//!   no process ever votes with promises it does not have.
//!
//! Votes carry the incarnation, and a vote for instance `j` counts only if it
//! comes from a voter seat's current incarnation in `j`'s epoch; a decision
//! needs a majority of that epoch's voter seats (vacant ones included: they
//! are members that cannot answer yet).
//!
//! One operator change at a time: a change decided while an earlier change's
//! epoch has not started yet changes nothing (so two epochs in a row differ by
//! at most one voter, and any majority of one meets any majority of the next).
//!
//! This module holds the epochs and the quorums counted on them; `change.rs` the
//! operator's changes and the rules that check and apply them; `legacy.rs` the
//! stored form of logs written before changes existed.

use crate::types::{NodeId, Reincarnation, Slot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod change;
mod legacy;

pub use change::{enough_held, Change, ChangeRefused};
pub use legacy::{LegacyMember, LegacyMembership};

/// The most seats a group can ever have had (seats are never reused: a removed
/// replica's index stays taken).
pub const MAX_SEATS: usize = 64;

/// How a seat takes part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Seat {
    /// Votes: counted in quorums.
    Voter,
    /// Receives decisions, catches up, never votes (until promoted).
    Learner,
    /// Gone for good: neither votes nor receives.
    Removed,
}

impl Seat {
    /// The order seats move in: learner, voter, removed (never back).
    fn rank(self) -> u64 {
        match self {
            Seat::Learner => 0,
            Seat::Voter => 1,
            Seat::Removed => 2,
        }
    }
}

/// One seat's current acceptor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Raised by one at each reincarnation (and each move).
    pub incarnation: u64,
    /// Random number the recovering replica chose, so it recognises its own
    /// reincarnation in the log (0 for the first incarnation and for a vacant seat).
    pub nonce: u64,
    /// Voter, learner or removed.
    pub seat: Seat,
    /// No process holds this incarnation: the seat was just added or moved. A
    /// process claims it by reincarnation; until then it votes in nothing.
    pub vacant: bool,
    /// Where the seat's process listens; `None`: where the group's replicas
    /// were told at their first start (`--peers`).
    pub addr: Option<String>,
}

impl Member {
    fn founder() -> Self {
        Member {
            incarnation: 0,
            nonce: 0,
            seat: Seat::Voter,
            vacant: false,
            addr: None,
        }
    }

    /// True if this member's votes count (at `incarnation`).
    pub fn votes_as(&self, incarnation: u64) -> bool {
        self.seat == Seat::Voter && !self.vacant && self.incarnation == incarnation
    }

    /// True if the leader sends this seat messages: every seat not removed.
    pub fn listens(&self) -> bool {
        self.seat != Seat::Removed
    }
}

/// Membership epochs: from which instance on which incarnations vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    epochs: BTreeMap<Slot, Vec<Member>>,
}

/// A strict majority of the voter seats among `members`.
pub fn majority(members: &[Member]) -> usize {
    members.iter().filter(|m| m.seat == Seat::Voter).count() / 2 + 1
}

impl Membership {
    /// Grows with every change and reincarnation, and never falls when two
    /// memberships merge: the newer of two has the higher. Saturates instead of
    /// overflowing: a record read from disk or a peer may hold any incarnation
    /// (found by `diskv-fuzz --target segment_log`: a membership record with an
    /// incarnation of `u64::MAX` made the log's scan panic).
    pub fn version(&self) -> u64 {
        self.latest().iter().fold(0, |sum: u64, m| {
            sum.saturating_add(m.incarnation)
                .saturating_add(m.seat.rank())
                .saturating_add(1)
        })
    }

    /// `peers` voters at their first incarnation, from instance 0.
    pub fn initial(peers: usize) -> Self {
        let mut epochs = BTreeMap::new();
        epochs.insert(0, vec![Member::founder(); peers]);
        Membership { epochs }
    }

    /// The members of `slot`'s epoch, by seat.
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

    /// How many seats the group has had (the newest epoch has them all).
    pub fn seats(&self) -> usize {
        self.latest().len()
    }

    /// True if a vote of `node` at `incarnation` counts in `slot`.
    pub fn counts(&self, slot: Slot, node: NodeId, incarnation: u64) -> bool {
        self.at(slot)
            .get(node)
            .is_some_and(|m| m.votes_as(incarnation))
    }

    /// True if `voters` (seat, incarnation) hold a majority of `slot`'s epoch.
    pub fn quorum_at(&self, slot: Slot, voters: &[(NodeId, u64)]) -> bool {
        is_quorum(self.at(slot), voters)
    }

    /// True if `voters` hold a majority of every epoch covering an instance at
    /// or after `slot`.
    pub fn quorum_from(&self, slot: Slot, voters: &[(NodeId, u64)]) -> bool {
        self.epochs_from(slot).all(|ms| is_quorum(ms, voters))
    }

    /// True if `node` is a voter of the newest epoch (whoever holds it).
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.latest()
            .get(node)
            .is_some_and(|m| m.seat == Seat::Voter)
    }

    /// True if `node` was removed for good (in the newest epoch).
    pub fn is_removed(&self, node: NodeId) -> bool {
        self.latest()
            .get(node)
            .is_some_and(|m| m.seat == Seat::Removed)
    }

    /// The seats messages go to for instances at or after `slot`: every seat
    /// that is not removed in some epoch from there on (a seat whose removal is
    /// not in force yet still votes).
    pub fn audience_from(&self, slot: Slot) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.seats()).filter(move |&n| {
            self.epochs_from(slot)
                .any(|ms| ms.get(n).is_some_and(Member::listens))
        })
    }

    /// The address of `node`'s newest incarnation, if it was given one by a
    /// change (else the one the replicas were started with).
    pub fn addr(&self, node: NodeId) -> Option<&str> {
        self.latest().get(node).and_then(|m| m.addr.as_deref())
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
    /// applied (same nonce), names no seat or a removed one, or replaces an
    /// incarnation that is no longer the newest (a stale request). A vacant
    /// seat is claimed this way by the process that will hold it.
    pub fn reincarnate(&mut self, slot: Slot, window: u64, r: Reincarnation) -> bool {
        let Reincarnation {
            node,
            nonce,
            replaces,
        } = r;
        let mut members = self.latest().to_vec();
        if node >= members.len()
            || self.incarnation_of(node, nonce).is_some()
            || members[node].seat == Seat::Removed
        {
            return false;
        }
        if replaces.is_some_and(|k| k != members[node].incarnation) {
            return false;
        }
        // Saturating: a decided entry read from disk or a peer may name any slot
        // and replace any incarnation.
        let m = &mut members[node];
        m.incarnation = m.incarnation.saturating_add(1);
        m.nonce = nonce;
        m.vacant = false;
        self.push_epoch(slot, window, members);
        true
    }

    fn push_epoch(&mut self, slot: Slot, window: u64, members: Vec<Member>) {
        self.epochs
            .insert(slot.saturating_add(window).saturating_add(1), members);
    }

    /// The first instance of the newest epoch (0 while nothing changed).
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
    /// A replica restored past a change without its membership record applies
    /// later changes on a view that lacks it: its epoch at that start slot
    /// names an older state of some seat than the group's. Seats only move
    /// forward from epoch to epoch (incarnations grow, a learner becomes a
    /// voter, anything becomes removed; seats are only added), so where two
    /// epochs start at the same slot each seat takes the more advanced state,
    /// and each epoch holds at least the seats and states of the epoch before.
    pub fn merge(&mut self, other: &Membership) {
        for (&from, ms) in &other.epochs {
            let mine = self.epochs.entry(from).or_insert_with(|| ms.clone());
            advance(mine, ms);
        }
        let mut prev: Option<Vec<Member>> = None;
        for ms in self.epochs.values_mut() {
            if let Some(prev) = &prev {
                advance(ms, prev);
            }
            prev = Some(ms.clone());
        }
    }
}

/// True if `voters` hold a majority of `members`' voter seats.
fn is_quorum(members: &[Member], voters: &[(NodeId, u64)]) -> bool {
    let mut counted = 0u64;
    for &(n, k) in voters {
        if n < 64 && members.get(n).is_some_and(|m| m.votes_as(k)) {
            counted |= 1 << n;
        }
    }
    counted.count_ones() as usize >= majority(members)
}

/// Moves every seat of `mine` to at least its state in `other`, and adds the
/// seats `other` has beyond `mine`.
fn advance(mine: &mut Vec<Member>, other: &[Member]) {
    for (m, o) in mine.iter_mut().zip(other) {
        if o.incarnation > m.incarnation {
            *m = o.clone();
        } else if o.incarnation == m.incarnation && o.seat.rank() > m.seat.rank() {
            m.seat = o.seat;
        }
    }
    if other.len() > mine.len() {
        mine.extend_from_slice(&other[mine.len()..]);
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
