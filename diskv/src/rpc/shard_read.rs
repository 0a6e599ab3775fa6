//! Reading a whole shard for a backup ([`super::KvRpc::read_shard`]): one
//! linearizable snapshot of the shard, taken at the group's leader while the
//! group is at a given configuration, handed out in pages of bounded size.

use serde::{Deserialize, Serialize};

/// Most bytes of keys and values one [`ShardPage`] carries (a page holds at least
/// one pair, so one pair above it, up to 16 MiB and 1 KiB, comes alone).
pub const PAGE_BYTES: usize = 4 << 20;

/// Which page of a shard a [`super::KvRpc::read_shard`] call asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardRead {
    /// Snapshot `shard` now and answer its first page. Served only by the leader,
    /// by a linearizable read (it reflects every write acknowledged before it),
    /// and only while the group has applied exactly configuration `config` and
    /// serves the shard in it: a group past `config` answers
    /// [`crate::KvError::WrongGroup`] with its newer configuration, one not yet
    /// at `config` (or still pulling the shard) [`crate::KvError::ShardMoving`].
    Start {
        /// The configuration the backup reads at.
        config: u64,
        /// The shard.
        shard: usize,
    },
    /// The pairs after `after` in snapshot `snapshot`, taken by an earlier
    /// `Start` at this same replica. A snapshot no longer held (idle for a
    /// minute, pushed out by newer ones, or the replica restarted) is
    /// [`crate::KvError::Unavailable`]: read the shard again from `Start`.
    Next {
        /// The snapshot's id, from the first page.
        snapshot: u64,
        /// The last key of the page before.
        after: String,
    },
}

/// One page of a shard's snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPage {
    /// The snapshot the page belongs to (ask for the next page with it).
    pub snapshot: u64,
    /// Keys in the whole snapshot.
    pub keys: u64,
    /// The page's pairs, sorted by key.
    pub pairs: Vec<(String, String)>,
    /// True on the snapshot's last page.
    pub last: bool,
}
