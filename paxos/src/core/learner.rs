//! The learner: decided values, the commit watermark, `done` gossip and forgetting.

use super::{Change, Event, Membership, Replica, Role};
use crate::message::Message;
use crate::record::Record;
use crate::types::{Ballot, Entry, NodeId, Reincarnation, Slot};

impl Replica {
    /// Records that `slot` is decided with `entry`. `backed` says whether this
    /// replica's own latest Accepted record for `slot` already holds `entry`; if not,
    /// a Learned record is written so replay after a crash finds the value.
    pub(super) fn learn(&mut self, slot: Slot, entry: Entry, backed: bool) {
        if slot < self.floor || self.decided.contains_key(&slot) {
            return;
        }
        let backed = backed || matches!(self.accepted.get(&slot), Some((_, e)) if *e == entry);
        if !backed {
            self.persist(Record::Learned {
                slot,
                entry: entry.clone(),
            });
        }
        self.seen_end = self.seen_end.max(slot.saturating_add(1));
        self.decided.insert(slot, entry);
        self.waiting_starts.remove(&slot);
        self.advance_commit();
    }

    /// Moves the commit watermark over every contiguous decided instance and hands
    /// them to the application in order.
    fn advance_commit(&mut self) {
        if self.provisional {
            // Recovering an empty disk with no membership but the start list:
            // a change applied on it would give a membership the group never
            // had, and one skipped would be missed for good. Decisions wait
            // for the peers' membership (asked for with `MembershipAsk` at
            // every resend tick), then apply in order on it.
            return;
        }
        if let Some(applied) = self.doubt {
            // Every decision up to the application's state known again: applied
            // in order on the log's membership, the reincarnations among them
            // give the same memberships as everywhere else.
            let missing = applied.saturating_sub(self.commit);
            if missing > 0 && (self.decided.range(self.commit..applied).count() as u64) < missing {
                // A reincarnation applied on a membership that skipped some
                // could name the wrong incarnation (`doubt_membership`).
                return;
            }
            tracing::info!(
                node = self.cfg.id,
                applied,
                "the decisions the application's state covers are known again: applying"
            );
            self.doubt = None;
        }
        while let Some(entry) = self.decided.get(&self.commit).cloned() {
            if let Some(r) = entry.reincarnation() {
                self.apply_reincarnation(self.commit, r);
            }
            if let Some(c) = entry.change() {
                self.apply_change(self.commit, c);
            }
            self.ready.committed.push((self.commit, entry));
            self.commit += 1;
            if self.membership.starts_at(self.commit) {
                tracing::info!(
                    node = self.cfg.id,
                    from = self.commit,
                    "every instance the previous membership may have voted in is decided: the \
                     new membership is in force"
                );
            }
        }
    }

    /// A decided reincarnation: a new membership epoch, and, if it is this
    /// replica's own request, its new incarnation.
    fn apply_reincarnation(&mut self, slot: Slot, r: Reincarnation) {
        let Reincarnation { node, nonce, .. } = r;
        if self.provisional {
            // Applied on the start list it would give a wrong membership; the
            // peers' membership, which covers it, replaces the start list.
            return;
        }
        if !self.membership.reincarnate(slot, self.cfg.window, r) {
            tracing::debug!(
                node = self.cfg.id,
                replica = node,
                nonce,
                slot,
                "decided reincarnation changes nothing (already applied, or stale)"
            );
            return;
        }
        self.persist(Record::Membership(self.membership.clone()));
        let (incarnation, from) = self
            .membership
            .incarnation_of(node, nonce)
            .unwrap_or((0, 0));
        tracing::info!(
            node = self.cfg.id,
            replica = node,
            incarnation,
            votes_from = from,
            slot,
            "replica reincarnated"
        );
        if node == self.cfg.id && self.cfg.recovering == Some(nonce) && self.incarnation.is_none() {
            self.incarnation = Some(incarnation);
        }
    }

