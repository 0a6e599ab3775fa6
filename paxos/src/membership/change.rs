//! Operators' membership changes: what a change is (`Change`), why one is
//! refused (`ChangeRefused`), and the rules every replica applies to a decided
//! one — checked (`Membership::check`), already in effect (`already`), applied
//! (`apply`) — on the epochs of the parent module.

use super::{majority, Member, Membership, Seat, MAX_SEATS};
use crate::types::{NodeId, Slot};
use serde::{Deserialize, Serialize};

/// An operator's membership change, decided in the log (`Entry::Change`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Change {
    /// A new seat at `addr`: a vacant learner until a process claims it.
    Add {
        /// Where the new replica listens.
        addr: String,
    },
    /// A learner becomes a voter.
    Promote {
        /// The seat.
        node: NodeId,
    },
    /// A seat leaves the group for good.
    Remove {
        /// The seat.
        node: NodeId,
    },
    /// A seat moves to another address: its current incarnation stops voting
    /// and a new process at `addr` claims the seat (a replacement machine).
    Move {
        /// The seat.
        node: NodeId,
        /// Where the replacement listens.
        addr: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Add { addr } => write!(f, "add a learner at {addr}"),
            Change::Promote { node } => write!(f, "promote replica {node} to voter"),
            Change::Remove { node } => write!(f, "remove replica {node}"),
            Change::Move { node, addr } => write!(f, "move replica {node} to {addr}"),
        }
    }
}

/// Why a membership change cannot be made (as it stands now).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ChangeRefused {
    /// An earlier change has not taken effect yet.
    #[error("another membership change is still taking effect (from instance {from}); retry once it has")]
    Pending {
        /// Where the pending epoch starts.
        from: Slot,
    },
    /// No such seat.
    #[error("replica {node} is not in the group")]
    NoSuchSeat {
        /// The seat named.
        node: NodeId,
    },
    /// The seat was removed.
    #[error("replica {node} was removed from the group")]
    Removed {
        /// The seat named.
        node: NodeId,
    },
    /// Promote names a seat that is not a learner, or one no process holds yet.
    #[error("replica {node} is not a learner whose process has joined (start it first, then promote it once it has caught up)")]
    NotPromotable {
        /// The seat named.
        node: NodeId,
    },
    /// Removing it would leave no voter.
    #[error("replica {node} is the last voter; a group cannot remove its last voter")]
    LastVoter {
        /// The seat named.
        node: NodeId,
    },
    /// All seats used.
    #[error("the group has used all {MAX_SEATS} replica indexes")]
    Full,
    /// Afterwards fewer than a majority of the voters would be held by a
    /// running replica: the group could decide nothing, not even a new
    /// process's claim.
    #[error(
        "after this change only {held} of {voters} voters would be running and able to \
         vote, fewer than a majority: the group could decide nothing more, not even the \
         claim of a vacant seat (bring the down or recovering replicas back, or add a \
         replica first)"
    )]
    WouldStall {
        /// Voters afterwards.
        voters: usize,
        /// Of them, the ones a process holds (not vacant).
        held: usize,
    },
}

impl Membership {
    /// Checks whether `change` could be applied now, with nothing else pending
    /// from the leader's view at `commit`.
    pub fn check(&self, change: &Change, commit: Slot) -> Result<(), ChangeRefused> {
        let from = self.latest_start();
        if from > commit {
            return Err(ChangeRefused::Pending { from });
        }
        let members = self.latest();
        let seat = |node: NodeId| match members.get(node) {
            None => Err(ChangeRefused::NoSuchSeat { node }),
            Some(m) if m.seat == Seat::Removed => Err(ChangeRefused::Removed { node }),
            Some(m) => Ok(m),
        };
        match change {
            Change::Add { .. } if members.len() >= MAX_SEATS => Err(ChangeRefused::Full),
            Change::Add { .. } => Ok(()),
            Change::Promote { node } => {
                let m = seat(*node)?;
                if m.seat != Seat::Learner || m.vacant {
                    return Err(ChangeRefused::NotPromotable { node: *node });
                }
                Ok(())
            }
            Change::Remove { node } => {
                let m = seat(*node)?;
                let voters = members.iter().filter(|m| m.seat == Seat::Voter).count();
                if m.seat == Seat::Voter && voters <= 1 {
                    return Err(ChangeRefused::LastVoter { node: *node });
                }
                Ok(())
            }
            Change::Move { node, .. } => seat(*node).map(|_| ()),
        }?;
        enough_held(&changed(members, change), |_, m| !m.vacant)
    }

    /// The newest epoch's members as they would be after `change`, if it can
    /// be made now (see [`Membership::check`]).
    pub fn after(&self, change: &Change) -> Option<Vec<Member>> {
        let commit = self.latest_start();
        self.check(change, commit)
            .ok()
            .map(|()| changed(self.latest(), change))
    }

    /// True if the change would change nothing: it is already in effect (an
    /// operator's request that was retried, or decided twice).
    pub fn already(&self, change: &Change) -> bool {
        let members = self.latest();
        match change {
            Change::Add { addr } => members
                .iter()
                .any(|m| m.listens() && m.addr.as_deref() == Some(addr.as_str())),
            Change::Promote { node } => members.get(*node).is_some_and(|m| m.seat == Seat::Voter),
            Change::Remove { node } => members.get(*node).is_some_and(|m| m.seat == Seat::Removed),
            Change::Move { node, addr } => members
                .get(*node)
                .is_some_and(|m| m.addr.as_deref() == Some(addr.as_str())),
        }
    }

    /// Applies an operator's change decided in `slot`: a new epoch from
    /// `slot + window + 1`. Returns false, changing nothing, if it is already in
    /// effect or refused (see [`Membership::check`]: every replica applies the
    /// same rules to the same decided log, so all agree on what took effect).
    pub fn apply(&mut self, slot: Slot, window: u64, change: &Change) -> bool {
        if self.already(change) || self.check(change, slot).is_err() {
            return false;
        }
        let members = changed(self.latest(), change);
        self.push_epoch(slot, window, members);
        true
    }
}

/// Refuses (`WouldStall`) unless the voter seats of `members` that `held`
/// says a process holds (and, for a leader's check, that it hears) make a
/// majority.
pub fn enough_held(
    members: &[Member],
    held: impl Fn(NodeId, &Member) -> bool,
) -> Result<(), ChangeRefused> {
    let voters = members.iter().filter(|m| m.seat == Seat::Voter).count();
    let held = members
        .iter()
        .enumerate()
        .filter(|&(n, m)| m.seat == Seat::Voter && !m.vacant && held(n, m))
        .count();
    if held < majority(members) {
        return Err(ChangeRefused::WouldStall { voters, held });
    }
    Ok(())
}

/// `members` with `change` made (a seat it names must exist).
fn changed(members: &[Member], change: &Change) -> Vec<Member> {
    let mut members = members.to_vec();
    match change {
        Change::Add { addr } => members.push(Member {
            incarnation: 0,
            nonce: 0,
            seat: Seat::Learner,
            vacant: true,
            addr: Some(addr.clone()),
        }),
        Change::Promote { node } => members[*node].seat = Seat::Voter,
        Change::Remove { node } => members[*node].seat = Seat::Removed,
        Change::Move { node, addr } => {
            let m = &mut members[*node];
            m.incarnation = m.incarnation.saturating_add(1);
            m.nonce = 0;
            m.vacant = true;
            m.addr = Some(addr.clone());
        }
    }
    members
}
