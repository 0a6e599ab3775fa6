//! The peers diskv is compared with (feature `compare`): a 3-member etcd cluster
//! through etcd's native gRPC API ([`etcd`]) and a single durable Redis server with
//! `appendfsync always` ([`redis`]). Each module has a launcher, which starts the
//! servers on 127.0.0.1 with their data in a temporary directory and kills them by
//! pid when dropped, and a [`Store`](super::store::Store) over the running peer.

mod daemon;
pub mod etcd;
pub mod redis;

use std::time::Duration;

/// Why a peer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The server program could not be run (not installed?).
    #[error("cannot run {program}: {source} (install it: `make bench-compare` runs apt-get for etcd-server and redis-server)")]
    Start {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or directory operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A server exited while starting or running.
    #[error("{name} exited ({status}); last lines of its log:\n{log_tail}")]
    Exited {
        /// The server's name.
        name: String,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// The peer did not become ready in time.
    #[error(
        "{what} not ready after {waited:?}; last lines of the first server's log:\n{log_tail}"
    )]
    NotReady {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// The end of the first server's log.
        log_tail: String,
    },
    /// No free loopback ports.
    #[error("cannot choose free ports on 127.0.0.1: {0}")]
    Ports(std::io::Error),
}

/// How long a peer gets to become ready after its processes start.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// `n` free ports on 127.0.0.1 (below the ephemeral range, see `stable_ports`).
fn free_ports(n: usize) -> Result<Vec<u16>, PeerError> {
    diskv_launch::stable_ports::choose(n).map_err(PeerError::Ports)
}

/// A temporary directory for a peer's data and logs, removed when dropped.
fn temp_dir(prefix: &str) -> Result<tempfile::TempDir, PeerError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| PeerError::Io {
            what: "create a temporary directory".to_string(),
            source: e,
        })
}

#[cfg(test)]
mod tests;
