//! What the application asks of a replica: proposals, the 6.824 calls (`start`,
//! `status`, `done`, `max`, `min`), and what it may read of the replica's state.

use super::{Membership, Replica, Role, Status};
use crate::types::{Ballot, Command, Entry, NodeId, Slot};

impl Replica {
    /// This replica's incarnation; `None` while it recovers a lost disk.
    pub fn incarnation(&self) -> Option<u64> {
        self.incarnation
    }

    /// True once this replica's vote counts in the next instance to decide: its
    /// incarnation is known and every instance its lost incarnation may have voted
    /// in is decided. Until then, the group still needs a majority of the old
    /// membership, so it cannot yet lose another replica.
    pub fn votes_now(&self) -> bool {
        self.incarnation
            .is_some_and(|k| self.membership.counts(self.commit, self.cfg.id, k))
            && self.membership_durable()
    }

    /// True while this replica's membership is only its start list (it
    /// recovers a lost disk and no peer has sent it the group's membership
    /// yet): not to be trusted by anyone else.
    pub fn membership_provisional(&self) -> bool {
        self.provisional
    }

    /// The membership epochs this replica knows.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Proposes an application command. The leader batches it into the next
    /// instance; a follower forwards it to the leader. A command may be lost if
    /// leadership changes: the application learns the outcome from the decided
    /// stream and retries on its own deadline.
    pub fn propose(&mut self, cmd: impl Into<Command>) {
        let cmd = cmd.into();
        if !self.fits_a_record(&cmd) {
            return;
        }
        if let Role::Leader(l) = &mut self.role {
            l.enqueue(cmd);
        } else {
            if self.waiting_commands.len() >= self.cfg.max_waiting_commands {
                self.waiting_commands.remove(0);
            }
            self.waiting_commands.push(cmd);
        }
    }

    /// 6.824 `Start(seq, v)`: asks for agreement on `entry` in instance `slot`. The
    /// value chosen may be another one (check [`Replica::status`]); requests for
    /// forgotten or already decided instances are ignored.
    pub fn start(&mut self, slot: Slot, entry: Entry) {
        if slot < self.floor || self.decided.contains_key(&slot) {
            return;
        }
        self.seen_end = self.seen_end.max(slot.saturating_add(1));
        if let Role::Leader(l) = &mut self.role {
            l.request_slot(slot, entry);
        } else {
            self.waiting_starts.entry(slot).or_insert((entry, None));
        }
    }

    /// 6.824 `Status(seq)`.
    pub fn status(&self, slot: Slot) -> Status {
        if slot < self.min() || slot < self.floor {
            return Status::Forgotten;
        }
        match self.decided.get(&slot) {
            Some(e) => Status::Decided(e.clone()),
            None => Status::Pending,
        }
    }

    /// 6.824 `Done(seq)`: the application no longer needs instances `<= slot`.
    pub fn done(&mut self, slot: Slot) {
        let me = self.cfg.id;
        self.done[me] = self.done[me].max(slot + 1);
        self.forget();
    }

    /// 6.824 `Max()`: the highest instance this replica has heard of (0 if none).
    pub fn max(&self) -> Slot {
        self.seen_end.saturating_sub(1)
    }

    /// One past the highest instance this replica has heard of (0 if none).
    pub fn heard_end(&self) -> Slot {
        self.seen_end
    }

    /// 6.824 `Min()`: one more than the smallest `done` of every replica; every
    /// instance below it is forgotten.
    pub fn min(&self) -> Slot {
        // Seats held by a process (removed and vacant ones catch up, if
        // ever, from a snapshot: they hold no instance back).
        let latest = self.membership.latest();
        latest
            .iter()
            .zip(&self.done)
            .filter(|(m, _)| m.listens() && !m.vacant)
            .map(|(_, &d)| d)
            .min()
            .unwrap_or(0)
    }

    /// Every instance below this is decided here.
    pub fn commit_index(&self) -> Slot {
        self.commit
    }

    /// Every instance below this is forgotten here.
    pub fn floor(&self) -> Slot {
        self.floor
    }

    /// The decided value of `slot`, if known and not forgotten.
    pub fn decided(&self, slot: Slot) -> Option<&Entry> {
        self.decided.get(&slot)
    }

    /// The highest ballot this acceptor has promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// True if this replica currently leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The leader this replica follows (itself when leading), if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader.map(|(n, _)| n)
    }

    /// Number of instances held in memory (accepted or decided, not forgotten).
    pub fn instances_in_memory(&self) -> usize {
        self.accepted.len() + self.decided.len()
    }
}
