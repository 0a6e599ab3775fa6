//! Invariant (a): at most one value is ever chosen per instance, across all
//! replicas and incarnations.
//!
//! The checker sees every `Accept` a leader sends (the one value of its ballot
//! in that instance) and every `Accepted` and `Promise` an acceptor sends (a vote
//! leaves the process only once its record is durable, so sending *is* voting).
//! A value is chosen in an instance once the votes of one ballot form a majority
//! of the instance's membership epoch — the true epoch, built from the chosen
//! `Reincarnate` entries, not any replica's view of it. It also knows which disk
//! generation of each replica owns which acceptor incarnation, so a process that
//! votes under an incarnation that is not its own (a replica that lost its disk
//! answering as its lost predecessor) is caught at once, whether or not anyone
//! counts that vote. Every value a replica reports decided must be the chosen one.

use paxos::core::Membership;
use paxos::{Ballot, Entry, NodeId, Reincarnation, Slot};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The global record of proposals and votes of one group.
pub struct Votes {
    peers: usize,
    window: u64,
    /// The value of each (instance, ballot): a leader proposes one per ballot.
    proposals: HashMap<(Slot, Ballot), Entry>,
    /// Who voted for each (instance, ballot), under which incarnation.
    votes: BTreeMap<(Slot, Ballot), Vec<(NodeId, u64)>>,
    /// The chosen value of each instance.
    chosen: BTreeMap<Slot, Entry>,
    /// Which disk generation owns incarnation `k` of replica `n`.
    owners: HashMap<(NodeId, u64), u32>,
    /// Which disk generation of replica `n` asked to be reincarnated with a nonce.
    nonces: HashMap<(NodeId, u64), u32>,
    /// The true membership, from the chosen reincarnations.
    membership: Membership,
    /// Disk generations of each replica that ever sent an `Accepted`.
    voted: HashSet<(NodeId, u32)>,
}

impl Votes {
    /// The record of a group of `peers` replicas with in-flight window `window`.
    pub fn new(peers: usize, window: u64) -> Self {
        Votes {
            peers,
            window,
            proposals: HashMap::new(),
            votes: BTreeMap::new(),
            chosen: BTreeMap::new(),
            owners: (0..peers).map(|n| ((n, 0), 0)).collect(),
            nonces: HashMap::new(),
            membership: Membership::initial(peers),
            voted: HashSet::new(),
        }
    }

    /// Disk generation `generation` of replica `node` recovers with `nonce`.
    pub fn recovering(&mut self, node: NodeId, generation: u32, nonce: u64) {
        self.nonces.insert((node, nonce), generation);
    }

    /// Disk generation `generation` of `node` starts fresh, as incarnation 0: its
    /// peers all said the group has no history. That is true only if no earlier
    /// generation of it ever voted; then incarnation 0 is the new disk's.
    pub fn fresh_start(&mut self, node: NodeId, generation: u32) -> Result<(), String> {
        if let Some(&(_, g)) = self
            .voted
            .iter()
            .find(|&&(n, g)| n == node && g < generation)
        {
            return Err(format!(
                "replica {node} (disk generation {generation}) started fresh although its \
                 disk generation {g} had voted: the group had a history the probe missed"
            ));
        }
        self.owners.insert((node, 0), generation);
        Ok(())
    }

    /// The value chosen in `slot`, if any.
    pub fn chosen(&self, slot: Slot) -> Option<&Entry> {
        self.chosen.get(&slot)
    }

    /// Instances chosen so far.
    pub fn chosen_count(&self) -> usize {
        self.chosen.len()
    }

    /// A leader sent `Accept(ballot, slot, entry)`.
    pub fn proposed(&mut self, slot: Slot, ballot: Ballot, entry: &Entry) -> Result<(), String> {
        match self.proposals.get(&(slot, ballot)) {
            Some(e) if e != entry => Err(format!(
                "two values proposed in instance {slot} at ballot {ballot}: {e:?} and {entry:?}"
            )),
            Some(_) => Ok(()),
            None => {
                self.proposals.insert((slot, ballot), entry.clone());
                Ok(())
            }
        }
    }

