//! How far a replica believes the numbers its peers send (issue #18, B1).
//!
//! Slots, floors, commit watermarks and ballot rounds arrive from the network. A
//! forged message, or a buggy peer, can set any of them to anything, up to
//! `u64::MAX`. A replica never lets such a number drive a loop, an allocation or a
//! wait by itself; it checks it against what it knows:
//!
//! 1. **Commit watermarks** (`Heartbeat`, `Accept`) are walked over the instances
//!    this replica accepted (`Replica::apply_leader_commit`), never slot by slot.
//! 2. **Floors** (`Decided`) ask for a snapshot only up to the highest commit
//!    watermark a leader announced here: a replica forgets only decided instances,
//!    so an honest floor is never above its sender's commit, which the receiver
//!    heard in the heartbeat its catch-up answers.
//! 3. **Recovered instances** (`Promise`): a new leader recovers the reported
//!    instances only up to the first run of [`CoreConfig::window`] instances nobody
//!    reported ([`recovery_end`]); an honest group cannot have accepted anything
//!    beyond it.
//! 4. **Ballot rounds** more than [`ROUND_REACH`] above every round this replica
//!    has seen are ignored ([`plausible_rounds`]), so no ballot can pin an acceptor's
//!    promise at `u64::MAX` (which would stop every election for good).
//! 5. **Read-index rounds**: a `HeartbeatAck` for a round the leader never sent
//!    confirms no read.
//! 6. **Forwarded starts** more than [`START_REACH`] instances above the leader's
//!    commit watermark are ignored: the leader would fill the gap with no-ops.
//! 7. Everything else adds to slots with saturating arithmetic.
//!
//! Ignoring or capping a message is always safe in Paxos (the network may drop
//! it); each bound is far above what an honest group produces. A peer that forges
//! several consistent messages under the current leader's ballot can still stall
//! a follower: authenticating peers is the transport's job, not the core's.
//!
//! [`CoreConfig::window`]: super::CoreConfig::window

use crate::message::Message;
use crate::types::Slot;

/// A ballot round more than this far above every round a replica has seen is
/// not believed: 2^32 elections is centuries of leader changes.
pub const ROUND_REACH: u64 = 1 << 32;

/// A `ForwardStart` more than this many instances above the leader's commit
/// watermark is ignored.
pub const START_REACH: u64 = 1 << 16;

/// True if every ballot round in `msg` is within [`ROUND_REACH`] of `max_round`.
pub(super) fn plausible_rounds(msg: &Message, max_round: u64) -> bool {
    let limit = max_round.saturating_add(ROUND_REACH);
    let ok = |round: u64| round <= limit;
    match msg {
        Message::Prepare { ballot, .. }
        | Message::Promise { ballot, .. }
        | Message::Accept { ballot, .. }
        | Message::Accepted { ballot, .. }
        | Message::Heartbeat { ballot, .. }
        | Message::HeartbeatAck { ballot, .. } => ok(ballot.round),
        Message::Reject { ballot, promised } => ok(ballot.round) && ok(promised.round),
        Message::Decided { .. }
        | Message::Forward { .. }
        | Message::Reincarnate { .. }
        | Message::ForwardStart { .. } => true,
    }
}

/// The end (exclusive) of the log suffix a new leader recovers from `start`, given
/// the instances its promise quorum reported, ascending: up to the first run of
/// `window` instances nobody reported.
///
/// No leader opens instance `j` before every instance `<= j - window` is decided,
/// and a promise quorum reports every decided instance from `start` on; so every
/// instance an honest group accepted lies below `end + window` once the scan has
/// passed the decided prefix. A report beyond that gap is bogus, and filling the
/// gap up to it with no-ops could take forever.
pub(super) fn recovery_end(start: Slot, reported: impl Iterator<Item = Slot>, window: u64) -> Slot {
    let mut end = start;
    for slot in reported.skip_while(|&s| s < start) {
        if slot >= end.saturating_add(window) {
            tracing::warn!(
                slot,
                recovered_up_to = end,
                window,
                "a promise reported an instance beyond any leader's window; ignored"
            );
            break;
        }
        end = slot.saturating_add(1);
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Ballot;

    #[test]
    fn recovery_stops_at_the_first_gap_of_a_whole_window() {
        assert_eq!(recovery_end(5, [].into_iter(), 4), 5);
        assert_eq!(recovery_end(5, [1, 5, 6, 8].into_iter(), 4), 9);
        assert_eq!(recovery_end(5, [5, 8, 11, 12].into_iter(), 4), 13);
        assert_eq!(recovery_end(5, [5, 10, 11].into_iter(), 4), 6);
        assert_eq!(recovery_end(0, [0, u64::MAX].into_iter(), 64), 1);
        assert_eq!(
            recovery_end(u64::MAX - 1, [u64::MAX - 1, u64::MAX].into_iter(), 64),
            u64::MAX
        );
    }

    #[test]
    fn rounds_far_above_every_round_seen_are_not_believed() {
        let hb = |round| Message::Heartbeat {
            ballot: Ballot::new(round, 0),
            commit: 0,
            round: 0,
            done: vec![],
        };
        assert!(plausible_rounds(&hb(7), 0));
        assert!(plausible_rounds(&hb(ROUND_REACH + 3), 3));
        assert!(!plausible_rounds(&hb(ROUND_REACH + 4), 3));
        assert!(plausible_rounds(&hb(u64::MAX), u64::MAX - 1));
        let reject = Message::Reject {
            ballot: Ballot::new(1, 0),
            promised: Ballot::new(u64::MAX, 2),
        };
        assert!(!plausible_rounds(&reject, 1));
    }
}
