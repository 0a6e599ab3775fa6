//! Records the protocol core asks to be made durable.

use crate::membership::{LegacyMembership, Membership};
use crate::types::{Ballot, Entry, Slot};
use serde::{Deserialize, Serialize};

/// One durable fact about this replica's acceptor and learner state.
///
/// Replaying the records of a log in order rebuilds the state exactly; see
/// [`crate::core::Replica::restore`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The acceptor promised never to accept a ballot below this one.
    Promised(Ballot),
    /// The acceptor accepted `entry` in `slot` at `ballot` (this also promises `ballot`).
    Accepted {
        /// The instance.
        slot: Slot,
        /// The ballot accepted.
        ballot: Ballot,
        /// The value accepted.
        entry: Entry,
    },
    /// The chosen value of `slot`, learned from another replica.
    Learned {
        /// The instance.
        slot: Slot,
        /// The chosen value.
        entry: Entry,
    },
    /// Every instance below `upto` is decided. The value of each is its `Learned`
    /// record if it has one, else its latest `Accepted` record.
    Committed {
        /// Exclusive upper bound of the decided prefix.
        upto: Slot,
    },
    /// Every instance below `below` is forgotten: done by every replica. Storage may
    /// delete records about those instances.
    Forgotten {
        /// Exclusive upper bound of the forgotten prefix.
        below: Slot,
    },
    /// The membership epochs as logs written before membership changes stored
    /// them; read as [`Record::Membership`] (see [`Record::upgraded`]), never written.
    LegacyMembership(LegacyMembership),
    /// The membership epochs as of now (the newest such record wins).
    Membership(Membership),
}

impl Record {
    /// The instance a record is about, if any (promises are about no instance).
    pub fn slot(&self) -> Option<Slot> {
        match self {
            Record::Accepted { slot, .. } | Record::Learned { slot, .. } => Some(*slot),
            Record::Promised(_)
            | Record::Committed { .. }
            | Record::Forgotten { .. }
            | Record::LegacyMembership(_)
            | Record::Membership(_) => None,
        }
    }

    /// This record in today's form: a legacy membership record becomes a
    /// [`Record::Membership`]; every other record is returned as it is.
    pub fn upgraded(self) -> Record {
        match self {
            Record::LegacyMembership(m) => Record::Membership(m.into()),
            other => other,
        }
    }
}
