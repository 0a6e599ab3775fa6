//! Durable storage of the protocol's [`Record`]s.
//!
//! The core never touches storage itself: it hands its records to the driver in a
//! [`crate::core::Ready`], and the driver appends them here and calls [`Storage::sync`]
//! before it sends any message of the same `Ready`.
//!
//! Implementations: [`SegmentLog`], the checksummed on-disk log on any
//! [`crate::fs::FileSystem`] (its module docs give the format and the recovery
//! rule), and [`MemStorage`], an in-memory log for
//! simulation tests that loses unsynced records on a simulated crash, with
//! [`FaultyStorage`] to inject failures into either.

mod facts;
pub(crate) mod frame;
pub mod memory;
pub(crate) mod segment;
pub mod segment_log;
mod tail;
#[cfg(test)]
mod tests;

pub use memory::{FaultPlan, FaultSwitch, FaultyStorage, MemDisk, MemStorage};
pub use segment_log::{LogOptions, LogStats, SegmentLog};

use crate::record::Record;
use crate::types::Slot;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed (disk full, permissions, device error).
    #[error("storage I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record before the tail of the log failed its checksum or did not decode:
    /// the log is corrupt and this replica must not vote until it is recovered.
    #[error("log corrupt in {path} at byte {offset}: {reason}; this replica will not vote until its disk is recovered from its peers")]
    Corrupt {
        /// The segment file.
        path: std::path::PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A fault injected by a test storage.
    #[error("injected storage fault: {0}")]
    Injected(String),
}

/// The synchronous storage interface the driver uses. Implementations: the on-disk
/// segment log and an in-memory store for simulation tests.
pub trait Storage: Send {
    /// Every record written so far, in order, for [`crate::core::Replica::restore`].
    fn load(&mut self) -> Result<Vec<Record>, StorageError>;
    /// Appends records. They need not be durable until [`Storage::sync`] returns.
    fn append(&mut self, records: &[Record]) -> Result<(), StorageError>;
    /// Makes every appended record durable (fdatasync, plus directory fsync for new
    /// files).
    fn sync(&mut self) -> Result<(), StorageError>;
    /// Allows the storage to delete records about instances below `below` (they are
    /// forgotten). The latest promise and commit watermark must survive.
    fn compact(&mut self, below: Slot) -> Result<(), StorageError>;
    /// True once a sync has failed: records appended since the last good sync may
    /// be missing from the disk even though reading them back (from the page
    /// cache) still shows them, so a copy opened again cannot be trusted until the
    /// disk is checked. A failed append leaves this false: it is undone, or cut off
    /// as a torn tail when the log is opened again.
    fn sync_failed(&self) -> bool {
        false
    }
}

impl StorageError {
    /// True if the file system is out of space or over quota (ENOSPC, EDQUOT):
    /// appends may succeed again once space is freed.
    pub fn is_no_space(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => crate::fs::is_no_space(source),
            _ => false,
        }
    }
}
