//! How a replica is started: the flags of `diskv server`, as the modules that open
//! its directory, recover it and reconfigure it read them.

use std::path::PathBuf;

/// How a replica is started (the flags of `diskv server`).
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The replica group.
    pub gid: u64,
    /// Shardmaster addresses.
    pub masters: Vec<String>,
    /// Addresses of every replica of the group.
    pub peers: Vec<String>,
    /// This replica's index in `peers`.
    pub me: usize,
    /// Where everything of this replica lives.
    pub dir: PathBuf,
    /// The replica has run before (an empty `dir` then means a lost disk).
    pub restart: bool,
    /// Ask the shardmaster to Join this group once up.
    pub join: bool,
    /// Drop and discard requests like the 6.824 unreliable network.
    pub unreliable: bool,
    /// Shard count, if known (else asked of the shardmaster at first start).
    pub nshards: Option<usize>,
}
