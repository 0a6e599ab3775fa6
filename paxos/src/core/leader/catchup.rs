//! A follower's heartbeat ack at the leader: liveness, read confirmations, done
//! watermarks, and catching a lagging follower up with decided instances.

use crate::core::{Replica, Role};
use crate::message::Message;
use crate::types::{Ballot, NodeId, Slot};

/// A catch-up larger than `catchup_bytes / LARGE_CATCHUP_PART` (64 KiB by
/// default) is sent one at a time per follower (see `on_heartbeat_ack`).
const LARGE_CATCHUP_PART: usize = 64;

impl Replica {
    pub(in crate::core) fn on_heartbeat_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        round: u64,
        commit: Slot,
        done: Slot,
        incarnation: Option<u64>,
    ) {
        let (now, floor, budget) = (self.now, self.floor, self.cfg.catchup_bytes);
        // Only a voter of the current epoch confirms leadership for reads.
        let confirms = incarnation.is_some_and(|k| self.vote_counts(self.commit, from, k));
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.ballot != ballot {
            return;
        }
        l.last_heard[from] = now;
        l.heard_incarnation[from] = incarnation;
        l.peer_commit[from] = commit;
        // A round this leader never sent confirms nothing (`bounds.rs`).
        let confirmed = confirms && round <= l.round && round > l.acked_round[from];
        if confirmed {
            l.acked_round[from] = round;
        }
        self.done[from] = self.done[from].max(done);
        // Catch a lagging follower up. A small catch-up goes with every ack (the
        // usual few instances a follower misses when an Accept is lost); a large
        // one, one at a time: the next once the follower acknowledges having
        // learned it, or after its resend time (it may have been lost).
        let (sent_to, resend_at) = l.catchup[from];
        let in_flight = commit < sent_to && now < resend_at;
        if commit < self.commit && !in_flight {
            let mut entries = Vec::new();
            let mut bytes = 0;
            for (&slot, entry) in self.decided.range(commit..self.commit) {
                if bytes > budget {
                    break;
                }
                bytes += entry.size_hint();
                entries.push((slot, entry.clone()));
            }
            l.catchup[from] = match entries.last() {
                Some(&(last, _)) if bytes > budget / LARGE_CATCHUP_PART => {
                    (last + 1, now + self.cfg.resend_ticks(bytes))
                }
                _ => (0, 0),
            };
            self.send(from, Message::Decided { entries, floor });
        }
        if confirmed {
            self.extend_lease();
        }
        self.forget();
        self.check_reads();
    }
}
