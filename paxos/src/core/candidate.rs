//! Phase 1: a candidate campaigns over the whole log suffix, merges the promises'
//! reports, and takes office as the stable leader once a quorum of every epoch
//! promised.

use super::bounds::SLOT_REACH;
use super::leader::Leader;
use super::{Event, Replica, Role};
use crate::message::{Message, PromisedSlot};
use crate::record::Record;
use crate::types::{Ballot, Entry, NodeId, Slot};
use std::collections::BTreeMap;

/// A set of replicas, one bit each.
pub(super) type Votes = u64;

/// A replica running phase 1.
#[derive(Debug)]
pub(super) struct Candidate {
    pub(super) ballot: Ballot,
    from_slot: Slot,
    promises: Votes,
    /// Who promised, at which incarnation.
    promisers: Vec<(NodeId, u64)>,
    /// Per instance, every promiser's report, as sent: which of them count is
    /// decided only when the instance is proposed, on the membership known
    /// then (`Reports::pick`). Filtering them as they arrived, on the view of
    /// that moment, lost a chosen value that a promiser counted for later
    /// (attack finding: a learner promoted while the candidate was behind).
    reports: BTreeMap<Slot, Reports>,
    floor: Slot,
    started: u64,
    last_sent: u64,
    /// Prepares sent again so far; each doubles the wait before the next, since
    /// every one makes the acceptors send their whole report again.
    resends: u32,
}

/// What the promisers reported for one instance.
#[derive(Debug, Default)]
pub(super) struct Reports(Vec<Report>);

/// One promiser's report of one instance.
#[derive(Debug)]
struct Report {
    from: NodeId,
    incarnation: u64,
    ballot: Ballot,
    entry: Entry,
    decided: bool,
}

impl Reports {
    /// The value known decided, if a promiser said so (a fact, whoever says it).
    fn decided(&self) -> Option<&Entry> {
        self.0.iter().find(|r| r.decided).map(|r| &r.entry)
    }

    /// The value to propose in `slot`: the highest-ballot report among those
    /// whose acceptor votes in `slot` by `counts` (the membership known now);
    /// a no-op if none of them accepted anything.
    pub(super) fn pick(&self, slot: Slot, counts: impl Fn(Slot, NodeId, u64) -> bool) -> Entry {
        self.0
            .iter()
            .filter(|r| counts(slot, r.from, r.incarnation))
            .max_by_key(|r| r.ballot)
            .map_or(Entry::Noop, |r| r.entry.clone())
    }
}

/// Back-off caps, as powers of two: Prepare resends wait at most 16 ×
/// `retransmit_ticks`; a candidate that lost campaigns in a row waits at most
/// 8 × its drawn election timeout before the next.
const MAX_PREPARE_BACKOFF: u32 = 4;
pub(super) const MAX_CAMPAIGN_BACKOFF: u32 = 3;

impl Candidate {
    /// True if a replica other than `me` promised this candidate's ballot.
    pub(super) fn holds_promise_of_another(&self, me: NodeId) -> bool {
        self.promises & !(1 << me) != 0
    }
}

impl Replica {
    /// Starts phase 1 with a ballot above every round seen.
    pub(super) fn campaign(&mut self) {
        self.pre_vote = None;
        self.note_round(self.promised.round);
        let ballot = Ballot::of(
            self.max_round.saturating_add(1),
            self.incarnation.unwrap_or(0),
            self.cfg.id,
        );
        self.note_round(ballot.round);
        tracing::debug!(node = self.cfg.id, %ballot, from_slot = self.commit, "starting election");
        if self.leader.is_some() {
            self.leader = None;
            self.ready.events.push(Event::LeaderChanged {
                leader: None,
                ballot,
            });
        }
        self.role = Role::Candidate(Candidate {
            ballot,
            from_slot: self.commit,
            promises: 0,
            promisers: Vec::new(),
            reports: BTreeMap::new(),
            floor: 0,
            started: self.now,
            last_sent: self.now,
            resends: 0,
        });
        self.reset_election_timer();
        self.broadcast(
            Message::Prepare {
                ballot,
                from_slot: self.commit,
            },
            true,
        );
    }

    pub(super) fn candidate_tick(&mut self) {
        let Role::Candidate(c) = &mut self.role else {
            return;
        };
        if self.now - c.started >= self.election_timeout as u64 {
            // Lost (or still waiting for promises too large to arrive in time,
            // issue #18 B3): the next campaign gets a longer timeout.
            self.lost_campaigns = self.lost_campaigns.saturating_add(1);
            self.campaign();
            return;
        }
        let wait = u64::from(self.cfg.retransmit_ticks) << c.resends.min(MAX_PREPARE_BACKOFF);
        if self.now - c.last_sent >= wait {
            c.last_sent = self.now;
            c.resends += 1;
            let (ballot, from_slot, promises) = (c.ballot, c.from_slot, c.promises);
            let audience: Vec<NodeId> = self.membership.audience_from(self.commit).collect();
            for to in audience {
                if promises & (1 << to) == 0 {
                    self.send(to, Message::Prepare { ballot, from_slot });
                }
            }
        }
    }

