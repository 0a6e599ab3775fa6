//! The sans-I/O protocol core: one replica's acceptor, proposer and learner.
//!
//! A [`Replica`] is a plain struct. Feed it messages ([`Replica::handle`]), ticks
//! ([`Replica::tick`]) and requests ([`Replica::propose`], [`Replica::start`],
//! [`Replica::read_index`], [`Replica::done`]); then take a [`Ready`] with
//! [`Replica::take_ready`] and carry it out **in this order**:
//!
//! 1. send `ready.messages` at once (those addressed to this replica are delivered
//!    back to [`Replica::handle`]);
//! 2. append `ready.records` to storage, in order after every earlier Ready's;
//!    make them durable (fdatasync) now if `ready.sync`, else soon;
//! 3. only once every record appended so far is durable, send `ready.after_sync`,
//!    and tell the core how far records are durable ([`Replica::on_durable`]);
//! 4. apply `ready.committed` to the state machine, answer `ready.reads`.
//!
//! Which message may leave before which record is durable is the core's decision
//! (`durability.rs`): the driver carries it out mechanically, and the simulator
//! runs the very same rules.
//!
//! The core never does I/O, reads no clock and uses only its seeded generator, so a
//! test can run a whole group deterministically.

mod acceptor;
mod bounds;
mod candidate;
mod config;
mod durability;
mod forwarding;
mod history;
mod leader;
mod learner;
mod prevote;
mod ready;
mod requests;
mod restore;

/// Re-exported from [`crate::membership`], which the stored and wire types share.
pub use crate::membership::{Change, ChangeRefused, Member, Membership, Seat, MAX_SEATS};
pub use bounds::{ROUND_REACH, START_REACH};
pub use config::{
    CoreConfig, COMMAND_OVERHEAD, MAX_CLOCK_DRIFT_PERCENT, MAX_COMMAND_BYTES, MAX_PEERS,
};
pub use history::ProbeAnswer;
pub use leader::{ChangeAnswer, ReadStats};
pub use ready::{Event, ReadOutcome, Ready};

use crate::message::{Envelope, Message};
use crate::record::Record;
use crate::types::{Ballot, Command, Entry, NodeId, Slot};
use candidate::Candidate;
use leader::Leader;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// What [`Replica::status`] knows of an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Decided with this value.
    Decided(Entry),
    /// Not (yet) known to be decided here.
    Pending,
    /// Below [`Replica::min`]: decided, done by every replica, and freed.
    Forgotten,
}

/// The replica's current role.
#[derive(Debug)]
enum Role {
    Follower,
    Candidate(Candidate),
    Leader(Box<Leader>),
}

/// One replica's protocol state. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Replica {
    cfg: CoreConfig,
    rng: StdRng,
    /// Logical clock: ticks since start.
    now: u64,

    // Acceptor.
    /// Which incarnation votes in which instance.
    membership: Membership,
    /// This replica's incarnation; `None` while it recovers a lost disk.
    incarnation: Option<u64>,
    /// True while the membership is only the one this replica was started with
    /// (`--peers`) and it recovers an empty disk: the first membership a peer
    /// sends replaces it rather than merging with it (the start list may name
    /// seats the group never had, or miss ones it added).
    provisional: bool,
    /// `Some(applied)`: the application's state covers every instance below
    /// `applied` but the log does not say so, and the membership that came with
    /// that state may be lost with the log's tail (see
    /// [`Replica::doubt_membership`]). Until a peer's membership covering it
    /// arrives, or the decisions up to it are known again, this replica applies
    /// nothing (it votes and leads, counting votes on its own membership).
    doubt: Option<Slot>,
    promised: Ballot,
    accepted: BTreeMap<Slot, (Ballot, Entry)>,
    /// Whom this replica may promise now (rule 10: leader leases).
    guard: acceptor::PromiseGuard,

    // Learner.
    decided: BTreeMap<Slot, Entry>,
    /// Every instance below `commit` is decided.
    commit: Slot,
    /// `commit` as last written to storage.
    commit_persisted: Slot,
    /// Every instance below `floor` is forgotten.
    floor: Slot,
    /// Per replica: every instance below `done[i]` is done at replica `i`.
    done: Vec<Slot>,
    /// Highest instance this replica has heard of, plus one.
    seen_end: Slot,
    /// Highest commit watermark a leader announced to this replica (or its own):
    /// the most a floor from a peer is believed (see `bounds.rs`).
    announced_commit: Slot,
    /// Highest ballot round seen anywhere.
    max_round: u64,

    // Proposer.
    role: Role,
    leader: Option<(NodeId, Ballot)>,
    idle_ticks: u32,
    election_timeout: u32,
    /// Campaigns in a row that timed out without winning. Each doubles the next
    /// election timeout (up to `2^MAX_CAMPAIGN_BACKOFF` times), so a candidate whose
    /// promises carry many large entries gets the time to receive them instead of
    /// starting over; hearing a leader or winning resets it.
    lost_campaigns: u32,
    /// The pre-vote this follower runs before campaigning (`prevote.rs`).
    pre_vote: Option<prevote::PreVote>,
    /// Commands proposed here while this replica is not the leader.
    waiting_commands: Vec<Command>,
    /// 6.824 `start` requests not yet known decided, with the tick last sent.
    waiting_starts: BTreeMap<Slot, (Entry, Option<u64>)>,

    /// Reads answered here as leader, by lease and by read-index.
    read_stats: ReadStats,

    ready: Ready,
    durability: durability::Durability,
}

