//! The crate's error type.

use crate::storage::StorageError;
use crate::types::NodeId;

/// Errors a caller of [`crate::node::PaxosNode`] can see.
#[derive(Debug, thiserror::Error)]
pub enum PaxosError {
    /// The settings are inconsistent; fix them and start again.
    #[error("invalid paxos configuration: {0}")]
    Config(String),
    /// Storage failed; the replica stopped voting and must be restarted (and, if the
    /// log is corrupt, recovered from its peers).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// This replica does not lead; retry at `leader` if known.
    #[error("not the leader (leader: {leader:?}); retry at the leader")]
    NotLeader {
        /// The leader this replica knows of.
        leader: Option<NodeId>,
    },
    /// The command is above [`crate::core::MAX_COMMAND_BYTES`]: no log record
    /// could hold it. Do not retry.
    #[error("command of {bytes} bytes is over the {limit}-byte limit of one log record")]
    CommandTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The replica has stopped (shut down or failed); no further progress here.
    #[error("the paxos replica has stopped")]
    Stopped,
    /// A network operation failed.
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
}
