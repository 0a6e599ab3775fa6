//! The proposer: elections (phase 1 over the whole log suffix), the stable leader
//! (batching, pipelining, retransmission, catch-up, read-index), and forwarding.

use super::bounds::{SLOT_REACH, START_REACH};
use super::{Event, ReadOutcome, Replica, Role, COMMAND_OVERHEAD};
use crate::message::{Message, PromisedSlot};
use crate::types::{Ballot, Command, Entry, NodeId, Reincarnation, Slot};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// Per instance: the highest-ballot value reported, and whether it is known chosen.
    merged: BTreeMap<Slot, (Ballot, Entry, bool)>,
    floor: Slot,
    started: u64,
    last_sent: u64,
    /// Prepares sent again so far; each doubles the wait before the next, since
    /// every one makes the acceptors send their whole report again.
    resends: u32,
}

/// Back-off caps, as powers of two: Prepare resends wait at most 16 ×
/// `retransmit_ticks`; a candidate that lost campaigns in a row waits at most
/// 8 × its drawn election timeout before the next.
const MAX_PREPARE_BACKOFF: u32 = 4;
pub(super) const MAX_CAMPAIGN_BACKOFF: u32 = 3;

/// One instance the leader proposed and has not yet seen decided.
#[derive(Debug)]
struct Proposal {
    entry: Entry,
    /// Who accepted, at which incarnation (counted against the instance's epoch).
    acks: Vec<(NodeId, u64)>,
    sent: u64,
}

/// A read-index request waiting for a heartbeat round to be acknowledged.
#[derive(Debug)]
struct PendingRead {
    id: u64,
    index: Slot,
    round: Option<u64>,
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
    peer_commit: Vec<Slot>,
    acked_round: Vec<u64>,
    round: u64,
    last_heartbeat: u64,
    commit_sent: Slot,
    reads: Vec<PendingRead>,
    /// The phase-1 quorum; checked again against the membership of each instance
    /// decided (an epoch learned after the election may not count some of them).
    promisers: Vec<(NodeId, u64)>,
    /// Reincarnations asked for and not yet proposed.
    reincarnations: VecDeque<Reincarnation>,
    /// Instances beyond `commit + window` whose acks arrived: decided (or not)
    /// once the watermark catches up.
    deferred: BTreeSet<Slot>,
    /// Per replica, the last large catch-up sent and still unacknowledged: the
    /// instance it reaches (exclusive) and the tick after which it may be sent
    /// again ([`super::CoreConfig::resend_ticks`]); `(0, 0)` if none. A follower's
    /// acks come every heartbeat; answering each one with a new copy of the same
    /// entries (up to `catchup_bytes`) while the first is in flight swamped lagging
    /// followers and the leader (see docs/BENCHMARKS.md, "Where the time goes").
    catchup: Vec<(Slot, u64)>,
}

/// A catch-up larger than `catchup_bytes / LARGE_CATCHUP_PART` (64 KiB by
/// default) is sent one at a time per follower (see `on_heartbeat_ack`).
const LARGE_CATCHUP_PART: usize = 64;

impl Candidate {
    /// True if a replica other than `me` promised this candidate's ballot.
    pub(super) fn holds_promise_of_another(&self, me: NodeId) -> bool {
        self.promises & !(1 << me) != 0
    }
}

impl Leader {
    pub(super) fn enqueue(&mut self, cmd: Command) {
        self.queue.push_back(cmd);
    }

    pub(super) fn request_slot(&mut self, slot: Slot, entry: Entry) {
        if slot >= self.next {
            self.starts.entry(slot).or_insert(entry);
        }
    }

