//! The protocol's vocabulary: replica ids, instance numbers, ballots and log entries.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a replica within its group (`0..n`), the `--me` of the daemons.
pub type NodeId = usize;

/// Number of a Paxos instance (a log position). Instances start at 0.
pub type Slot = u64;

/// An opaque application command. The log never looks inside.
pub type Command = Vec<u8>;

/// A proposal number: ordered first by `round`, then by the proposing node, so two
/// nodes never use the same ballot. `Ballot::ZERO` is below every real ballot.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Monotonic round number; a candidate picks one above every round it has seen.
    pub round: u64,
    /// The replica that owns this ballot.
    pub node: NodeId,
}

impl Ballot {
    /// The ballot every acceptor has implicitly promised at birth.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    /// Creates a ballot.
    pub fn new(round: u64, node: NodeId) -> Self {
        Ballot { round, node }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

/// The value of one instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Entry {
    /// Fills a gap left by a failed leader; the application skips it.
    Noop,
    /// One or more application commands, applied in order. A leader batches every
    /// command that is waiting when it opens an instance.
    Batch(Vec<Command>),
}

impl Entry {
    /// An instance holding a single command.
    pub fn single(cmd: Command) -> Self {
        Entry::Batch(vec![cmd])
    }

    /// The commands of this entry, in order (none for a no-op).
    pub fn commands(&self) -> &[Command] {
        match self {
            Entry::Noop => &[],
            Entry::Batch(cmds) => cmds,
        }
    }

    /// Approximate encoded size in bytes, used to bound batches and messages.
    pub fn size_hint(&self) -> usize {
        8 + self.commands().iter().map(|c| c.len() + 4).sum::<usize>()
    }
}
