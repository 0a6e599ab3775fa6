//! The stable leader: its state, and how it leaves office.
//!
//! The leader's jobs live in the files below: opening and deciding instances
//! (`replication.rs`), answering followers' heartbeat acks and catching lagging
//! ones up (`catchup.rs`), and reads: the lease and read-index (`read_index.rs`).
//! It takes office from
//! a candidate (`../candidate.rs`); forwarding to it is in `../forwarding.rs`.

mod catchup;
mod read_index;
mod replication;

use super::{Event, ReadOutcome, Replica, Role};
use crate::membership::{Change, ChangeRefused};
use crate::types::{Ballot, Command, Entry, NodeId, Reincarnation, Slot};
pub use read_index::ReadStats;
use read_index::{Lease, PendingRead};
use std::collections::{BTreeMap, VecDeque};

/// One instance the leader proposed and has not yet seen decided.
#[derive(Debug)]
struct Proposal {
    entry: Entry,
    /// Who accepted, at which incarnation (counted against the instance's epoch).
    acks: Vec<(NodeId, u64)>,
    sent: u64,
}

/// The stable leader's state.
#[derive(Debug)]
pub(super) struct Leader {
    pub(super) ballot: Ballot,
    next: Slot,
    /// Reads are served once every instance below this (those recovered from the
    /// previous leaders) is decided.
    ready_from: Slot,
    inflight: BTreeMap<Slot, Proposal>,
    queue: VecDeque<Command>,
    starts: BTreeMap<Slot, Entry>,
    last_heard: Vec<u64>,
    /// Per replica, the incarnation its last heartbeat ack named (`None`: it
    /// recovers a lost disk, or has not answered yet).
    heard_incarnation: Vec<Option<u64>>,
    peer_commit: Vec<Slot>,
    acked_round: Vec<u64>,
    /// The last heartbeat round sent: every heartbeat broadcast is a new round.
    round: u64,
    last_heartbeat: u64,
    /// The leader lease, from the rounds a majority acknowledged.
    lease: Lease,
    commit_sent: Slot,
    reads: Vec<PendingRead>,
    /// The phase-1 quorum; checked again against the membership of each instance
    /// decided (an epoch learned after the election may not count some of them).
    promisers: Vec<(NodeId, u64)>,
    /// Reincarnations asked for and not yet proposed.
    reincarnations: VecDeque<Reincarnation>,
    /// An operator's membership change asked for and not yet proposed.
    change: Option<Change>,
    /// Values recovered in phase 1 for instances beyond the window at the
    /// election, proposed once the window reaches them (their epoch is known
    /// only then).
    pub(super) recovered: BTreeMap<Slot, super::candidate::Reports>,
    /// Per replica, the last large catch-up sent and still unacknowledged: the
    /// instance it reaches (exclusive) and the tick after which it may be sent
    /// again ([`super::CoreConfig::resend_ticks`]); `(0, 0)` if none. A follower's
    /// acks come every heartbeat; answering each one with a new copy of the same
    /// entries (up to `catchup_bytes`) while the first is in flight swamped lagging
    /// followers and the leader (see docs/BENCHMARKS.md, "Where the time goes").
    catchup: Vec<(Slot, u64)>,
}

impl Leader {
    /// The state of a leader just elected at `ballot` at tick `now`: it opens
    /// instances from `next` on (serving reads once every instance below it is
    /// decided), with `queue` waiting and `promisers` its phase-1 quorum.
    pub(super) fn new(
        ballot: Ballot,
        next: Slot,
        queue: VecDeque<Command>,
        promisers: Vec<(NodeId, u64)>,
        now: u64,
        commit: Slot,
    ) -> Self {
        let peers = crate::membership::MAX_SEATS;
        Leader {
            ballot,
            next,
            ready_from: next,
            inflight: BTreeMap::new(),
            queue,
            starts: BTreeMap::new(),
            last_heard: vec![now; peers],
            heard_incarnation: vec![None; peers],
            peer_commit: vec![0; peers],
            acked_round: vec![0; peers],
            round: 0,
            last_heartbeat: now,
            lease: Lease::default(),
            commit_sent: commit,
            reads: Vec::new(),
            promisers,
            reincarnations: VecDeque::new(),
            change: None,
            recovered: BTreeMap::new(),
            catchup: vec![(0, 0); peers],
        }
    }

    pub(super) fn enqueue(&mut self, cmd: Command) {
        self.queue.push_back(cmd);
    }

    pub(super) fn request_slot(&mut self, slot: Slot, entry: Entry) {
        if slot >= self.next {
            self.starts.entry(slot).or_insert(entry);
        }
    }

