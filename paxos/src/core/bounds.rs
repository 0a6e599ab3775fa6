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
//! 3. **Accepts and promises** for, or reporting, an instance more than
//!    [`SLOT_REACH`] above the receiver's commit watermark are ignored (an accepted
//!    one would make every later promise of this replica one to ignore).
//!    Promises reporting an instance more than [`SLOT_REACH`] above the
//!    candidate's commit watermark are ignored whole: the new leader would fill the
//!    gap up to it with no-ops. A promise is dropped whole, never trimmed: the
//!    values it reports must all be re-proposed if any instance after them is.
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

use crate::message::Message;

/// A ballot round more than this far above every round a replica has seen is
/// not believed: 2^32 elections is centuries of leader changes.
pub const ROUND_REACH: u64 = 1 << 32;

/// A `Promise` reporting an instance more than this far above the candidate's
/// commit watermark is ignored: no group runs 2^32 instances ahead of a replica
/// that could still lead without a snapshot.
pub const SLOT_REACH: u64 = 1 << 32;

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
        | Message::ForwardStart { .. }
        | Message::Membership { .. }
        | Message::MembershipAsk
        | Message::PreVote { .. }
        | Message::PreVoteGrant { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Ballot;

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
