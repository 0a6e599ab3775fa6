//! The acceptor: promises and accepts, each made durable before it is revealed;
//! and the promise guard that leader leases rest on.

use super::{Replica, Role};
use crate::message::{Message, PromisedSlot};
use crate::record::Record;
use crate::types::{Ballot, Entry, NodeId, Slot};

/// The promise guard (rule 10 of the crate docs): whom this replica may promise
/// a ballot to, now.
///
/// A replica that acknowledges a heartbeat of leader `L` promises no ballot of
/// any other candidate — **itself included** — for `election_ticks` of its own
/// ticks. A leader's lease ([`super::CoreConfig::lease_ticks`]) ends before that,
/// and any other candidate's election needs a promise from one of the majority
/// that acknowledged, so no other leader is elected while the lease holds.
/// Promising `L` itself stays allowed: a candidate `L` no longer leads (a role
/// change ends its lease), and a restarted `L` lost its lease with its memory.
///
/// The guard is explicit rather than read off the follower's leader and
/// election timer (the leader stickiness of [`Replica::has_live_leader_other_than`],
/// which only keeps a healthy leader in place): those change for reasons that
/// must not end it — a candidate's own role (`Role::Candidate` is never
/// sticky), `campaign_now`, following an older leader's later heartbeat.
///
/// A restart forgets whom the replica acknowledged, so a replica restored from
/// its log (or recovering a lost disk) promises **no one** for its first
/// `election_ticks` ticks; a replica that acknowledged two different leaders
/// within the guard promises no one until the older one's guard ends.
#[derive(Debug, Default)]
pub(super) struct PromiseGuard {
    /// Until this tick, no promise to anyone.
    nobody_until: u64,
    /// Until the tick, no promise to anyone but this leader.
    only: Option<(NodeId, u64)>,
}

impl PromiseGuard {
    /// A guard that lets no one be promised before tick `until`.
    pub(super) fn nobody_until(until: u64) -> Self {
        PromiseGuard {
            nobody_until: until,
            only: None,
        }
    }

    /// True if a ballot of `candidate` may be promised at tick `now`.
    pub(super) fn allows(&self, now: u64, candidate: NodeId) -> bool {
        now >= self.nobody_until
            && self
                .only
                .is_none_or(|(leader, until)| leader == candidate || now >= until)
    }

    /// This replica acknowledges a heartbeat of `leader` at tick `now`: for
    /// `ticks` ticks it promises no one else.
    pub(super) fn acknowledged(&mut self, now: u64, leader: NodeId, ticks: u64) {
        if let Some((other, until)) = self.only {
            if other != leader && now < until {
                self.nobody_until = self.nobody_until.max(until);
            }
        }
        self.only = Some((leader, now.saturating_add(ticks)));
    }
}

impl Replica {
    /// Phase 1b. Promise `ballot` if no higher ballot was promised, reporting every
    /// accepted (or decided) value from `from_slot` on.
    pub(super) fn on_prepare(&mut self, from: NodeId, ballot: Ballot, from_slot: Slot) {
        if self.membership.is_removed(self.cfg.id) && self.membership.latest_start() <= self.commit
        {
            // Removed, and in force: its promise counts in no instance still
            // open, and a candidate with an old view could count it. Refusing
            // is always safe.
            return;
        }
        if from != self.cfg.id && !self.membership.is_voter(from) {
            // Not a voter of the newest epoch this replica knows (removed, a
            // learner, moved away): refusing a promise is always safe; the
            // membership tells it why.
            self.send_membership(from);
            return;
        }
        if let Role::Leader(l) = &mut self.role {
            if ballot > l.ballot {
                // Someone campaigns above this leader: its lease no longer
                // counts rounds sent before now (not needed for safety — the
                // guard keeps that candidate from winning while the lease
                // holds — but a leader that knows of a rival serves no read
                // without a fresh majority).
                l.void_lease();
            }
        }
        if !self.guard.allows(self.now, from) {
            // Rule 10: within the promise guard, no promise to another
            // candidate (nor to this replica's own campaign). Ignoring is
            // always safe.
            tracing::debug!(
                node = self.cfg.id,
                from,
                %ballot,
                "ignored a Prepare within the promise guard of a leader lease"
            );
            return;
        }
        if from != self.cfg.id && self.has_live_leader_other_than(from) {
            // Leader stickiness: while a leader is heard from, ignore other
            // candidates, so a replica that cannot hear (but can talk) does not
            // depose a healthy leader again and again. Ignoring is always safe.
            return;
        }
        let Some(incarnation) = self.incarnation else {
            // Recovering a lost disk: this replica has no promise to give.
            return;
        };
        self.note_round(ballot.round);
        if ballot < self.promised {
            self.reject(from, ballot);
            return;
        }
        if ballot > self.promised {
            self.promised = ballot;
            // Rule 1 of the crate docs: the promise is persisted in this Ready, and
            // the Promise message below is only sent after that record is durable.
            self.persist(Record::Promised(ballot));
        }
        if from != self.cfg.id {
            // The election timer is deliberately not reset: a candidate that can
            // talk but not hear would otherwise keep the whole group quiet forever.
            match &self.role {
                Role::Candidate(c) if c.ballot < ballot => self.step_down(),
                Role::Leader(l) if l.ballot < ballot => self.step_down(),
                _ => {}
            }
        }
        let start = from_slot.max(self.floor);
        let mut report: Vec<PromisedSlot> = self
            .accepted
            .range(start..)
            .map(|(&slot, (b, e))| PromisedSlot {
                slot,
                ballot: *b,
                entry: e.clone(),
                decided: false,
            })
            .collect();
        for (&slot, entry) in self.decided.range(start..) {
            match report.binary_search_by_key(&slot, |p| p.slot) {
                Ok(i) => {
                    report[i].entry = entry.clone();
                    report[i].decided = true;
                }
                Err(i) => report.insert(
                    i,
                    PromisedSlot {
                        slot,
                        ballot: Ballot::ZERO,
                        entry: entry.clone(),
                        decided: true,
                    },
                ),
            }
        }
        self.send(
            from,
            Message::Promise {
                ballot,
                accepted: report,
                floor: self.floor,
                incarnation,
            },
        );
    }

