//! Backups of a whole cluster (`diskv admin backup DIR`) and loading one into an
//! empty cluster (`diskv restore DIR`), as etcd's `snapshot save` and
//! `snapshot restore` do for etcd.
//!
//! A backup directory holds one file per shard ([`shard_file`]) and, written
//! last, a [`manifest::Manifest`]: the format, the shard count, the
//! configuration every shard was read at, the time, and per shard its owner,
//! key count, byte count and the crc32c of its file. A directory without a
//! manifest is a backup that never finished.
//!
//! **What a backup holds.** [`take()`] picks the latest configuration N and reads
//! every shard from its owner in N, in a linearizable read at the owner's leader
//! while the owner is at N: each shard's file is that shard exactly as it was at
//! one moment, with every write acknowledged before that moment and none after.
//! Shards are read one after another, so different shards are read at different
//! moments between the manifest's start and finish times: a backup is one point
//! in time for the whole cluster only if nothing writes while it runs. If a
//! group has moved past N, the whole backup starts again at the latest
//! configuration (a few times, then it gives up with an error).
//!
//! **Restoring.** [`restore::verify`] checks the manifest and every shard file
//! (size, checksum, framing, key count, each key in its shard) before anything
//! is written; [`restore::load`] then writes every pair through Clerks, so each
//! put is applied exactly once, into a cluster that must be empty unless forced.

pub mod manifest;
pub mod restore;
pub mod shard_file;
pub mod take;

pub use manifest::{Manifest, ShardEntry, FORMAT, MANIFEST};

/// The file a backup holds locked (`flock`) in its directory while it writes
/// there; the lock goes with the process, so a killed backup leaves none behind.
pub const LOCK: &str = "LOCK";
pub use restore::{load, verify, RestoreOptions};
pub use take::{take, BackupOptions};

/// Milliseconds since the Unix epoch, as the manifest records times.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
