//! Phase 2 at the stable leader: opening instances (batching, pipelining, flow
//! control, window no-ops), heartbeats, retransmission, and deciding an instance
//! once a majority of its epoch accepted it.

use super::Proposal;
use crate::core::{Replica, Role, COMMAND_OVERHEAD};
use crate::message::Message;
use crate::types::{Ballot, Entry, NodeId, Slot};

impl Replica {
    /// True if `voters` hold a majority of the voters of `slot`'s epoch.
    fn quorum(&self, slot: Slot, voters: &[(NodeId, u64)]) -> bool {
        if self.cfg.unsafe_rejoin {
            return voters.len() >= crate::membership::majority(self.membership.at(slot));
        }
        self.membership.quorum_at(slot, voters)
    }

    /// True if this replica leads and its phase-1 quorum is a majority of
    /// `slot`'s epoch. If it leads on promises that are not (elected under an
    /// older view of the membership), it steps down: a new election collects
    /// promises under the view it has now.
    fn election_holds_in(&mut self, slot: Slot) -> bool {
        let Role::Leader(l) = &self.role else {
            return false;
        };
        if self.quorum(slot, &l.promisers) {
            return true;
        }
        tracing::warn!(
            node = self.cfg.id,
            slot,
            "phase-1 quorum not valid in this instance's epoch; stepping down"
        );
        self.step_down();
        false
    }

    /// Sends phase 2a for `slot` to every replica, this one included — only if
    /// this leader's phase-1 quorum is a majority of `slot`'s epoch: otherwise
    /// the promises may have missed a value chosen in `slot`, and a new value
    /// at this higher ballot could overwrite it at the acceptors (attack
    /// finding). Then it steps down; a new election counts the epoch in force.
    pub(in crate::core) fn propose_in(&mut self, slot: Slot, entry: Entry) {
        if !self.election_holds_in(slot) {
            return;
        }
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
    pub(in crate::core) fn leader_flush(&mut self) {
        // Values recovered at the election for instances the window now reaches.
        loop {
            let limit = self.commit.saturating_add(self.cfg.window);
            let Role::Leader(l) = &mut self.role else {
                return;
            };
            let Some(entry) = l.recovered.first_key_value().filter(|(&s, _)| s < limit) else {
                break;
            };
            let slot = *entry.0;
            let reports = l.recovered.remove(&slot).unwrap_or_default();
            if !self.decided.contains_key(&slot) {
                let entry = reports.pick(slot, |s, n, k| self.vote_counts(s, n, k));
                self.propose_in(slot, entry);
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
            } else if let Some(c) = l.change.take() {
                Entry::Change(c)
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
        // Reads that arrived since the last round need a round of their own.
        let new_round = l.reads.iter().any(|r| r.round.is_none());
        if new_round || self.commit > l.commit_sent {
            self.broadcast_heartbeat();
        }
        self.check_reads();
    }

    /// Sends a heartbeat: a new round, which confirms the reads waiting for one
    /// and, once a majority acknowledges it, extends the lease.
    pub(in crate::core) fn broadcast_heartbeat(&mut self) {
        let seats = self.membership.seats().min(self.done.len());
        let (commit, done, now) = (self.commit, self.done[..seats].to_vec(), self.now);
        let lease_ticks = self.cfg.lease_ticks();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.last_heartbeat = now;
        l.commit_sent = commit;
        let round = l.new_round(now, lease_ticks);
        let ballot = l.ballot;
        // A group of one is its own majority.
        self.extend_lease();
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

    pub(in crate::core) fn leader_tick(&mut self) {
        let (now, me) = (self.now, self.cfg.id);
        let stale_after = 2 * self.cfg.election_ticks as u64;
        if self.membership.latest_start() <= self.commit {
            if !self.is_current_voter() {
                // Removed, or its seat moved elsewhere, and that is in force now:
                // the voters elect a leader among themselves.
                tracing::info!(node = me, "no longer a voter of the group; stepping down");
                self.step_down();
                return;
            }
            let holds = matches!(&self.role, Role::Leader(l)
                if self.cfg.unsafe_rejoin || self.membership.quorum_from(self.commit, &l.promisers));
            if !holds {
                // Elected by promises that do not make a majority of the epoch
                // now in force (a promiser was reincarnated, moved or removed):
                // it could decide nothing more, so a new election, under the
                // membership in force, at once rather than at the next write.
                tracing::info!(
                    node = me,
                    "election no longer holds in the membership in force; stepping down"
                );
                self.step_down();
                return;
            }
        }
        let (voters, majority) = (self.latest_voters(), self.majority());
        let audience: Vec<NodeId> = self.membership.audience_from(self.commit).collect();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.last_heard[me] = now;
        if !l.has_live_majority(now, stale_after, &voters, majority) {
            tracing::warn!(node = me, ballot = %l.ballot, "leader lost contact with a majority; stepping down");
            self.step_down();
            return;
        }
        let mut resend = Vec::new();
        for (&slot, p) in l.inflight.iter_mut() {
            if now - p.sent >= self.cfg.resend_ticks(p.entry.size_hint()) {
                p.sent = now;
                for &to in audience
                    .iter()
                    .filter(|&to| !p.acks.iter().any(|(n, _)| n == to))
                {
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

    pub(in crate::core) fn on_accepted(
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

    /// Decides `slot` if a majority of its epoch accepted it. Every instance in
    /// flight was opened below `commit + window` (`leader_flush`, and recovered
    /// values wait for the window: `Leader::recovered`), so its epoch is known.
    fn try_decide(&mut self, slot: Slot) {
        let Role::Leader(l) = &self.role else {
            return;
        };
        let Some(p) = l.inflight.get(&slot) else {
            return;
        };
        if !self.quorum(slot, &p.acks) {
            return;
        }
        let me = self.cfg.id;
        let self_backed = p
            .acks
            .iter()
            .any(|&(n, k)| n == me && self.vote_counts(slot, n, k));
        if !self.election_holds_in(slot) {
            return;
        }
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if let Some(p) = l.inflight.remove(&slot) {
            self.learn(slot, p.entry, self_backed);
        }
    }
}