    /// True if a majority (this replica counts itself as heard every tick) was heard within `within` ticks.
    pub(super) fn has_live_majority(&self, now: u64, within: u64, majority: usize) -> bool {
        self.last_heard
            .iter()
            .filter(|&&t| now.saturating_sub(t) <= within)
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
            || self.next < fill_until
            || (!self.queue.is_empty() && self.may_open(max_inflight_bytes))
            || !self.starts.is_empty()
            || self.reads.iter().any(|r| r.round.is_none())
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
            merged: BTreeMap::new(),
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
            for to in 0..self.cfg.peers {
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
        // Only what the acceptor reports for instances its vote counts in.
        let accepted: Vec<PromisedSlot> = accepted
            .into_iter()
            .filter(|p| self.vote_counts(p.slot, from, incarnation))
            .collect();
        let Role::Candidate(c) = &mut self.role else {
            return;
        };
        c.promises |= 1 << from;
        c.promisers.push((from, incarnation));
        c.floor = c.floor.max(floor);
        for p in accepted {
            match c.merged.get(&p.slot) {
                Some((_, _, true)) => {}
                Some((b, _, false)) if !p.decided && *b >= p.ballot => {}
                _ => {
                    c.merged.insert(p.slot, (p.ballot, p.entry, p.decided));
                }
            }
        }
        let (from_slot, promisers) = (c.from_slot, c.promisers.clone());
        if self.promise_quorum_from(from_slot, &promisers) {
            self.become_leader();
        }
    }

    /// True if `voters` hold a majority of the voters of `slot`'s epoch.
    fn quorum(&self, slot: Slot, voters: &[(NodeId, u64)]) -> bool {
        voters
            .iter()
            .filter(|&&(n, k)| self.vote_counts(slot, n, k))
            .count()
            >= self.cfg.majority()
    }

    /// True if `promisers` hold a majority of every known epoch from `from_slot` on.
    fn promise_quorum_from(&self, from_slot: Slot, promisers: &[(NodeId, u64)]) -> bool {
        let majority = self.cfg.majority();
        if self.cfg.unsafe_rejoin {
            return promisers.len() >= majority;
        }
        self.membership.epochs_from(from_slot).all(|members| {
            promisers
                .iter()
                .filter(|&&(n, k)| members.get(n).is_some_and(|m| m.incarnation == k))
                .count()
                >= majority
        })
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
        let mut to_propose = Vec::new();
        let start = self.commit.max(c.from_slot);
        let end = c
            .merged
            .keys()
            .next_back()
            .map_or(0, |s| s.saturating_add(1))
            .max(self.commit);
        for slot in start..end {
            match c.merged.get(&slot) {
                Some((_, entry, true)) => self.learn(slot, entry.clone(), false),
                Some((_, entry, false)) => to_propose.push((slot, entry.clone())),
                None => to_propose.push((slot, Entry::Noop)),
            }
        }
        let next = end.max(self.commit);
        tracing::info!(node = self.cfg.id, %ballot, recovered = to_propose.len(), next, "became leader");
        let peers = self.cfg.peers;
        let mut leader = Leader {
            ballot,
            next,
            ready_from: next,
            inflight: BTreeMap::new(),
            queue: self.waiting_commands.drain(..).collect(),
            starts: BTreeMap::new(),
            last_heard: vec![self.now; peers],
            peer_commit: vec![0; peers],
            acked_round: vec![0; peers],
            round: 0,
            last_heartbeat: self.now,
            commit_sent: self.commit,
            reads: Vec::new(),
            promisers: c.promisers,
            reincarnations: VecDeque::new(),
            deferred: BTreeSet::new(),
            catchup: vec![(0, 0); peers],
        };
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
        for (slot, entry) in to_propose {
            if !self.decided.contains_key(&slot) {
                self.propose_in(slot, entry);
            }
        }
        self.broadcast_heartbeat();
    }

    /// Sends phase 2a for `slot` to every replica, this one included.
    fn propose_in(&mut self, slot: Slot, entry: Entry) {
        let commit = self.commit;
        let now = self.now;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let ballot = l.ballot;
        l.inflight.insert(
            slot,
            Proposal {
                entry: entry.clone(),
                acks: Vec::new(),
                sent: now,
            },
        );
        l.commit_sent = commit;
        self.seen_end = self.seen_end.max(slot.saturating_add(1));
        self.broadcast(
            Message::Accept {
                ballot,
                slot,
                entry,
                commit,
            },
            true,
        );
    }

    /// Opens new instances for waiting commands and starts, within the window, and
    /// sends whatever heartbeat or read confirmation is due.
    pub(super) fn leader_flush(&mut self) {
        // Instances whose decision waited for the commit watermark to catch up.
        if let Role::Leader(l) = &mut self.role {
            let limit = self.commit + self.cfg.window;
            if l.deferred.first().is_some_and(|&s| s <= limit) {
                let later = l.deferred.split_off(&(limit + 1));
                let ready = std::mem::replace(&mut l.deferred, later);
                for slot in ready {
                    self.try_decide(slot);
                }
            }
        }
        loop {
            let (window, max_bytes, max_cmds, max_inflight) = (
                self.cfg.window,
                self.cfg.max_batch_bytes,
                self.cfg.max_batch_commands,
                self.cfg.max_inflight_bytes,
            );
            let limit = self.commit + window;
            // See `Leader::has_work`: window no-ops up to the newest epoch.
            let fill_until = self.membership.latest_start();
            let Role::Leader(l) = &mut self.role else {
                return;
            };
            if l.next >= limit {
                break;
            }
            let slot = l.next;
            l.starts = l.starts.split_off(&slot);
            let entry = if let Some(e) = l.starts.remove(&slot) {
                e
            } else if let Some(r) = l.reincarnations.pop_front() {
                Entry::Reincarnate {
                    node: r.node,
                    nonce: r.nonce,
                    replaces: r.replaces.unwrap_or_default(),
                }
            } else if !l.queue.is_empty() && l.may_open(max_inflight) {
                let mut bytes = 0;
                let mut batch = Vec::new();
                // At most `max_bytes` counted, or one command alone: either way
                // below the log's frame limit (see `MAX_COMMAND_BYTES`).
                while let Some(cmd) = l.queue.front() {
                    let size = cmd.len() + COMMAND_OVERHEAD;
                    if !batch.is_empty() && (bytes + size > max_bytes || batch.len() >= max_cmds) {
                        break;
                    }
                    bytes += size;
                    batch.extend(l.queue.pop_front());
                }
                Entry::Batch(batch)
            } else if !l.starts.is_empty() || slot < fill_until {
                Entry::Noop
            } else {
                break;
            };
            l.next += 1;
            self.propose_in(slot, entry);
        }
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let new_round = l.reads.iter().any(|r| r.round.is_none());
        if new_round {
            l.round += 1;
            let round = l.round;
            for r in l.reads.iter_mut().filter(|r| r.round.is_none()) {
                r.round = Some(round);
            }
        }
        if new_round || self.commit > l.commit_sent {
            self.broadcast_heartbeat();
        }
        self.check_reads();
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        let (commit, done, now) = (self.commit, self.done.clone(), self.now);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.last_heartbeat = now;
        l.commit_sent = commit;
        let (ballot, round) = (l.ballot, l.round);
        self.broadcast(
            Message::Heartbeat {
                ballot,
                commit,
                round,
                done,
            },
            false,
        );
    }

    pub(super) fn leader_tick(&mut self) {
        let (now, peers, me) = (self.now, self.cfg.peers, self.cfg.id);
        let stale_after = 2 * self.cfg.election_ticks as u64;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.last_heard[me] = now;
        if !l.has_live_majority(now, stale_after, self.cfg.majority()) {
            tracing::warn!(node = me, ballot = %l.ballot, "leader lost contact with a majority; stepping down");
            self.step_down();
            return;
        }
        let mut resend = Vec::new();
        for (&slot, p) in l.inflight.iter_mut() {
            if now - p.sent >= self.cfg.resend_ticks(p.entry.size_hint()) {
                p.sent = now;
                for to in (0..peers).filter(|to| !p.acks.iter().any(|(n, _)| n == to)) {
                    resend.push((to, slot, p.entry.clone()));
                }
            }
        }
        let ballot = l.ballot;
        let heartbeat_due = now - l.last_heartbeat >= self.cfg.heartbeat_ticks as u64;
        let commit = self.commit;
        for (to, slot, entry) in resend {
            self.send(
                to,
                Message::Accept {
                    ballot,
                    slot,
                    entry,
                    commit,
                },
            );
        }
        if heartbeat_due {
            self.broadcast_heartbeat();
        }
    }

    pub(super) fn on_accepted(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        incarnation: u64,
    ) {
        let now = self.now;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.ballot != ballot {
            return;
        }
        l.last_heard[from] = now;
        let Some(p) = l.inflight.get_mut(&slot) else {
            return;
        };
        if !p.acks.iter().any(|&(n, _)| n == from) {
            p.acks.push((from, incarnation));
        }
        self.try_decide(slot);
    }

    /// Decides `slot` if a majority of its epoch accepted it. An instance beyond
    /// `commit + window` waits: a reincarnation decided below it could still change
    /// who votes in it.
    fn try_decide(&mut self, slot: Slot) {
        if slot > self.commit + self.cfg.window {
            if let Role::Leader(l) = &mut self.role {
                l.deferred.insert(slot);
            }
            return;
        }
        let Role::Leader(l) = &self.role else {
            return;
        };
        let Some(p) = l.inflight.get(&slot) else {
            return;
        };
        if !self.quorum(slot, &p.acks) {
            return;
        }
        if !self.quorum(slot, &l.promisers) {
            // Elected under an older view of the membership: not a valid leader for
            // this instance. A new election collects promises under the new view.
            tracing::warn!(
                node = self.cfg.id,
                slot,
                "phase-1 quorum not valid in this instance's epoch; stepping down"
            );
            self.step_down();
            return;
        }
        let me = self.cfg.id;
        let self_backed = p
            .acks
            .iter()
            .any(|&(n, k)| n == me && self.vote_counts(slot, n, k));
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if let Some(p) = l.inflight.remove(&slot) {
            self.learn(slot, p.entry, self_backed);
        }
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
                let membership = self.membership.clone();
                let commit = self.commit;
                self.send(from, Message::Membership { membership, commit });
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

    pub(super) fn on_heartbeat_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        round: u64,
        commit: Slot,
        done: Slot,
        incarnation: Option<u64>,
    ) {
        let (now, floor, budget) = (self.now, self.floor, self.cfg.catchup_bytes);
        // Only a voter of the current epoch confirms leadership for reads.
        let confirms = incarnation.is_some_and(|k| self.vote_counts(self.commit, from, k));
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.ballot != ballot {
            return;
        }
        l.last_heard[from] = now;
        l.peer_commit[from] = commit;
        // A round this leader never sent confirms nothing (`bounds.rs`).
        if confirms && round <= l.round {
            l.acked_round[from] = l.acked_round[from].max(round);
        }
        self.done[from] = self.done[from].max(done);
        // Catch a lagging follower up. A small catch-up goes with every ack (the
        // usual few instances a follower misses when an Accept is lost); a large
        // one, one at a time: the next once the follower acknowledges having
        // learned it, or after its resend time (it may have been lost).
        let (sent_to, resend_at) = l.catchup[from];
        let in_flight = commit < sent_to && now < resend_at;
        if commit < self.commit && !in_flight {
            let mut entries = Vec::new();
            let mut bytes = 0;
            for (&slot, entry) in self.decided.range(commit..self.commit) {
                if bytes > budget {
                    break;
                }
                bytes += entry.size_hint();
                entries.push((slot, entry.clone()));
            }
            l.catchup[from] = match entries.last() {
                Some(&(last, _)) if bytes > budget / LARGE_CATCHUP_PART => {
                    (last + 1, now + self.cfg.resend_ticks(bytes))
                }
                _ => (0, 0),
            };
            self.send(from, Message::Decided { entries, floor });
        }
        self.forget();
        self.check_reads();
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

    pub(super) fn on_forward(&mut self, commands: Vec<Command>) {
        // Only the leader batches forwarded commands; anyone else drops them (the
        // client retries) rather than risk forwarding in a loop.
        let commands: Vec<Command> = commands
            .into_iter()
            .filter(|c| self.fits_a_record(c))
            .collect();
        if let Role::Leader(l) = &mut self.role {
            l.queue.extend(commands);
        }
    }

    pub(super) fn on_forward_start(&mut self, slot: Slot, entry: Entry) {
        if !matches!(self.role, Role::Leader(_)) {
            return;
        }
        if slot > self.commit.saturating_add(START_REACH) {
            // The gap up to it would be filled with no-ops (`bounds.rs`).
            tracing::warn!(
                node = self.cfg.id,
                slot,
                commit = self.commit,
                "ignored a forwarded start far beyond the decided log"
            );
            return;
        }
        self.start(slot, entry);
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

    /// A follower hands what it holds to the known leader.
    pub(super) fn flush_waiting(&mut self) {
        let Some((leader, _)) = self.leader else {
            return;
        };
        if leader == self.cfg.id {
            return;
        }
        if !self.waiting_commands.is_empty() {
            let commands = std::mem::take(&mut self.waiting_commands);
            self.send(leader, Message::Forward { commands });
        }
        let now = self.now;
        let mut fresh = Vec::new();
        for (&slot, (entry, sent)) in self.waiting_starts.iter_mut() {
            if sent.is_none() {
                *sent = Some(now);
                fresh.push((slot, entry.clone()));
            }
        }
        for (slot, entry) in fresh {
            self.send(leader, Message::ForwardStart { slot, entry });
        }
    }

    /// Forwarded starts that were not decided after a while are sent again.
    pub(super) fn resend_waiting_starts(&mut self) {
        let (now, every) = (self.now, self.cfg.retransmit_ticks as u64);
        for (_, sent) in self.waiting_starts.values_mut() {
            if matches!(sent, Some(t) if now - *t >= every) {
                *sent = None;
            }
        }
    }

    /// Read-index: asks for confirmation that this replica still leads. The answer
    /// comes in a later [`super::Ready::reads`].
    pub fn read_index(&mut self, id: u64) {
        let (commit, hint) = (self.commit, self.leader());
        match &mut self.role {
            Role::Leader(l) if commit >= l.ready_from => l.reads.push(PendingRead {
                id,
                index: commit,
                round: None,
            }),
            Role::Leader(_) => self
                .ready
                .reads
                .push(ReadOutcome::NotLeader { id, leader: None }),
            _ => self
                .ready
                .reads
                .push(ReadOutcome::NotLeader { id, leader: hint }),
        }
    }

    /// Answers reads whose heartbeat round a majority has acknowledged.
    fn check_reads(&mut self) {
        let (me, majority) = (self.cfg.id, self.cfg.majority());
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.reads.is_empty() {
            return;
        }
        let mut out = Vec::new();
        l.reads.retain(|r| match r.round {
            Some(round) => {
                let acks = l
                    .acked_round
                    .iter()
                    .enumerate()
                    .filter(|&(p, &a)| p == me || a >= round)
                    .count();
                if acks >= majority {
                    out.push(ReadOutcome::Ready {
                        id: r.id,
                        index: r.index,
                    });
                    false
                } else {
                    true
                }
            }
            None => true,
        });
        self.ready.reads.extend(out);
    }
}