    /// A decided membership change: a new epoch, unless it changes nothing.
    fn apply_change(&mut self, slot: Slot, change: &Change) {
        if self.provisional {
            return;
        }
        if !self.membership.apply(slot, self.cfg.window, change) {
            tracing::info!(
                node = self.cfg.id,
                %change,
                slot,
                "decided membership change changes nothing (already in effect, refused, or \
                 another change still pending)"
            );
            return;
        }
        self.persist(Record::Membership(self.membership.clone()));
        tracing::info!(
            node = self.cfg.id,
            %change,
            slot,
            from = self.membership.latest_start(),
            "membership change decided"
        );
        self.ready.events.push(Event::MembershipChanged);
    }

    /// The application's state covers every instance below `applied`, more than
    /// the log knows decided: a snapshot was installed just before a crash (or a
    /// full disk) that lost the log's tail — the `Forgotten` record and, before
    /// it, the `Membership` record that came with the snapshot. Applying later
    /// reincarnations on the stale membership could give this replica (or
    /// another) the wrong incarnation (found in review). So it applies nothing
    /// and asks its peers for their membership; once one covering `applied`
    /// arrives, it takes it in and forgets below `applied` (the `Membership`
    /// record precedes the `Forgotten` one in the log). Or, if the decisions of
    /// every instance below `applied` become known again first (the group had
    /// not forgotten them), it applies them in order like any replica.
    ///
    /// It keeps voting and may lead: its promises and accepted values are in its
    /// log, its incarnation too (a recovering replica has none and votes in
    /// nothing), and a membership missing later reincarnations counts fewer votes
    /// than the group's, never more — a lost incarnation votes only below the
    /// new epoch's start. A group whose every replica is in doubt (a group-wide
    /// power loss) decides again and so ends its doubt (attack finding).
    ///
    /// A replica alone in its group has nobody to ask, and nobody whose
    /// reincarnation it could have missed: it forgets below `applied` at once.
    pub fn doubt_membership(&mut self, applied: Slot) {
        if self.alone() && self.membership.seats() == 1 {
            self.install_snapshot(applied);
        } else if applied > self.commit {
            tracing::info!(
                node = self.cfg.id,
                applied,
                commit = self.commit,
                "the application's state is ahead of the log: asking the peers for the \
                 membership before voting or applying"
            );
            self.doubt = Some(applied);
            self.broadcast(Message::MembershipAsk, false);
        }
    }

    /// A peer's membership, which covers every reincarnation decided below its
    /// `commit`.
    pub(super) fn on_membership(&mut self, membership: &Membership, commit: Slot) {
        self.merge_membership(membership);
        if let Some(applied) = self.doubt.filter(|&a| commit >= a) {
            self.doubt = None;
            self.install_snapshot(applied);
            // Decisions learned while in doubt, past `applied` (attack finding).
            self.advance_commit();
        }
    }

    /// A peer in doubt about its membership asks for this one's.
    ///
    /// A replica in doubt itself answers too: its membership covers every
    /// reincarnation below its own (log) commit, which is what it announces.
    pub(super) fn on_membership_ask(&mut self, from: NodeId) {
        self.send_membership(from);
    }

    /// Takes in membership epochs learned with a snapshot from another replica.
    pub fn merge_membership(&mut self, other: &Membership) {
        let before = self.membership.clone();
        let was_provisional = self.provisional;
        if self.provisional {
            // Recovering an empty disk: the start list knows nothing the
            // group decided; the peer's membership replaces it.
            self.provisional = false;
            self.membership = other.clone();
        } else {
            self.membership.merge(other);
        }
        if self.membership != before {
            self.persist(Record::Membership(self.membership.clone()));
            self.ready.events.push(Event::MembershipChanged);
        }
        if let (None, Some(nonce)) = (self.incarnation, self.cfg.recovering) {
            self.incarnation = self
                .membership
                .incarnation_of(self.cfg.id, nonce)
                .map(|(k, _)| k);
        }
        if was_provisional {
            // Decisions that waited for a membership (`advance_commit`).
            self.advance_commit();
        }
    }

