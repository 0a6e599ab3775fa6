//! Whether this replica's state shows that its group has a history a replica with
//! an empty disk may have taken part in (see [`crate::probe`]).

use super::{Replica, Role};
use crate::types::Ballot;

/// A replica's answer to "has this group a history?" (see [`crate::probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// Nothing on this replica shows that the group ever started.
    Fresh,
    /// This replica votes in a group that has started.
    History,
    /// This replica is recovering a lost disk (so the group has a history).
    Recovering,
}

impl Replica {
    /// Answers a probe from a replica with an empty disk.
    ///
    /// Answering `Fresh` is a promise about the past *and* the future: no quorum
    /// that counted the prober's lost votes may ever form through this replica. A
    /// promise the prober sent before it lost its disk may still be in flight to
    /// this replica if it is a candidate, so a candidate that answers `Fresh` drops
    /// its ballot (it campaigns again later with a new one, whose promises the
    /// lost incarnation never gave).
    pub fn probe_answer(&mut self) -> ProbeAnswer {
        if self.incarnation.is_none() {
            return ProbeAnswer::Recovering;
        }
        if self.has_history() {
            return ProbeAnswer::History;
        }
        if matches!(self.role, Role::Candidate(_)) {
            tracing::debug!(
                node = self.cfg.id,
                "answered a probe with Fresh: dropping this election's ballot"
            );
            self.step_down();
        }
        ProbeAnswer::Fresh
    }

    /// True if this replica knows its group has started: something was accepted,
    /// decided or forgotten here, a membership change happened, this replica
    /// promised a ballot of another replica, it holds a promise of another replica
    /// (as a candidate), it knows a leader (so a quorum of promises formed), or
    /// its application's state is ahead of its log (in doubt: it applied
    /// decisions, so the group has started, though its log may show none). A
    /// replica that only promised its own ballot and holds no one else's promise
    /// has no history: nothing can have been chosen with it.
    pub fn has_history(&self) -> bool {
        let promised_another = self.promised != Ballot::ZERO && self.promised.node != self.cfg.id;
        let holds_another =
            matches!(&self.role, Role::Candidate(c) if c.holds_promise_of_another(self.cfg.id));
        self.seen_end > 0
            || self.commit > 0
            || self.floor > 0
            || !self.accepted.is_empty()
            || self.incarnation != Some(0)
            || self.membership.epoch_starts().len() > 1
            || promised_another
            || holds_another
            || self.leader.is_some()
            || self.doubt.is_some()
    }
}
