//! Read-index at the leader: a read waits for one heartbeat round acknowledged by
//! a majority, then is served at the commit index it was asked at.

use crate::core::{ReadOutcome, Replica, Role};
use crate::types::Slot;

/// A read-index request waiting for a heartbeat round to be acknowledged.
#[derive(Debug)]
pub(super) struct PendingRead {
    pub(super) id: u64,
    pub(super) index: Slot,
    pub(super) round: Option<u64>,
}

impl Replica {
    /// Read-index: asks for confirmation that this replica still leads. The answer
    /// comes in a later [`super::Ready::reads`].
    pub fn read_index(&mut self, id: u64) {
        let (commit, hint) = (self.commit, self.leader());
        match &mut self.role {
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

    /// Answers reads whose heartbeat round a majority has acknowledged.
    pub(super) fn check_reads(&mut self) {
        let (me, majority) = (self.cfg.id, self.cfg.majority());
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.reads.is_empty() {
            return;
        }
        let mut out = Vec::new();
        l.reads.retain(|r| match r.round {
            Some(round) => {
                let acks = l
                    .acked_round
                    .iter()
                    .enumerate()
                    .filter(|&(p, &a)| p == me || a >= round)
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
        self.ready.reads.extend(out);
    }
}
