//! The protocol's vocabulary: replica ids, instance numbers, ballots and log entries.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a replica within its group (`0..n`), the `--me` of the daemons.
pub type NodeId = usize;

/// Number of a Paxos instance (a log position). Instances start at 0.
pub type Slot = u64;

/// An opaque application command. The log never looks inside. Reference-counted:
/// the leader's proposal, the Accept to every replica (itself included), the log
/// record and the accepted value all share one allocation (a heaptrack profile of
/// a bulk load found them as separate copies, twice the log window in memory).
/// On the wire and on disk it is the same bytes as a `Vec<u8>` was.
pub type Command = bytes::Bytes;

/// A proposal number: ordered by `round`, then by the proposer's incarnation, then by
/// the proposing node, so no two proposers ever use the same ballot, not even two
/// incarnations of one replica (one that lost its disk does not know which ballots
/// its previous incarnation used). `Ballot::ZERO` is below every real ballot.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Monotonic round number; a candidate picks one above every round it has seen.
    pub round: u64,
    /// The acceptor incarnation of the proposer (see `crate::membership`).
    pub incarnation: u64,
    /// The replica that owns this ballot.
    pub node: NodeId,
}

impl Ballot {
    /// The ballot every acceptor has implicitly promised at birth.
    pub const ZERO: Ballot = Ballot {
        round: 0,
        incarnation: 0,
        node: 0,
    };

    /// Creates a ballot of a first incarnation.
    pub fn new(round: u64, node: NodeId) -> Self {
        Ballot {
            round,
            incarnation: 0,
            node,
        }
    }

    /// Creates a ballot of incarnation `incarnation` of `node`.
    pub fn of(round: u64, incarnation: u64, node: NodeId) -> Self {
        Ballot {
            round,
            incarnation,
            node,
        }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.incarnation == 0 {
            write!(f, "{}.{}", self.round, self.node)
        } else {
            write!(f, "{}.{}@{}", self.round, self.node, self.incarnation)
        }
    }
}

/// The value of one instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Entry {
    /// Fills a gap left by a failed leader; the application skips it.
    Noop,
    /// One or more application commands, applied in order. A leader batches every
    /// command that is waiting when it opens an instance.
    Batch(#[serde(with = "commands_as_bytes")] Vec<Command>),
    /// A reincarnation as logs written before `Reincarnate` named the incarnation
    /// it replaces: applied as if it named the current one. Never proposed now;
    /// kept so that those logs still read.
    LegacyReincarnate {
        /// The replica index.
        node: NodeId,
        /// The recovering process's random number.
        nonce: u64,
    },
    /// Replica `node` lost its disk and comes back as a new acceptor incarnation;
    /// `nonce` lets it recognise its own request (see `crate::membership`). It takes
    /// effect only if `node`'s newest incarnation is still `replaces` when it is
    /// applied: a request delayed in the network, from a process that has since
    /// lost its disk again and been reincarnated, must not disown the live one.
    Reincarnate {
        /// The replica index.
        node: NodeId,
        /// The recovering process's random number.
        nonce: u64,
        /// The incarnation this one replaces, as the requester last saw it.
        replaces: u64,
    },
    /// An operator's membership change (see `crate::membership`).
    Change(crate::membership::Change),
}

/// A decided reincarnation, whichever way it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reincarnation {
    /// The replica index.
    pub node: NodeId,
    /// The recovering process's random number.
    pub nonce: u64,
    /// The incarnation it replaces (`None`: written before requests said so).
    pub replaces: Option<u64>,
}

impl Entry {
    /// An instance holding a single command.
    pub fn single(cmd: impl Into<Command>) -> Self {
        Entry::batch([cmd.into()])
    }

    /// An instance holding `cmds`, in order.
    pub fn batch<C: Into<Command>>(cmds: impl IntoIterator<Item = C>) -> Self {
        Entry::Batch(cmds.into_iter().map(Into::into).collect())
    }

    /// The commands of this entry, in order (none for a no-op).
    pub fn commands(&self) -> &[Command] {
        match self {
            Entry::Batch(cmds) => cmds,
            Entry::Noop
            | Entry::LegacyReincarnate { .. }
            | Entry::Reincarnate { .. }
            | Entry::Change(_) => &[],
        }
    }

    /// The reincarnation this entry decides, if it is one.
    pub fn reincarnation(&self) -> Option<Reincarnation> {
        match *self {
            Entry::LegacyReincarnate { node, nonce } => Some(Reincarnation {
                node,
                nonce,
                replaces: None,
            }),
            Entry::Reincarnate {
                node,
                nonce,
                replaces,
            } => Some(Reincarnation {
                node,
                nonce,
                replaces: Some(replaces),
            }),
            Entry::Noop | Entry::Batch(_) | Entry::Change(_) => None,
        }
    }

    /// The membership change this entry decides, if it is one.
    pub fn change(&self) -> Option<&crate::membership::Change> {
        match self {
            Entry::Change(c) => Some(c),
            _ => None,
        }
    }

    /// Approximate encoded size in bytes, used to bound batches and messages.
    pub fn size_hint(&self) -> usize {
        8 + self.commands().iter().map(|c| c.len() + 4).sum::<usize>()
    }
}

/// Commands as byte strings on the wire and on disk: each one copied whole, not
/// visited byte by byte as a generic sequence of `u8` (profiling showed followers
/// spending most of their time there). With postcard both forms encode the same
/// bytes (a length, then the bytes), so logs written before read the same.
pub(crate) mod commands_as_bytes {
    use super::Command;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(commands: &[Command], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(commands.iter().map(|c| Bytes::new(c)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Command>, D::Error> {
        let bufs = Vec::<ByteBuf>::deserialize(d)?;
        Ok(bufs
            .into_iter()
            .map(|b| Command::from(b.into_vec()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Entry` as it was declared before commands were encoded as byte strings.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum OldEntry {
        Noop,
        Batch(Vec<Vec<u8>>),
        Reincarnate { node: NodeId, nonce: u64 },
    }

    #[test]
    fn commands_encode_as_before_so_old_logs_read_the_same() {
        let old_commands = vec![b"put k v".to_vec(), Vec::new(), vec![0u8, 255, 7]];
        let commands: Vec<Command> = old_commands.iter().cloned().map(Command::from).collect();
        let new = postcard::to_allocvec(&Entry::Batch(commands.clone())).unwrap();
        let old = postcard::to_allocvec(&OldEntry::Batch(old_commands)).unwrap();
        assert_eq!(new, old);
        let back: Entry = postcard::from_bytes(&old).unwrap();
        assert_eq!(back, Entry::Batch(commands.clone()));
        let forward = crate::Message::Forward {
            commands: commands.clone(),
        };
        let bytes = postcard::to_allocvec(&forward).unwrap();
        match postcard::from_bytes::<crate::Message>(&bytes).unwrap() {
            crate::Message::Forward { commands: back } => assert_eq!(back, commands),
            other => panic!("read back as {other:?}"),
        }
        let r = Entry::LegacyReincarnate { node: 2, nonce: 9 };
        let old_r = OldEntry::Reincarnate { node: 2, nonce: 9 };
        assert_eq!(
            postcard::to_allocvec(&r).unwrap(),
            postcard::to_allocvec(&old_r).unwrap()
        );
    }
}