    /// Checks that disk generation `generation` of `node` may speak as
    /// incarnation `incarnation`.
    fn owns(&self, node: NodeId, generation: u32, incarnation: u64) -> Result<(), String> {
        match self.owners.get(&(node, incarnation)) {
            Some(&g) if g == generation => Ok(()),
            Some(&g) => Err(format!(
                "replica {node} (disk generation {generation}) voted as incarnation \
                 {incarnation}, which belongs to its disk generation {g}"
            )),
            None => Err(format!(
                "replica {node} (disk generation {generation}) voted as incarnation \
                 {incarnation}, which no chosen reincarnation created"
            )),
        }
    }

    /// Acceptor `node` (disk generation `generation`) sent a promise as
    /// `incarnation`.
    pub fn promised(
        &mut self,
        node: NodeId,
        generation: u32,
        incarnation: u64,
    ) -> Result<(), String> {
        self.owns(node, generation, incarnation)
    }

    /// Acceptor `node` (disk generation `generation`) sent `Accepted(ballot, slot)`
    /// as `incarnation`.
    pub fn accepted(
        &mut self,
        node: NodeId,
        generation: u32,
        slot: Slot,
        ballot: Ballot,
        incarnation: u64,
    ) -> Result<(), String> {
        self.owns(node, generation, incarnation)?;
        self.voted.insert((node, generation));
        let voters = self.votes.entry((slot, ballot)).or_default();
        if !voters.contains(&(node, incarnation)) {
            voters.push((node, incarnation));
        }
        self.evaluate(slot, ballot)
    }

    /// Chooses the value of (slot, ballot) if its votes form a majority of the
    /// slot's true epoch.
    fn evaluate(&mut self, slot: Slot, ballot: Ballot) -> Result<(), String> {
        let Some(voters) = self.votes.get(&(slot, ballot)) else {
            return Ok(());
        };
        let counted = voters
            .iter()
            .filter(|&&(n, k)| self.membership.counts(slot, n, k))
            .count();
        if counted < self.peers / 2 + 1 {
            return Ok(());
        }
        let Some(entry) = self.proposals.get(&(slot, ballot)).cloned() else {
            return Err(format!(
                "a majority accepted instance {slot} at ballot {ballot}, which no leader proposed"
            ));
        };
        self.choose(slot, ballot, entry)
    }

    fn choose(&mut self, slot: Slot, ballot: Ballot, entry: Entry) -> Result<(), String> {
        match self.chosen.get(&slot) {
            Some(e) if *e != entry => {
                return Err(format!(
                    "instance {slot} chosen twice: {e:?}, and {entry:?} at ballot {ballot} by {:?}",
                    self.votes.get(&(slot, ballot))
                ))
            }
            Some(_) => return Ok(()),
            None => {}
        }
        self.chosen.insert(slot, entry.clone());
        if entry.reincarnation().is_some() {
            self.rebuild_membership();
            // Votes beyond the new epoch's start may count differently now.
            let from = slot + self.window + 1;
            let keys: Vec<(Slot, Ballot)> = self
                .votes
                .range((from, Ballot::ZERO)..)
                .map(|(k, _)| *k)
                .collect();
            for (s, b) in keys {
                self.evaluate(s, b)?;
            }
        }
        Ok(())
    }

    /// The true membership: every chosen reincarnation, in instance order.
    fn rebuild_membership(&mut self) {
        let mut m = Membership::initial(self.peers);
        for (&slot, entry) in &self.chosen {
            if let Some(r) = entry.reincarnation() {
                let Reincarnation { node, nonce, .. } = r;
                if m.reincarnate(slot, self.window, r) {
                    if let (Some((k, _)), Some(&g)) = (
                        m.incarnation_of(node, nonce),
                        self.nonces.get(&(node, nonce)),
                    ) {
                        self.owners.insert((node, k), g);
                    }
                }
            }
        }
        self.membership = m;
    }