    pub(super) fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        accepted: Vec<PromisedSlot>,
        floor: Slot,
        incarnation: u64,
    ) {
        if !matches!(&self.role, Role::Candidate(c) if c.ballot == ballot && c.promises & (1 << from) == 0)
        {
            return;
        }
        if let Some(p) = accepted
            .iter()
            .find(|p| p.slot > self.commit.saturating_add(SLOT_REACH))
        {
            // Dropping a whole message is always safe; dropping part of what a
            // promise reports is not (`bounds.rs`).
            tracing::warn!(
                node = self.cfg.id,
                from,
                slot = p.slot,
                commit = self.commit,
                "ignored a promise reporting an instance far beyond the decided log"
            );
            return;
        }
        let Role::Candidate(c) = &mut self.role else {
            return;
        };
        c.promises |= 1 << from;
        c.promisers.push((from, incarnation));
        c.floor = c.floor.max(floor);
        for p in accepted {
            c.reports.entry(p.slot).or_default().0.push(Report {
                from,
                incarnation,
                ballot: p.ballot,
                entry: p.entry,
                decided: p.decided,
            });
        }
        let (from_slot, promisers) = (c.from_slot, c.promisers.clone());
        if self.promise_quorum_from(from_slot, &promisers) {
            self.become_leader();
        }
    }

    /// True if `promisers` hold a majority of every known epoch from `from_slot` on.
    fn promise_quorum_from(&self, from_slot: Slot, promisers: &[(NodeId, u64)]) -> bool {
        if self.cfg.unsafe_rejoin {
            return promisers.len() >= self.majority();
        }
        self.membership.quorum_from(from_slot, promisers)
    }

    fn become_leader(&mut self) {
        let Role::Candidate(c) = std::mem::replace(&mut self.role, Role::Follower) else {
            return;
        };
        let ballot = c.ballot;
        if c.floor > self.commit {
            // The group forgot instances this replica never applied: it cannot
            // lead without their state (it could not even answer a read). Ask the
            // application for a snapshot and let a replica that has the state
            // lead; the one that reported this floor does. (Installing the floor
            // here, before the application had the state, left a log that had
            // forgotten what the state machine never saw.)
            tracing::info!(
                node = self.cfg.id,
                %ballot,
                floor = c.floor,
                commit = self.commit,
                "elected but behind the group's forgotten instances; asking for a snapshot"
            );
            self.ready
                .events
                .push(Event::SnapshotNeeded { floor: c.floor });
            self.reset_election_timer();
            return;
        }
        let start = self.commit.max(c.from_slot);
        let end = c
            .reports
            .keys()
            .next_back()
            .map_or(0, |s| s.saturating_add(1))
            .max(self.commit);
        // Decisions first: they may change the membership of later instances,
        // which decides whose reports count there.
        for (&slot, reports) in c.reports.range(start..end) {
            if let Some(entry) = reports.decided() {
                self.learn(slot, entry.clone(), false);
            }
        }
        let mut reports = c.reports;
        let to_propose: Vec<Slot> = (start..end)
            .filter(|s| !self.decided.contains_key(s))
            .collect();
        let next = end.max(self.commit);
        if !self.promise_quorum_from(c.from_slot, &c.promisers) {
            // The decisions just learned from the reports changed the
            // membership of instances this leader would open: its promises
            // are no majority there, so the reports may miss a chosen value.
            // Proposing anything could overwrite it (attack finding: a
            // replica cut off before two removals, promised by the removed
            // ones). A new election, under the membership it knows now.
            tracing::info!(
                node = self.cfg.id,
                %ballot,
                "elected on a membership the group has left; campaigning again"
            );
            self.reset_election_timer();
            return;
        }
        if self.promised < ballot {
            // Elected on the others' promises while its own Prepare was not
            // taken (ignored within the promise guard, or dropped by a full
            // inbox): nothing at this ballot is on its disk, so after a crash
            // it would campaign at this very ballot again, and messages of
            // this leadership still in the network would count for that one
            // (lease attack: agreement broken, a stale lease read). The record
            // gates its Accepts and Heartbeats (rule 1) until it is durable.
            self.promised = ballot;
            self.persist(Record::Promised(ballot));
        }
        tracing::info!(node = self.cfg.id, %ballot, recovered = to_propose.len(), next, "became leader");
        let queue = self.waiting_commands.drain(..).collect();
        let mut leader = Leader::new(ballot, next, queue, c.promisers, self.now, self.commit);
        for (slot, (entry, _)) in std::mem::take(&mut self.waiting_starts) {
            leader.request_slot(slot, entry);
        }
        self.role = Role::Leader(Box::new(leader));
        self.lost_campaigns = 0;
        self.leader = Some((self.cfg.id, ballot));
        self.ready.events.push(Event::LeaderChanged {
            leader: Some(self.cfg.id),
            ballot,
        });
        // Instances beyond the window may lie in an epoch this leader does
        // not know yet: they wait until the decisions before them are known
        // (`leader_flush`), then go out, each checked against its epoch and
        // with the reports that count there.
        let limit = self.commit.saturating_add(self.cfg.window);
        for slot in to_propose {
            let slot_reports = reports.remove(&slot).unwrap_or_default();
            if self.decided.contains_key(&slot) {
                continue;
            }
            if slot < limit {
                let entry = slot_reports.pick(slot, |s, n, k| self.vote_counts(s, n, k));
                self.propose_in(slot, entry);
            } else if let Role::Leader(l) = &mut self.role {
                l.recovered.insert(slot, slot_reports);
            }
        }
        self.broadcast_heartbeat();
    }
}