impl Replica {
    /// A brand-new replica with empty state: one that never ran, so it cannot
    /// have acknowledged any leader. A replica that may have run before starts
    /// with [`Replica::restore`] (every driver does, through
    /// [`crate::node::restore`]), which keeps it from promising anything for its
    /// first `election_ticks` (rule 10); so does one recovering a lost disk.
    pub fn new(cfg: CoreConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(
            cfg.seed ^ 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(cfg.id as u64 + 1),
        );
        let election_timeout = Self::draw_timeout(&mut rng, &cfg);
        let membership = Membership::initial(cfg.peers);
        let incarnation = if cfg.recovering.is_some() {
            None
        } else {
            Some(0)
        };
        let guard = if cfg.recovering.is_some() {
            acceptor::PromiseGuard::nobody_until(u64::from(cfg.election_ticks))
        } else {
            acceptor::PromiseGuard::default()
        };
        Replica {
            membership,
            provisional: cfg.recovering.is_some(),
            incarnation,
            doubt: None,
            done: vec![0; MAX_SEATS],
            rng,
            now: 0,
            promised: Ballot::ZERO,
            accepted: BTreeMap::new(),
            guard,
            decided: BTreeMap::new(),
            commit: 0,
            commit_persisted: 0,
            floor: 0,
            seen_end: 0,
            announced_commit: 0,
            max_round: 0,
            role: Role::Follower,
            leader: None,
            idle_ticks: 0,
            election_timeout,
            lost_campaigns: 0,
            pre_vote: None,
            waiting_commands: Vec::new(),
            waiting_starts: BTreeMap::new(),
            read_stats: ReadStats::default(),
            ready: Ready::default(),
            durability: durability::Durability::default(),
            cfg,
        }
    }

    /// This replica's settings.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// This replica's index.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Its logical clock: ticks since it started.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// How many reads this replica answered as leader, from its lease and by
    /// read-index, since it started.
    pub fn read_stats(&self) -> ReadStats {
        self.read_stats
    }

    /// Handles one message from the network (or from itself). Messages that are
    /// malformed, stale or not addressed here are ignored.
    pub fn handle(&mut self, env: Envelope) {
        // From any seat there can be, even one this replica has not heard of:
        // a replica behind the group may not know the seat its leader was
        // added in, and ignoring that leader would keep it behind for good
        // (found by the membership sweep). Votes count only by the membership.
        if env.to != self.cfg.id || env.from >= MAX_SEATS {
            return;
        }
        if !bounds::plausible_rounds(&env.msg, self.max_round) {
            tracing::warn!(
                node = self.cfg.id,
                from = env.from,
                kind = env.msg.kind(),
                max_round = self.max_round,
                "ignored a message whose ballot round is far beyond any seen"
            );
            return;
        }
        let from = env.from;
        match env.msg {
            Message::Prepare { ballot, from_slot } => self.on_prepare(from, ballot, from_slot),
            Message::Accept {
                ballot,
                slot,
                entry,
                commit,
            } => self.on_accept(from, ballot, slot, entry, commit),
            Message::Heartbeat {
                ballot,
                commit,
                round,
                done,
            } => self.on_heartbeat(from, ballot, commit, round, done),
            Message::Promise {
                ballot,
                accepted,
                floor,
                incarnation,
            } => self.on_promise(from, ballot, accepted, floor, incarnation),
            Message::Accepted {
                ballot,
                slot,
                incarnation,
            } => self.on_accepted(from, ballot, slot, incarnation),
            Message::Reincarnate { nonce, replaces } => self.on_reincarnate(from, nonce, replaces),
            Message::HeartbeatAck {
                ballot,
                round,
                commit,
                done,
                incarnation,
            } => self.on_heartbeat_ack(from, ballot, round, commit, done, incarnation),
            Message::Reject { ballot, promised } => self.on_reject(ballot, promised),
            Message::Decided { entries, floor } => self.on_decided(entries, floor),
            Message::Forward { commands } => self.on_forward(commands),
            Message::ForwardStart { slot, entry } => self.on_forward_start(slot, entry),
            Message::Membership { membership, commit } => self.on_membership(&membership, commit),
            Message::MembershipAsk => self.on_membership_ask(from),
            Message::PreVote { attempt } => self.on_pre_vote(from, attempt),
            Message::PreVoteGrant { attempt } => self.on_pre_vote_grant(from, attempt),
        }
    }

