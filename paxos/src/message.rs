//! Messages exchanged between replicas of one group.
//!
//! Every message is one-way: a reply is just another message. The transport may drop,
//! delay, duplicate or reorder them; the protocol core copes with all of that.

use crate::membership::Membership;
use crate::types::{Ballot, Command, Entry, NodeId, Slot};
use serde::{Deserialize, Serialize};

/// A message with its sender and recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sending replica.
    pub from: NodeId,
    /// Receiving replica.
    pub to: NodeId,
    /// The message itself.
    pub msg: Message,
}

/// What an acceptor reports about one instance in a [`Message::Promise`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromisedSlot {
    /// The instance.
    pub slot: Slot,
    /// The ballot of the acceptor's highest accepted proposal in this instance.
    pub ballot: Ballot,
    /// The accepted (or decided) value.
    pub entry: Entry,
    /// True if the acceptor knows this value is chosen.
    pub decided: bool,
}

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a: a candidate asks for promises over every instance from `from_slot` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// First instance the candidate does not know to be decided.
        from_slot: Slot,
    },
    /// Phase 1b: the acceptor promised `ballot` and reports what it accepted.
    Promise {
        /// The promised ballot.
        ballot: Ballot,
        /// Accepted values of every instance at or after the prepare's `from_slot`.
        accepted: Vec<PromisedSlot>,
        /// Everything below this instance is forgotten at the acceptor (already
        /// decided and done by every replica).
        floor: Slot,
        /// The acceptor's incarnation.
        incarnation: u64,
    },
    /// Phase 2a: the leader asks acceptors to accept `entry` in `slot`.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The instance.
        slot: Slot,
        /// The proposed value.
        entry: Entry,
        /// Piggybacked decision: every instance below this is decided at the leader.
        commit: Slot,
    },
    /// Phase 2b: the acceptor accepted `slot` at `ballot`.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The instance.
        slot: Slot,
        /// The acceptor's incarnation.
        incarnation: u64,
    },
    /// The receiver's ballot is stale: the sender has promised `promised`.
    Reject {
        /// The ballot the rejected message carried.
        ballot: Ballot,
        /// The higher ballot the sender has promised.
        promised: Ballot,
    },
    /// Leader liveness, decision watermark and `done` gossip.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// Every instance below this is decided at the leader.
        commit: Slot,
        /// Heartbeat round, echoed in the ack (read-index confirmation and the
        /// leader lease): every heartbeat a leader sends is a new round.
        round: u64,
        /// The leader's knowledge of every replica's `done` watermark.
        done: Vec<Slot>,
    },
    /// A follower's answer to a heartbeat.
    HeartbeatAck {
        /// The ballot of the heartbeat answered.
        ballot: Ballot,
        /// The heartbeat round answered.
        round: u64,
        /// The follower's own decided watermark (all below are decided there).
        commit: Slot,
        /// The follower's `done` watermark (all below are done there).
        done: Slot,
        /// The follower's incarnation; `None` while it is recovering a lost disk.
        incarnation: Option<u64>,
    },
    /// Decided values sent to a replica that is behind (catch-up).
    Decided {
        /// Decided instances, ascending.
        entries: Vec<(Slot, Entry)>,
        /// Below this the sender has forgotten; a replica whose watermark is lower
        /// needs a snapshot from the application.
        floor: Slot,
    },
    /// A follower hands client commands to the leader.
    Forward {
        /// Commands to batch into the log.
        #[serde(with = "crate::types::commands_as_bytes")]
        commands: Vec<Command>,
    },
    /// A replica that lost its disk asks the leader to decide its reincarnation.
    Reincarnate {
        /// The recovering process's random number.
        nonce: u64,
        /// The sender's newest known incarnation (the one it replaces).
        replaces: u64,
    },
    /// A follower hands a 6.824-style `start(slot, entry)` to the leader.
    ForwardStart {
        /// The instance asked for.
        slot: Slot,
        /// The proposed value.
        entry: Entry,
    },
    /// The membership epochs the sender knows (every one decided), sent to a
    /// replica that asks to be reincarnated although its request is decided: it
    /// lost the record of it (a snapshot installed, then a crash before the
    /// membership record was durable) and no later decision would tell it again.
    Membership {
        /// The sender's epochs.
        membership: Membership,
        /// The sender's commit watermark: the epochs cover every reincarnation
        /// decided below it.
        commit: Slot,
    },
    /// A replica whose membership may be stale asks for its peers' (see
    /// `Replica::doubt_membership`).
    MembershipAsk,
    /// A follower that stopped hearing the leader asks whether its peers would
    /// take part in an election (`core/prevote.rs`); it promises nothing.
    PreVote {
        /// Identifies the attempt; echoed by grants.
        attempt: u64,
    },
    /// The sender hears no live leader and would answer the asker's Prepare.
    PreVoteGrant {
        /// The attempt granted.
        attempt: u64,
    },
}

impl Message {
    /// A short name of the message kind, for metrics, logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Reject { .. } => "reject",
            Message::Heartbeat { .. } => "heartbeat",
            Message::HeartbeatAck { .. } => "heartbeat_ack",
            Message::Decided { .. } => "decided",
            Message::Forward { .. } => "forward",
            Message::ForwardStart { .. } => "forward_start",
            Message::Reincarnate { .. } => "reincarnate",
            Message::Membership { .. } => "membership",
            Message::MembershipAsk => "membership_ask",
            Message::PreVote { .. } => "pre_vote",
            Message::PreVoteGrant { .. } => "pre_vote_grant",
        }
    }
}