    /// True if `majority` of `voters` (this replica counts itself as heard
    /// every tick) were heard within `within` ticks.
    pub(super) fn has_live_majority(
        &self,
        now: u64,
        within: u64,
        voters: &[NodeId],
        majority: usize,
    ) -> bool {
        voters
            .iter()
            .filter(|&&n| {
                self.last_heard
                    .get(n)
                    .is_some_and(|&t| now.saturating_sub(t) <= within)
            })
            .count()
            >= majority
    }

    /// Flow control: true if a new instance for client commands may open, that is
    /// nothing is in flight or the proposals not yet known decided hold fewer than
    /// `max_inflight_bytes` (so even a budget of 0 lets one instance through).
    fn may_open(&self, max_inflight_bytes: usize) -> bool {
        self.inflight.is_empty()
            || self
                .inflight
                .values()
                .map(|p| p.entry.size_hint())
                .sum::<usize>()
                < max_inflight_bytes
    }

    /// True if the leader has something to propose. `fill_until` is the newest
    /// membership epoch's first instance: after a reincarnation decided in `s`,
    /// instances up to `s + window` still need the old membership, so the leader
    /// closes them with no-ops at once, traffic or not — whether it decided the
    /// reincarnation itself or was elected while that window was still open.
    pub(super) fn has_work(&self, fill_until: Slot, max_inflight_bytes: usize) -> bool {
        !self.reincarnations.is_empty()
            || self.change.is_some()
            || self.next < fill_until
            || (!self.queue.is_empty() && self.may_open(max_inflight_bytes))
            || !self.starts.is_empty()
            || self.reads.iter().any(|r| r.round.is_none())
    }
}

/// What became of an operator's membership change handed to
/// [`Replica::propose_change`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChangeAnswer {
    /// Proposed; it is in effect once [`Membership::already`] says so.
    ///
    /// [`Membership::already`]: crate::membership::Membership::already
    Proposed,
    /// Already in effect: nothing to do.
    InEffect,
    /// Only the leader proposes changes; ask this one, if known.
    NotLeader(Option<NodeId>),
    /// It cannot be made as things stand.
    Refused(ChangeRefused),
}

impl Replica {
    /// An operator asks for a membership change. The leader checks it against
    /// the membership it knows and proposes it; only one change is under way
    /// at a time (see `crate::membership`): a second one is refused until the
    /// first is in force.
    pub fn propose_change(&mut self, change: Change) -> ChangeAnswer {
        if !self.is_leader() {
            return ChangeAnswer::NotLeader(self.leader());
        }
        if self.membership.already(&change) {
            return ChangeAnswer::InEffect;
        }
        if let Err(refused) = self.membership.check(&change, self.commit) {
            return ChangeAnswer::Refused(refused);
        }
        if let Err(refused) = self.check_live_after(&change) {
            return ChangeAnswer::Refused(refused);
        }
        if self.change_under_way() {
            let from = self.commit.saturating_add(self.cfg.window);
            return ChangeAnswer::Refused(ChangeRefused::Pending { from });
        }
        tracing::info!(node = self.cfg.id, %change, "proposing a membership change");
        if let Role::Leader(l) = &mut self.role {
            l.change = Some(change);
        }
        ChangeAnswer::Proposed
    }

    /// True if a membership change is under way as far as this replica knows:
    /// decided but not yet in force, decided above a gap, or (at the leader)
    /// asked for, or proposed and not yet decided.
    pub fn change_under_way(&self) -> bool {
        let decided = self.membership.latest_start() > self.commit
            || self
                .decided
                .range(self.commit..)
                .any(|(_, e)| e.change().is_some());
        decided
            || matches!(&self.role, Role::Leader(l) if l.change.is_some()
                || l.inflight.values().any(|p| p.entry.change().is_some())
                || l.starts.values().any(|e| e.change().is_some()))
    }

    /// Refuses a change after which the voters this leader hears from, at the
    /// incarnation the membership names, would be fewer than a majority (as
    /// etcd's strict reconfiguration check does): a group that removes or
    /// moves a replica while another is down or recovering a lost disk could
    /// stall for good, since the instances of the new epoch would need votes
    /// nobody can give.
    fn check_live_after(&self, change: &Change) -> Result<(), ChangeRefused> {
        let (Role::Leader(l), Some(after)) = (&self.role, self.membership.after(change)) else {
            return Ok(());
        };
        crate::membership::enough_held(&after, |n, m| {
            self.heard_lately(l, n).is_some_and(|k| m.votes_as(k))
        })
    }

