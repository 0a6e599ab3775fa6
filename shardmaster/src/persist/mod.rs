//! Everything a shardmaster replica keeps on disk, under its `--dir`:
//!
//! ```text
//! DIR/lock      held (flock) while a server uses the directory
//! DIR/cluster   the cluster's shape, written once at first start (text), and
//!               `recovering NONCE` while the replica recovers a lost disk
//! DIR/log/      the Paxos log (paxos::host)
//! DIR/state     the latest checkpoint: every configuration, the duplicate table and
//!               the log instance it covers (binary, checksummed)
//! ```
//!
//! **The log is the durability point.** An operation is acknowledged once its log
//! instance is durable on a majority; the checkpoint only lets the log forget its
//! prefix. Every file is replaced atomically ([`paxos::fs::durable::replace`]:
//! written to `NAME.tmp`, fsynced, renamed over `NAME`, and the directory fsynced).
//! A crash at any instant leaves either the old or the new file, and the log holds
//! every instance after the checkpoint's.
//!
//! Every function takes the [`FileSystem`] the directory lives on: the machine's
//! ([`paxos::fs::OsFs`]) or a simulated disk.
//!
//! The checkpoint's format is `"DSM1"`, the CRC-32C of the payload (u32 LE), the
//! payload's length (u64 LE) and the payload, [`Checkpoint`] in postcard. A file
//! that fails any check is reported as corrupt and the replica refuses to start.
//!
//! One file per job: [`lock`] (the directory lock), [`cluster`] (the cluster
//! record), [`checkpoint`] (the checkpoint file); this module names the files and
//! holds what they share.

pub mod checkpoint;
pub mod cluster;
pub mod lock;

pub use checkpoint::{
    decode_checkpoint, encode_checkpoint, load_checkpoint, save_checkpoint,
    save_encoded_checkpoint, Checkpoint, CheckpointRef,
};
pub use cluster::{check_cluster, open_cluster, read_cluster, write_cluster, ClusterRecord};
pub use lock::{lock_dir, DirLock};

use crate::error::ShardmasterError;
use paxos::fs::{durable, FileSystem};
use std::path::{Path, PathBuf};

/// Name of the checkpoint file.
pub const STATE_FILE: &str = "state";
/// Name of the cluster record.
pub const CLUSTER_FILE: &str = "cluster";
/// Name of the Paxos log folder.
pub const LOG_DIR: &str = "log";
/// Name of the lock file.
pub const LOCK_FILE: &str = "lock";

/// The Paxos log folder of `dir`.
pub fn log_dir(dir: &Path) -> PathBuf {
    dir.join(LOG_DIR)
}

fn storage_err(action: &str, path: &Path, e: impl std::fmt::Display) -> ShardmasterError {
    ShardmasterError::Storage {
        action: action.into(),
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> ShardmasterError {
    ShardmasterError::CorruptFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably.
fn write_atomic(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), ShardmasterError> {
    let path = dir.join(name);
    durable::replace(fs, &path, bytes).map_err(|e| storage_err("replace", &path, e))
}

/// Reads `path`, `None` if it does not exist.
fn read_optional(fs: &dyn FileSystem, path: &Path) -> Result<Option<Vec<u8>>, ShardmasterError> {
    durable::read_if_exists(fs, path).map_err(|e| storage_err("read", path, e))
}