    /// Advances logical time by one tick: heartbeats, retransmissions, elections.
    pub fn tick(&mut self) {
        self.advance(1);
    }

    /// Advances logical time by `ticks` ticks at once, doing the duties of one
    /// tick (a heartbeat if one is due, resends, an election) rather than of
    /// each: how a driver catches up with the ticks a stall made it miss. Time
    /// must never fall behind the driver's monotonic clock when the core
    /// handles anything (rule 10 of the crate docs): a leader whose ticks lag
    /// holds its lease too long, and a follower that took a heartbeat before
    /// catching up would see its promise guard end early.
    pub fn advance(&mut self, ticks: u64) {
        if ticks == 0 {
            return;
        }
        let before = self.now;
        self.now = self.now.saturating_add(ticks);
        // True if a multiple of `every` ticks passed in this step.
        let (now, every) = (self.now, u64::from(self.cfg.retransmit_ticks));
        let resend_due = now / every > before / every;
        match &self.role {
            Role::Leader(_) => self.leader_tick(),
            Role::Candidate(_) => self.candidate_tick(),
            Role::Follower => {
                self.idle_ticks = self
                    .idle_ticks
                    .saturating_add(u32::try_from(ticks).unwrap_or(u32::MAX));
                // In doubt, or knowing only the start list (`provisional`):
                // the peers' membership is needed before applying anything.
                if (self.doubt.is_some() || self.provisional) && resend_due {
                    self.broadcast(Message::MembershipAsk, false);
                }
                if self.incarnation.is_none() {
                    // Recovering: no vote to give, so no election to run; keep
                    // asking for the reincarnation instead.
                    if resend_due {
                        if let Some(nonce) = self.cfg.recovering {
                            let replaces = self
                                .membership
                                .latest()
                                .get(self.cfg.id)
                                .map_or(0, |m| m.incarnation);
                            self.broadcast(Message::Reincarnate { nonce, replaces }, false);
                        }
                    }
                } else if (self.idle_ticks >= self.election_timeout || self.alone())
                    && self.may_lead()
                {
                    // A group of one has no leader to wait for: it campaigns
                    // at its first tick (a `diskv serve` restart serves
                    // sooner by an election timeout).
                    self.canvass();
                }
            }
        }
        self.resend_waiting_starts();
    }

    /// Starts an election now instead of waiting for the timeout (tests, and an
    /// operator moving leadership). Ignored while recovering a lost disk.
    pub fn campaign_now(&mut self) {
        if self.incarnation.is_some() && !self.is_leader() && self.may_lead() {
            self.campaign();
        }
    }

    /// False for a replica in doubt whose state is more than a window ahead of
    /// its log: as leader it could decide nothing past its log's commit plus the
    /// window, so it could never learn the decisions that end its doubt, and its
    /// heartbeats would keep everyone else from leading (attack finding). It
    /// votes for another leader instead.
    ///
    /// False too for a replica that is not a voter of the newest epoch (a
    /// learner, a removed replica, one whose seat moved elsewhere): the others
    /// would not promise it anything.
    fn may_lead(&self) -> bool {
        self.doubt
            .is_none_or(|applied| applied <= self.commit.saturating_add(self.cfg.window))
            && self.is_current_voter()
    }

    /// True if this replica is a voter of the newest epoch, at its own incarnation.
    fn is_current_voter(&self) -> bool {
        let latest = self.membership.latest();
        self.incarnation.is_some_and(|k| {
            latest
                .get(self.cfg.id)
                .is_some_and(|m| m.votes_as(k) || self.cfg.unsafe_rejoin)
        })
    }

    /// True if this replica is the newest epoch's only voter: a group of one,
    /// with no other leader to wait for or whose lease it could cut short.
    fn alone(&self) -> bool {
        let latest = self.membership.latest();
        latest.iter().filter(|m| m.seat == Seat::Voter).count() == 1
            && latest
                .get(self.cfg.id)
                .is_some_and(|m| m.seat == Seat::Voter)
    }

    /// The voter seats of the newest epoch.
    fn latest_voters(&self) -> Vec<NodeId> {
        let latest = self.membership.latest();
        (0..latest.len())
            .filter(|&n| latest[n].seat == Seat::Voter)
            .collect()
    }

