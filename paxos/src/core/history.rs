//! Whether this replica's state shows that its group has a history a replica with
//! an empty disk may have taken part in (see [`crate::probe`]).

use super::Replica;
use crate::types::Ballot;

impl Replica {
    /// True if this replica knows its group has started: something was accepted,
    /// decided or forgotten here, a membership change happened, this replica
    /// promised a ballot of another replica, or it knows a leader (so a quorum of
    /// promises formed). A replica that only promised its own ballot, with no one
    /// following it, has no history: nothing can have been chosen with it.
    pub fn has_history(&self) -> bool {
        let promised_another = self.promised != Ballot::ZERO && self.promised.node != self.cfg.id;
        self.seen_end > 0
            || self.commit > 0
            || self.floor > 0
            || !self.accepted.is_empty()
            || self.incarnation != Some(0)
            || self.membership.epoch_starts().len() > 1
            || promised_another
            || self.leader.is_some()
    }
}
