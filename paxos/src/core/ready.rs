//! What the core hands to its driver after a step.

use crate::message::Envelope;
use crate::record::Record;
use crate::types::{Ballot, Entry, NodeId, Slot};

/// The outcome of a read-index request ([`crate::core::Replica::read_index`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Leadership was confirmed by a majority after the request arrived: the read may
    /// be served once the state machine has applied every instance below `index`.
    Ready {
        /// The caller's request id.
        id: u64,
        /// The commit watermark at the time of the request.
        index: Slot,
    },
    /// This replica is not a leader able to serve reads; try `leader` if known.
    NotLeader {
        /// The caller's request id.
        id: u64,
        /// The leader this replica knows of.
        leader: Option<NodeId>,
    },
}

/// Notable changes for the application and for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The replica follows a new leader (or leads itself), or lost its leader.
    LeaderChanged {
        /// The new leader, if any.
        leader: Option<NodeId>,
        /// Its ballot.
        ballot: Ballot,
    },
    /// The group has forgotten instances this replica still needs: the application
    /// must install a snapshot taken at or after `floor` from another replica.
    SnapshotNeeded {
        /// The sender's forgotten watermark.
        floor: Slot,
    },
    /// The membership changed (a change or reincarnation decided, or a peer's
    /// membership taken in): seats, voters or addresses may differ.
    MembershipChanged,
}

/// Everything the driver must do after a step (see the [module docs](super) for
/// the order): send `messages`, append `records` (syncing now if `sync`), send
/// `after_sync` once every record appended so far is durable, apply `committed`
/// and answer `reads`.
#[derive(Debug, Default)]
pub struct Ready {
    /// Records to append, after every record of earlier Readies.
    pub records: Vec<Record>,
    /// True if the records appended so far must be made durable now: a message
    /// below waits for them, or a record reveals acceptor state. False: they may be
    /// synced lazily (they only speed up restarts).
    pub sync: bool,
    /// Messages that may leave at once (some may be to this replica).
    pub messages: Vec<Envelope>,
    /// Messages that may leave only once every record appended so far, this
    /// Ready's included, is durable.
    pub after_sync: Vec<Envelope>,
    /// Newly decided instances, contiguous and in order, for the state machine.
    pub committed: Vec<(Slot, Entry)>,
    /// Answers to read-index requests.
    pub reads: Vec<ReadOutcome>,
    /// Storage may delete records of instances below this.
    pub compact_below: Option<Slot>,
    /// Notable changes.
    pub events: Vec<Event>,
}

impl Ready {
    /// Every message of this Ready, whatever its durability gate (tests, tracing).
    pub fn all_messages(&self) -> impl Iterator<Item = &Envelope> {
        self.messages.iter().chain(&self.after_sync)
    }

    /// True if there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.messages.is_empty()
            && self.after_sync.is_empty()
            && self.committed.is_empty()
            && self.reads.is_empty()
            && self.compact_below.is_none()
            && self.events.is_empty()
    }
}