    /// Replica `node` reports instance `slot` decided with `entry`.
    pub fn decided(&self, node: NodeId, slot: Slot, entry: &Entry) -> Result<(), String> {
        match self.chosen.get(&slot) {
            Some(e) if e == entry => Ok(()),
            Some(e) => Err(format!(
                "replica {node} decided instance {slot} as {entry:?}, but {e:?} was chosen"
            )),
            None => Err(format!(
                "replica {node} decided instance {slot} as {entry:?}, which no majority accepted"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Entry {
        Entry::single(s.as_bytes().to_vec())
    }

    #[test]
    fn a_majority_chooses_and_a_second_value_is_caught() {
        let mut votes = Votes::new(3, 4);
        let (b1, b2) = (Ballot::new(1, 0), Ballot::new(2, 1));
        votes.proposed(0, b1, &v("x")).unwrap();
        votes.accepted(0, 0, 0, b1, 0).unwrap();
        assert!(
            votes.decided(0, 0, &v("x")).is_err(),
            "one vote chooses nothing"
        );
        votes.accepted(1, 0, 0, b1, 0).unwrap();
        votes.decided(0, 0, &v("x")).unwrap();
        votes.proposed(0, b2, &v("y")).unwrap();
        votes.accepted(1, 0, 0, b2, 0).unwrap();
        let err = votes.accepted(2, 0, 0, b2, 0).unwrap_err();
        assert!(err.contains("chosen twice"), "{err}");
    }

    #[test]
    fn a_new_disk_voting_as_its_lost_incarnation_is_caught() {
        let mut votes = Votes::new(3, 4);
        let b = Ballot::new(1, 0);
        votes.proposed(0, b, &v("x")).unwrap();
        // Replica 2's second disk (generation 1) answers as incarnation 0.
        let err = votes.accepted(2, 1, 0, b, 0).unwrap_err();
        assert!(err.contains("belongs to its disk generation 0"), "{err}");
    }

    #[test]
    fn a_fresh_start_is_legitimate_only_if_the_lost_disk_never_voted() {
        let mut votes = Votes::new(3, 4);
        let b = Ballot::new(1, 0);
        // Replica 2 lost its disk before anything happened: its new disk is
        // incarnation 0.
        votes.fresh_start(2, 1).unwrap();
        votes.proposed(0, b, &v("x")).unwrap();
        votes.accepted(2, 1, 0, b, 0).unwrap();
        // Its next disk may not start fresh: the previous one voted.
        let err = votes.fresh_start(2, 2).unwrap_err();
        assert!(err.contains("had voted"), "{err}");
    }

    #[test]
    fn a_reincarnation_hands_the_index_to_the_new_disk_after_the_window() {
        let mut votes = Votes::new(3, 2);
        let b = Ballot::new(1, 0);
        votes.recovering(2, 1, 77);
        votes
            .proposed(
                5,
                b,
                &Entry::Reincarnate {
                    node: 2,
                    nonce: 77,
                    replaces: 0,
                },
            )
            .unwrap();
        votes.accepted(0, 0, 5, b, 0).unwrap();
        votes.accepted(1, 0, 5, b, 0).unwrap();
        // Incarnation 1 of replica 2 is generation 1's from instance 8 on.
        votes.proposed(8, b, &v("z")).unwrap();
        votes.accepted(2, 1, 8, b, 1).unwrap();
        assert!(votes.decided(0, 8, &v("z")).is_err());
        votes.accepted(0, 0, 8, b, 0).unwrap();
        votes.decided(0, 8, &v("z")).unwrap();
        // The new disk may not speak as incarnation 0 either.
        assert!(votes.accepted(2, 1, 9, b, 0).is_err());
    }
}
