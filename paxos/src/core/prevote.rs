//! The pre-vote: a follower whose election timer fired asks its peers whether they
//! would take part in an election before it promises itself a higher ballot.
//!
//! Without it, one follower that merely stops *hearing* the leader for a while (a
//! burst of large entries queued ahead of the heartbeats, a stalled disk, a cut
//! link that heals) promises itself a higher ballot, rejects the leader's next
//! Accept, and the leader steps down: the whole group loses its leader because one
//! replica was slow (issue #18, B3: repeated elections under 16 MiB writes). Raft
//! calls the remedy PreVote; etcd and TiKV turn it on.
//!
//! A peer grants a pre-vote only if it would also answer the candidate's Prepare:
//! it has a vote (it is not recovering a lost disk), hears no live leader
//! other than the asker (the same test as the acceptor's leader stickiness in
//! `acceptor.rs`), and its promise guard (rule 10, leader leases) lets it
//! promise the asker. The follower campaigns once a majority, itself included,
//! granted. Granting changes no state and promises nothing, so a pre-vote can never
//! make a decision unsafe; it only delays an election by one round trip, and only
//! prevents one that could not have won anyway while a majority hears the leader.

use super::candidate::Votes;
use super::{Replica, Role};
use crate::message::Message;
use crate::types::NodeId;
use rand::Rng;

/// A pre-vote in progress at this follower. It lasts one election timeout: grants
/// count however late they arrive within it (a round trip may well exceed
/// `retransmit_ticks`; an attempt that started over every `retransmit_ticks`
/// dropped every grant on a slow network and no one was ever elected — found by
/// the attack on this change).
#[derive(Debug)]
pub(super) struct PreVote {
    /// A random number naming this pre-vote; grants echo it.
    attempt: u64,
    /// The tick it began, and the tick it last asked the peers that had not granted.
    started: u64,
    last_sent: u64,
    /// Who granted (this one included).
    grants: Votes,
}

impl Replica {
    /// The election timer fired: ask the peers for a pre-vote, asking again the
    /// ones that have not granted every `retransmit_ticks`, and begin a new one
    /// after an election timeout without a majority. A replica that is a majority
    /// on its own campaigns at once.
    pub(super) fn canvass(&mut self) {
        let (now, me) = (self.now, self.cfg.id);
        if let Some(p) = &mut self.pre_vote {
            if now - p.started < u64::from(self.election_timeout) {
                if now - p.last_sent >= u64::from(self.cfg.retransmit_ticks) {
                    p.last_sent = now;
                    let (attempt, grants) = (p.attempt, p.grants);
                    let voters = self.latest_voters();
                    for to in voters.into_iter().filter(|&to| grants & (1 << to) == 0) {
                        self.send(to, Message::PreVote { attempt });
                    }
                }
                return;
            }
        }
        if self.majority() <= 1 {
            self.campaign();
            return;
        }
        let attempt = self.rng.gen();
        tracing::debug!(node = me, attempt, "asking peers for a pre-vote");
        self.pre_vote = Some(PreVote {
            attempt,
            started: now,
            last_sent: now,
            grants: 1 << me,
        });
        self.broadcast(Message::PreVote { attempt }, false);
    }

    /// Grants `from`'s pre-vote if this replica would answer its Prepare.
    pub(super) fn on_pre_vote(&mut self, from: NodeId, attempt: u64) {
        if from == self.cfg.id || self.incarnation.is_none() {
            return;
        }
        if !self.membership.is_voter(from) {
            // Not a voter (removed, a learner, moved away): it must not lead;
            // tell it why, so a removed replica stops asking.
            self.send_membership(from);
            return;
        }
        if self.has_live_leader_other_than(from) || !self.guard.allows(self.now, from) {
            return;
        }
        self.send(from, Message::PreVoteGrant { attempt });
    }

    /// Counts a grant; campaigns once a majority granted.
    pub(super) fn on_pre_vote_grant(&mut self, from: NodeId, attempt: u64) {
        if !matches!(self.role, Role::Follower) {
            return;
        }
        let Some(p) = &mut self.pre_vote else {
            return;
        };
        if p.attempt != attempt {
            return;
        }
        p.grants |= 1 << from;
        let grants = p.grants;
        let voters = self.latest_voters();
        let counted = voters.iter().filter(|&&n| grants & (1 << n) != 0).count();
        if counted >= self.majority() {
            self.campaign();
        }
    }
}