    /// A leader at `ballot` says every instance below `leader_commit` is decided.
    /// Instances this replica accepted at that very ballot are decided with the
    /// accepted value (a leader proposes one value per instance and ballot); the
    /// rest arrive by catch-up. The walk goes over the instances accepted here,
    /// never slot by slot up to a watermark from the network (`bounds.rs`).
    pub(super) fn apply_leader_commit(&mut self, ballot: Ballot, leader_commit: Slot) {
        self.announced_commit = self.announced_commit.max(leader_commit);
        self.seen_end = self.seen_end.max(leader_commit);
        let start = self.commit.max(self.floor);
        if leader_commit <= start {
            return;
        }
        let decided_now: Vec<(Slot, Entry)> = self
            .accepted
            .range(start..leader_commit)
            .filter(|&(slot, (b, _))| *b == ballot && !self.decided.contains_key(slot))
            .map(|(&slot, (_, e))| (slot, e.clone()))
            .collect();
        for (slot, entry) in decided_now {
            self.learn(slot, entry, true);
        }
    }

    /// A follower hears the leader's heartbeat.
    pub(super) fn on_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        round: u64,
        done: Vec<Slot>,
    ) {
        self.note_round(ballot.round);
        if ballot < self.promised {
            self.reject(from, ballot);
            return;
        }
        self.follow(from, ballot);
        if !matches!(self.role, Role::Follower) {
            return;
        }
        self.merge_done(&done);
        self.apply_leader_commit(ballot, commit);
        let me = self.cfg.id;
        // Rule 10: the ack may extend `from`'s lease; from now on, for a whole
        // election timeout, this replica promises no other candidate.
        self.guard
            .acknowledged(self.now, from, u64::from(self.cfg.election_ticks));
        self.send(
            from,
            Message::HeartbeatAck {
                ballot,
                round,
                commit: self.commit,
                done: self.done[me],
                incarnation: self.incarnation,
            },
        );
    }

    /// Decided values sent by the leader to a replica that is behind.
    pub(super) fn on_decided(&mut self, entries: Vec<(Slot, Entry)>, floor: Slot) {
        for (slot, entry) in entries {
            self.learn(slot, entry, false);
        }
        // Believed only up to a commit watermark a leader announced (`bounds.rs`).
        let floor = floor.min(self.announced_commit.max(self.commit));
        if floor > self.commit {
            self.ready.events.push(Event::SnapshotNeeded { floor });
        }
    }

    /// Takes the higher of each other replica's known `done` watermark. This
    /// replica's own comes only from its application ([`Replica::done`]): the
    /// leader's copy of it may be a lost incarnation's, or describe a checkpoint
    /// that was quarantined, and forgetting on its word would leave a log that
    /// forgot what the local state machine never made durable (found by the
    /// simulator: such a replica could never start again).
    pub(super) fn merge_done(&mut self, done: &[Slot]) {
        let me = self.cfg.id;
        for (i, (mine, theirs)) in self.done.iter_mut().zip(done).enumerate() {
            if i != me {
                *mine = (*mine).max(*theirs);
            }
        }
        self.forget();
    }

    /// Frees every instance below `min()` that is decided here, in memory and (via
    /// `compact_below`) on disk.
    pub(super) fn forget(&mut self) {
        let below = self.min().min(self.commit);
        if below <= self.floor {
            return;
        }
        self.floor = below;
        self.accepted = self.accepted.split_off(&below);
        self.decided = self.decided.split_off(&below);
        self.persist(Record::Forgotten { below });
        self.ready.compact_below = Some(below);
    }

    /// The application installed a snapshot covering every instance below `upto`:
    /// they count as decided and forgotten here.
    pub fn install_snapshot(&mut self, upto: Slot) {
        if upto <= self.commit {
            return;
        }
        self.commit = upto;
        self.seen_end = self.seen_end.max(upto);
        let me = self.cfg.id;
        self.done[me] = self.done[me].max(upto);
        self.floor = upto;
        self.accepted = self.accepted.split_off(&upto);
        self.decided = self.decided.split_off(&upto);
        self.persist(Record::Forgotten { below: upto });
        self.ready.compact_below = Some(upto);
        self.advance_commit();
    }
}
