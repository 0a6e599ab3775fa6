//! The crate's error type for local state (disk) problems. Errors sent to clients
//! are [`crate::op::KvError`].

use std::path::PathBuf;

/// A problem with this replica's own files.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An I/O call failed (disk full, permissions, device error).
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file failed its checksum or did not decode: this replica's disk cannot be
    /// trusted; recover it from its peers (restart with an empty --dir and --restart).
    #[error("corrupt state file {path}: {reason}; move the directory away and restart with --restart to recover from peers")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The directory belongs to another cluster, group or replica, or was made with
    /// other settings.
    #[error("{0}")]
    Mismatch(String),
    /// A record could not be encoded before being written (nothing was written).
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// The record.
        what: &'static str,
        /// The encoder's error.
        reason: String,
    },
    /// Paxos could not start.
    #[error(transparent)]
    Paxos(#[from] paxos::PaxosError),
}

/// A front door's settings out of range (`FrontOptions::validate`,
/// `RespOptions::validate`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// Settings that must be above zero are not.
    #[error("{settings} must be positive")]
    NotPositive {
        /// The settings, as the error names them.
        settings: &'static str,
    },
}

/// Why `diskv admin backup` or `diskv restore` stopped. Every variant says what
/// went wrong and what to do; a restore that fails verifying has written nothing.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file of the backup failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The directory has no manifest.
    #[error("{} holds no {}: it is not a backup, or one that never finished (the manifest is written last); take the backup again", dir.display(), crate::backup::MANIFEST)]
    NoManifest {
        /// The backup directory.
        dir: PathBuf,
    },
    /// The manifest fails its checksum or does not parse.
    #[error("the manifest {} is damaged: {reason}; this backup cannot be trusted: restore from another copy", path.display())]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The manifest is of a format this diskv does not read.
    #[error("{} is backup format {found}, this diskv reads format {}: restore it with a diskv that reads format {found}", path.display(), crate::backup::FORMAT)]
    Version {
        /// The manifest file.
        path: PathBuf,
        /// The format it names.
        found: u64,
    },
    /// A shard file is missing, truncated, fails its checksum or does not decode.
    #[error("shard file {} is damaged: {reason}; restore from another copy of the backup", path.display())]
    BadShardFile {
        /// The shard file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another `diskv admin backup` is writing into the same directory.
    #[error("another backup is writing into {} (it holds {}); wait for it to finish or back up into another directory", dir.display(), crate::backup::LOCK)]
    InUse {
        /// The directory.
        dir: PathBuf,
    },
    /// `diskv admin backup` into a directory that holds a backup already.
    #[error("{} already holds a backup (it has a {}); back up into a new directory", dir.display(), crate::backup::MANIFEST)]
    Exists {
        /// The directory.
        dir: PathBuf,
    },
    /// The backup and the target cluster have different shard counts.
    #[error("the backup has {backup} shards and the cluster {cluster}: a key's shard depends on the count, so restore into a cluster made with --shards {backup}")]
    ShardCount {
        /// Shards of the backup.
        backup: usize,
        /// Shards of the cluster.
        cluster: usize,
    },
    /// A shard has no group in the cluster's configuration.
    #[error("shard {shard} has no group in configuration {config}: join a replica group first (diskv admin join)")]
    Unassigned {
        /// The shard.
        shard: usize,
        /// The configuration.
        config: u64,
    },
    /// `diskv restore` into a cluster that holds keys, without `--force`.
    #[error("the cluster already holds keys (for example {example:?}); restore loads into an empty cluster only: restore into a new cluster, or pass --force to load anyway (keys of the backup overwrite, other keys stay)")]
    NotEmpty {
        /// One of its keys.
        example: String,
    },
    /// The configuration changed under every attempt of the backup.
    #[error("the configuration kept changing during the backup ({attempts} attempts, the last at configuration {config}); take the backup again once shards stop moving")]
    ConfigKeptMoving {
        /// Attempts made.
        attempts: u32,
        /// The configuration of the last attempt.
        config: u64,
    },
    /// No replica of a shard's group answered in time.
    #[error("shard {shard} could not be read from group {gid} within {secs} s ({last}); check that the group is up and has a leader, then take the backup again")]
    Unreadable {
        /// The shard.
        shard: usize,
        /// Its group.
        gid: u64,
        /// The time allowed.
        secs: u64,
        /// The last answer or failure.
        last: String,
    },
    /// The shardmaster did not answer or refused.
    #[error("the shardmaster: {0}")]
    Shardmaster(#[from] shardmaster::ShardmasterError),
    /// The cluster refused an operation of the restore.
    #[error("the cluster refused: {0}")]
    Kv(#[from] crate::op::KvError),
    /// The cluster refused a put part way through a restore.
    #[error("the cluster refused a write after at least {written} keys of the backup were loaded: {source}; it now holds part of the backup: clear it (DELETE /clear), fix the cause and restore again")]
    Partial {
        /// Keys of whole shards loaded before (some of the failing shard's may be too).
        written: usize,
        /// The refusal.
        source: crate::op::KvError,
    },
}