    /// The incarnation of seat `n` this leader heard from within an election
    /// timeout (its own, for itself): what it counts as running.
    fn heard_lately(&self, l: &Leader, n: NodeId) -> Option<u64> {
        if n == self.cfg.id {
            return self.incarnation;
        }
        let within = u64::from(self.cfg.election_ticks);
        let fresh = self.now.saturating_sub(*l.last_heard.get(n)?) <= within;
        fresh
            .then(|| l.heard_incarnation.get(n).copied().flatten())
            .flatten()
    }

    /// At the leader: true if it heard from seat `node`'s current incarnation
    /// within an election timeout — the replicas its live-majority check
    /// counts as running (itself always). `None` when not leading or no such
    /// seat. For operators (`diskv admin replica list`).
    pub fn hears(&self, node: NodeId) -> Option<bool> {
        let Role::Leader(l) = &self.role else {
            return None;
        };
        let member = self.membership.latest().get(node)?;
        let heard = self.heard_lately(l, node);
        Some(!member.vacant && heard == Some(member.incarnation))
    }

    /// A replica that lost its disk asks to be reincarnated.
    /// It names the incarnation it replaces as it last saw it; a request that
    /// names an older one is stale (delayed in the network, or the requester has
    /// not caught up yet) and is left out: it would change nothing when applied.
    ///
    /// A request that is decided already, or that names an incarnation older
    /// than the newest, means the requester's membership is behind (it lost the
    /// record of its reincarnation, or a snapshot's membership record with a
    /// full disk): any replica that knows more sends it its membership, so it
    /// learns its incarnation or asks again naming the newest one.
    pub(super) fn on_reincarnate(&mut self, from: NodeId, nonce: u64, replaces: u64) {
        let decided = self.membership.incarnation_of(from, nonce).is_some();
        let newest = self.membership.latest().get(from).map(|m| m.incarnation);
        if decided || newest != Some(replaces) {
            if newest.is_some_and(|k| k > replaces) || decided {
                self.send_membership(from);
            }
            return;
        }
        // Any reincarnation of `from` not yet applied here (queued, in flight, or
        // decided above a gap) may change its newest incarnation before this
        // request's instance: proposed behind it, this request would be doomed
        // (stale when applied), and a replica applying it on a stale membership
        // (restored past the first one without its membership record) would take
        // an incarnation the group gave to another nonce. It asks again.
        let of_from = |e: &Entry| e.reincarnation().is_some_and(|r| r.node == from);
        if self.decided.range(self.commit..).any(|(_, e)| of_from(e)) {
            return;
        }
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.reincarnations.iter().any(|r| r.node == from)
            || l.inflight.values().any(|p| of_from(&p.entry))
        {
            return;
        }
        tracing::info!(
            node = self.cfg.id,
            replica = from,
            nonce,
            "proposing the reincarnation of a replica that lost its disk"
        );
        l.reincarnations.push_back(Reincarnation {
            node: from,
            nonce,
            replaces: Some(replaces),
        });
    }

    pub(super) fn on_reject(&mut self, ballot: Ballot, promised: Ballot) {
        self.note_round(promised.round);
        let own = match &self.role {
            Role::Leader(l) => l.ballot,
            Role::Candidate(c) => c.ballot,
            Role::Follower => return,
        };
        if own == ballot && promised > own {
            tracing::debug!(node = self.cfg.id, %own, %promised, "ballot rejected; stepping down");
            self.step_down();
            self.reset_election_timer();
        }
    }

    /// Leaves the leader or candidate role; waiting work is kept for the next leader.
    pub(super) fn step_down(&mut self) {
        let role = std::mem::replace(&mut self.role, Role::Follower);
        if let Role::Leader(l) = role {
            let leader = None;
            for r in l.reads {
                self.ready
                    .reads
                    .push(ReadOutcome::NotLeader { id: r.id, leader });
            }
            self.waiting_commands.extend(l.queue);
            for (slot, entry) in l.starts {
                self.waiting_starts.entry(slot).or_insert((entry, None));
            }
            for (slot, p) in l.inflight {
                // Re-ask for instances this replica itself wanted; a new leader
                // will recover the accepted ones in any case.
                if !p.entry.commands().is_empty() {
                    self.waiting_starts.entry(slot).or_insert((p.entry, None));
                }
            }
        }
        if self.leader.map(|(n, _)| n) == Some(self.cfg.id) {
            self.leader = None;
            self.ready.events.push(Event::LeaderChanged {
                leader: None,
                ballot: self.promised,
            });
        }
    }
}