    /// Phase 2b. Accept `entry` in `slot` unless a higher ballot was promised.
    pub(super) fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        entry: Entry,
        commit: Slot,
    ) {
        if slot > self.commit.saturating_add(super::bounds::SLOT_REACH) {
            // No honest leader runs this far ahead (`bounds.rs`); accepted, it
            // would make every promise of this replica one to ignore.
            tracing::warn!(
                node = self.cfg.id,
                from,
                slot,
                commit = self.commit,
                "ignored an accept far beyond the decided log"
            );
            return;
        }
        self.note_round(ballot.round);
        if !self.can_vote(slot) {
            // Not a voter in this instance: recovering a lost disk, or the instance
            // belongs to this index's previous incarnation. Learn, never vote —
            // whatever the floor: a snapshot may have raised it above instances the
            // lost incarnation voted in, and an `Accepted` for one of them would be
            // counted as that incarnation's vote by a stale leader.
            if ballot >= self.promised && from != self.cfg.id {
                self.follow(from, ballot);
            }
            self.apply_leader_commit(ballot, commit);
            return;
        }
        if ballot < self.promised {
            self.reject(from, ballot);
            return;
        }
        if ballot > self.promised && slot < self.floor {
            // No Accepted record will carry the new promise: persist it on its own.
            self.persist(Record::Promised(ballot));
        }
        self.promised = ballot;
        if from != self.cfg.id {
            self.follow(from, ballot);
        }
        self.seen_end = self.seen_end.max(slot.saturating_add(1));
        if slot >= self.floor {
            let already =
                matches!(self.accepted.get(&slot), Some((b, e)) if *b == ballot && *e == entry);
            if !already {
                // Rule 2: the accept is persisted in this Ready and the Accepted
                // reply leaves only after it is durable. (A repeated Accept needs
                // no new record: the earlier one is synced before this reply goes.)
                self.persist(Record::Accepted {
                    slot,
                    ballot,
                    entry: entry.clone(),
                });
                self.accepted.insert(slot, (ballot, entry));
            }
        }
        let Some(incarnation) = self.incarnation else {
            return; // unreachable: `can_vote` needs a known incarnation
        };
        self.send(
            from,
            Message::Accepted {
                ballot,
                slot,
                incarnation,
            },
        );
        self.apply_leader_commit(ballot, commit);
    }

    /// True if this replica heard from a leader other than `candidate` within the
    /// minimum election timeout (or leads itself with a live majority).
    pub(super) fn has_live_leader_other_than(&self, candidate: NodeId) -> bool {
        match &self.role {
            Role::Follower => {
                matches!(self.leader, Some((l, _)) if l != candidate)
                    && self.idle_ticks < self.cfg.election_ticks
            }
            Role::Leader(l) => l.has_live_majority(
                self.now,
                self.cfg.election_ticks as u64,
                &self.latest_voters(),
                self.majority(),
            ),
            Role::Candidate(_) => false,
        }
    }
}
