//! The benchmark's one error type. Failed operations are not errors of the run
//! (they are counted in the report); these are what stops a run or a sweep.

use std::path::PathBuf;

/// Why a run, a sweep or a spawned target failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The run's parameters make no sense.
    #[error("invalid benchmark settings: {0}")]
    Spec(String),
    /// A benchmark client could not connect.
    #[error("client {client} cannot connect to {store}: {error}")]
    Connect {
        /// The client's index.
        client: usize,
        /// The store's label.
        store: String,
        /// What went wrong.
        error: String,
    },
    /// The load phase wrote no record at all.
    #[error(
        "the load phase wrote none of the {records} records into {store}; first error: {error}"
    )]
    Load {
        /// The store's label.
        store: String,
        /// Records attempted.
        records: u64,
        /// The first error.
        error: String,
    },
    /// A local cluster or node could not be started.
    #[error("cannot start the local target: {0:#}")]
    Spawn(anyhow::Error),
    /// Reading or writing results failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A results file could not be read back.
    #[error("{} is not a results file this version understands: {error}", path.display())]
    Results {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: serde_json::Error,
    },
    /// Drawing a plot failed.
    #[error("cannot draw {}: {error}", path.display())]
    Plot {
        /// The plot file.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
}

impl BenchError {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> BenchError {
        BenchError::Io {
            path: path.into(),
            error,
        }
    }
}
