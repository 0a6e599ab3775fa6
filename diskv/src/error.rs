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