    /// Sends `to` this replica's membership (it is behind, or not a member).
    /// Not while this replica knows only its start list (it would spread a
    /// membership the group never had).
    fn send_membership(&mut self, to: NodeId) {
        if self.provisional {
            return;
        }
        let membership = self.membership.clone();
        let commit = self.commit;
        self.send(to, Message::Membership { membership, commit });
    }

    /// The strict majority of the newest epoch's voters.
    fn majority(&self) -> usize {
        crate::membership::majority(self.membership.latest())
    }

    /// True if this replica's vote counts in `slot`.
    fn can_vote(&self, slot: Slot) -> bool {
        match self.incarnation {
            Some(k) => self.cfg.unsafe_rejoin || self.membership.counts(slot, self.cfg.id, k),
            None => false,
        }
    }

    /// True if a vote of `node` at `incarnation` counts in `slot`.
    fn vote_counts(&self, slot: Slot, node: NodeId, incarnation: u64) -> bool {
        self.cfg.unsafe_rejoin || self.membership.counts(slot, node, incarnation)
    }

    /// Collects everything the driver must do now. See the module docs.
    pub fn take_ready(&mut self) -> Ready {
        if let Role::Leader(_) = self.role {
            self.leader_flush();
        } else {
            self.flush_waiting();
        }
        let upto = self.committed_record_upto();
        if upto > self.commit_persisted {
            self.commit_persisted = upto;
            self.persist(Record::Committed { upto });
        }
        self.seal_ready()
    }

    /// True if [`Replica::take_ready`] would return work.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
            || self.committed_record_upto() > self.commit_persisted
            || matches!(&self.role, Role::Leader(l)
                if l.has_work(self.membership.latest_start(), self.cfg.max_inflight_bytes))
    }

    // ---- helpers shared by the role files ----

    /// True if `cmd` is at most [`MAX_COMMAND_BYTES`]; a larger one could not be
    /// logged (it would stop this replica's storage), so it is dropped here.
    fn fits_a_record(&self, cmd: &Command) -> bool {
        let fits = cmd.len() <= MAX_COMMAND_BYTES;
        if !fits {
            tracing::error!(
                node = self.cfg.id,
                bytes = cmd.len(),
                limit = MAX_COMMAND_BYTES,
                "dropped a command too large for one log record"
            );
        }
        fits
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.ready.messages.push(Envelope {
            from: self.cfg.id,
            to,
            msg,
        });
    }

    /// Sends `msg` to every seat not removed (`Membership::audience_from`).
    fn broadcast(&mut self, msg: Message, include_self: bool) {
        let me = self.cfg.id;
        let audience: Vec<NodeId> = self.membership.audience_from(self.commit).collect();
        for to in audience {
            if include_self || to != me {
                self.send(to, msg.clone());
            }
        }
    }

    /// Tells `to` that its `ballot` is below this acceptor's promise.
    fn reject(&mut self, to: NodeId, ballot: Ballot) {
        let promised = self.promised;
        self.send(to, Message::Reject { ballot, promised });
    }

    fn note_round(&mut self, round: u64) {
        self.max_round = self.max_round.max(round);
    }

    fn reset_election_timer(&mut self) {
        self.idle_ticks = 0;
        let backoff = self.lost_campaigns.min(candidate::MAX_CAMPAIGN_BACKOFF);
        self.election_timeout = Self::draw_timeout(&mut self.rng, &self.cfg) << backoff;
    }

    fn draw_timeout(rng: &mut StdRng, cfg: &CoreConfig) -> u32 {
        rng.gen_range(cfg.election_ticks..2 * cfg.election_ticks)
    }

    /// Accepts `(from, ballot)` as the current leader if it is at least as high as
    /// anything this replica follows or leads; steps down from a lower role.
    fn follow(&mut self, from: NodeId, ballot: Ballot) {
        self.note_round(ballot.round);
        let own = match &self.role {
            Role::Leader(l) => Some(l.ballot),
            Role::Candidate(c) => Some(c.ballot),
            Role::Follower => None,
        };
        if let Some(own) = own {
            if own >= ballot {
                return;
            }
            self.step_down();
        }
        self.lost_campaigns = 0;
        self.pre_vote = None;
        if self.leader.map(|(_, b)| b) != Some(ballot) {
            tracing::debug!(node = self.cfg.id, leader = from, %ballot, "following new leader");
            self.leader = Some((from, ballot));
            self.ready.events.push(Event::LeaderChanged {
                leader: Some(from),
                ballot,
            });
        }
        self.reset_election_timer();
    }
}

#[cfg(test)]
mod doubt2_attack_tests;
#[cfg(test)]
mod doubt_attack_tests;
#[cfg(test)]
mod doubt_group;
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod membership_attack2_tests;
#[cfg(test)]
mod membership_attack_tests;
#[cfg(test)]
mod prevote_attack_tests;
#[cfg(test)]
mod tests;
