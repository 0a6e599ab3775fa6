//! What a set of records establishes beyond the instances it is about: the facts a
//! segment head restates and compaction must never lose.

use crate::core::Membership;
use crate::record::Record;
use crate::types::{Ballot, Slot};

/// The facts a set of records establishes that outlive the instances they are
/// about, plus the highest instance the records mention.
///
/// Every fact is a maximum: promises, the commit watermark and the forgotten
/// watermark only grow, so the facts of two record sets combine with `max`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// Highest slot of an `Accepted` or `Learned` record.
    pub(crate) max_slot: Option<Slot>,
    /// Highest ballot promised, by a `Promised` record or implicitly by an `Accepted`
    /// one (accepting a ballot promises it, and that promise must outlive the record).
    pub(crate) promised: Option<Ballot>,
    /// Highest `Committed { upto }`.
    pub(crate) committed: Option<Slot>,
    /// Highest `Forgotten { below }`.
    pub(crate) forgotten: Option<Slot>,
    /// The newest membership (by [`Membership::version`]).
    pub(crate) membership: Option<Membership>,
}

fn newer(a: &Option<Membership>, b: &Option<Membership>) -> Option<Membership> {
    match (a, b) {
        (Some(x), Some(y)) if y.version() > x.version() => Some(y.clone()),
        (Some(x), _) => Some(x.clone()),
        (None, y) => y.clone(),
    }
}

impl Facts {
    /// Takes one more record into account.
    pub(crate) fn observe(&mut self, record: &Record) {
        match record {
            Record::Promised(ballot) => self.promised = self.promised.max(Some(*ballot)),
            Record::Accepted { slot, ballot, .. } => {
                self.promised = self.promised.max(Some(*ballot));
                self.max_slot = self.max_slot.max(Some(*slot));
            }
            Record::Learned { slot, .. } => self.max_slot = self.max_slot.max(Some(*slot)),
            Record::Committed { upto } => self.committed = self.committed.max(Some(*upto)),
            Record::Forgotten { below } => self.forgotten = self.forgotten.max(Some(*below)),
            Record::Membership(m) => self.membership = newer(&self.membership, &Some(m.clone())),
            Record::LegacyMembership(m) => {
                self.membership = newer(&self.membership, &Some(m.clone().into()))
            }
        }
    }

    /// Combines the facts of another record set into these.
    pub(crate) fn absorb(&mut self, other: &Facts) {
        self.max_slot = self.max_slot.max(other.max_slot);
        self.promised = self.promised.max(other.promised);
        self.committed = self.committed.max(other.committed);
        self.forgotten = self.forgotten.max(other.forgotten);
        self.membership = newer(&self.membership, &other.membership);
    }

    /// Whether these facts make `other`'s promise and watermarks redundant.
    pub(crate) fn covers(&self, other: &Facts) -> bool {
        other.promised <= self.promised
            && other.committed <= self.committed
            && other.forgotten <= self.forgotten
            && other.membership.as_ref().map(Membership::version)
                <= self.membership.as_ref().map(Membership::version)
    }

    /// The records that restate these facts at the head of a segment.
    pub(crate) fn head(&self) -> impl Iterator<Item = Record> {
        [
            self.promised.map(Record::Promised),
            self.committed.map(|upto| Record::Committed { upto }),
            self.forgotten.map(|below| Record::Forgotten { below }),
            self.membership.clone().map(Record::Membership),
        ]
        .into_iter()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_take_the_maximum_and_count_accepts_as_promises() {
        let mut facts = Facts::default();
        let entry = crate::types::Entry::Noop;
        facts.observe(&Record::Promised(Ballot::new(5, 0)));
        facts.observe(&Record::Accepted {
            slot: 3,
            ballot: Ballot::new(7, 1),
            entry: entry.clone(),
        });
        facts.observe(&Record::Promised(Ballot::new(6, 0)));
        facts.observe(&Record::Learned { slot: 9, entry });
        facts.observe(&Record::Committed { upto: 4 });
        facts.observe(&Record::Committed { upto: 2 });
        assert_eq!(facts.promised, Some(Ballot::new(7, 1)));
        assert_eq!(facts.max_slot, Some(9));
        assert_eq!(facts.committed, Some(4));
        assert_eq!(facts.forgotten, None);
        let head: Vec<Record> = facts.head().collect();
        assert_eq!(
            head,
            vec![
                Record::Promised(Ballot::new(7, 1)),
                Record::Committed { upto: 4 }
            ]
        );
        let older = Facts {
            forgotten: Some(1),
            ..Facts::default()
        };
        assert!(!facts.covers(&older));
        assert!(facts.covers(&Facts {
            forgotten: None,
            ..facts.clone()
        }));
    }
}
