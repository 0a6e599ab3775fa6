//! Reads at the leader. While it holds a lease (rule 10 of the crate docs) a read
//! is answered at once at the commit index; otherwise by read-index: the read
//! waits for one heartbeat round, sent after it arrived, to be acknowledged by a
//! majority, then is served at the commit index it was asked at. Either way the
//! application serves it once it has applied every instance below that index.

use super::Leader;
use crate::core::{ReadOutcome, Replica, Role};
use crate::types::{NodeId, Slot};
use std::collections::VecDeque;

/// A read-index request waiting for a heartbeat round to be acknowledged.
#[derive(Debug)]
pub(super) struct PendingRead {
    pub(super) id: u64,
    pub(super) index: Slot,
    pub(super) round: Option<u64>,
}

/// How many reads a replica answered as leader, by how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Answered at once from the leader's lease.
    pub lease: u64,
    /// Answered once a heartbeat round was acknowledged by a majority.
    pub read_index: u64,
}

/// The leader lease: when a majority (this replica included) has acknowledged a
/// heartbeat round the leader sent at its tick `t`, no other leader can be
/// elected before this one's tick `t + lease_ticks` (see
/// [`crate::core::CoreConfig::lease_ticks`] for why). Each acknowledged round
/// extends it; it lives in [`Leader`], so any change of role ends it.
#[derive(Debug, Default)]
pub(super) struct Lease {
    /// Rounds sent that may still extend the lease, oldest first: (round, tick
    /// it was sent at).
    sent: VecDeque<(u64, u64)>,
    /// The lease holds while the clock reads below this.
    until: u64,
    /// Rounds up to this one extend nothing (sent before the leader learned of a
    /// higher ballot).
    void_upto: u64,
}

impl Lease {
    /// Round `round` leaves at tick `now`.
    fn sent(&mut self, round: u64, now: u64, ticks: u64) {
        self.forget_expired(now, ticks);
        self.sent.push_back((round, now));
    }

    /// A majority acknowledged every round up to `round`: the lease lasts until
    /// `ticks` after that round was sent.
    fn confirmed(&mut self, round: u64, now: u64, ticks: u64) {
        while let Some(&(r, at)) = self.sent.front() {
            if r > round {
                break;
            }
            self.sent.pop_front();
            if r == round && r > self.void_upto {
                self.until = self.until.max(at.saturating_add(ticks));
            }
        }
        self.forget_expired(now, ticks);
    }

    /// Rounds sent `ticks` or more ago could only give a lease that is over.
    fn forget_expired(&mut self, now: u64, ticks: u64) {
        while self
            .sent
            .front()
            .is_some_and(|&(_, at)| at.saturating_add(ticks) <= now)
        {
            self.sent.pop_front();
        }
    }

    /// True if the lease holds at tick `now`.
    pub(super) fn holds(&self, now: u64) -> bool {
        now < self.until
    }
}

impl Leader {
    /// Ends the lease now; only rounds sent from now on can give a new one.
    pub(in crate::core) fn void_lease(&mut self) {
        self.lease.until = 0;
        self.lease.void_upto = self.round;
    }

    /// The highest heartbeat round that a majority of `voters` acknowledged
    /// (this replica, `me`, counts as acknowledging every round it sent).
    fn majority_round(&self, me: NodeId, voters: &[NodeId], majority: usize) -> u64 {
        let mut acked: Vec<u64> = voters
            .iter()
            .map(|&p| {
                if p == me {
                    self.round
                } else {
                    self.acked_round.get(p).copied().unwrap_or(0)
                }
            })
            .collect();
        acked.sort_unstable_by(|a, b| b.cmp(a));
        acked
            .get(majority.saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }

    /// A new heartbeat round leaves at tick `now`; it confirms the read-index
    /// requests that arrived since the last one. Returns its number.
    pub(super) fn new_round(&mut self, now: u64, lease_ticks: u64) -> u64 {
        self.round += 1;
        let round = self.round;
        self.lease.sent(round, now, lease_ticks);
        for r in self.reads.iter_mut().filter(|r| r.round.is_none()) {
            r.round = Some(round);
        }
        round
    }
}

impl Replica {
    /// True if this leader may answer reads: no membership epoch is still to
    /// come, so the newest epoch — whose voters the lease and read-index count
    /// — is the one in force. (A leader elected by a majority of an older
    /// membership learns of the newer one by deciding the change it recovered,
    /// since two majorities of consecutive epochs meet, and then steps down:
    /// `leader_tick`.) The leader fills the window with no-ops at once, so
    /// this waits a few instances.
    fn settled_for_reads(&self) -> bool {
        self.membership.latest_start() <= self.commit
    }

    /// A linearizable read: answered at once with the commit index while this
    /// replica leads with a lease, else once a heartbeat round (a round trip to
    /// a majority) confirms that it still leads. Either way the answer comes in
    /// a later [`crate::core::Ready::reads`]; a replica that does not lead (or
    /// has not yet decided every instance its election recovered) refuses.
    pub fn read_index(&mut self, id: u64) {
        let (commit, hint, now) = (self.commit, self.leader(), self.now);
        let leases = self.cfg.lease_reads;
        if self.is_leader() && !self.settled_for_reads() {
            // A membership change is taking effect: no read until it is in
            // force (the caller retries).
            self.ready
                .reads
                .push(ReadOutcome::NotLeader { id, leader: None });
            return;
        }
        match &mut self.role {
            Role::Leader(l) if commit >= l.ready_from && leases && l.lease.holds(now) => {
                self.read_stats.lease += 1;
                self.ready
                    .reads
                    .push(ReadOutcome::Ready { id, index: commit });
            }
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

    /// Extends the lease to what the rounds acknowledged so far give.
    pub(in crate::core) fn extend_lease(&mut self) {
        let (me, majority, now) = (self.cfg.id, self.majority(), self.now);
        let voters = self.latest_voters();
        let ticks = self.cfg.lease_ticks();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let round = l.majority_round(me, &voters, majority);
        l.lease.confirmed(round, now, ticks);
    }

    /// Answers reads whose heartbeat round a majority has acknowledged.
    pub(super) fn check_reads(&mut self) {
        let (me, majority) = (self.cfg.id, self.majority());
        let voters = self.latest_voters();
        let settled = self.settled_for_reads();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.reads.is_empty() || !settled {
            return;
        }
        let mut out = Vec::new();
        l.reads.retain(|r| match r.round {
            Some(round) => {
                let acks = voters
                    .iter()
                    .filter(|&&p| p == me || l.acked_round.get(p).is_some_and(|&a| a >= round))
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
        self.read_stats.read_index += out.len() as u64;
        self.ready.reads.extend(out);
    }
}
