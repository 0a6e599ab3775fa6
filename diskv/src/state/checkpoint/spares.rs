//! Spare key files: the files a checkpoint replaced or deleted, kept so that
//! later checkpoints rewrite them instead of creating new ones.
//!
//! **Why.** A checkpoint writes each changed key to a new temp file and renames
//! it over the key's file, so the file system allocates one inode and frees
//! another per changed key. On ext4 without a journal, allocating an inode skips
//! every inode freed in the last minute, reading its inode-table block to find
//! out: half of the CPU of a write-heavy load (docs/BENCHMARKS.md, "Where the
//! time goes"). Renaming the replaced file aside, then later renaming it to a
//! temp file's name and rewriting it, keeps the same inodes in use.
//!
//! **Safety.** A file renamed aside (to `<name>.<number>.old`, in its shard's
//! folder) may still be the key's *durable* file until the renames that
//! replaced it are durable, which only a `syncfs` promises. Redoing step 4 at
//! start repairs a lost rename while the temp file is still there, but a file
//! system that does not keep a folder's operations in order (ext4 without a
//! journal, as on the machine of docs/BENCHMARKS.md) may keep the temp file's
//! removal and lose the rename; a rewritten spare would then leave the key's
//! name on other bytes. So a spare retired by checkpoint n's step 4 is
//! *waiting*; checkpoint n+1's `syncfs` (its step 2) makes it *ready*; only
//! checkpoint n+2's step 1 rewrites it. Spares found at start are waiting too:
//! a killed process leaves its renames in the page cache, not yet on the disk.
//!
//! **Bound.** Only files of at most [`SPARE_MAX_BYTES`] are kept, at most
//! [`MAX_SPARES`] of them, and the ready spares a checkpoint does not use are
//! deleted, so the pool follows the number of keys one checkpoint changes (and
//! empties when writes stop).

use crate::error::StateError;
use crate::state::loader;
use paxos::fs::FileSystem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest file kept as a spare: beyond it the data blocks, not the inode,
/// are the cost, and a pool of big files would hold much disk.
pub const SPARE_MAX_BYTES: u64 = 64 * 1024;

/// Most spares kept at once (waiting and ready).
pub const MAX_SPARES: usize = 262_144;

/// The extension of a spare's file name (key file names never hold a `.`).
pub const SPARE_EXTENSION: &str = "old";

/// The spare pool of one store.
#[derive(Debug, Default)]
pub struct Spares {
    /// Retired since the last `syncfs`: not to be rewritten yet.
    waiting: Vec<PathBuf>,
    /// Retired before the last `syncfs`: free to rewrite.
    ready: Vec<PathBuf>,
    /// Temp files written into a spare so far (for tests and logs).
    reused: u64,
}

/// Room left in the pool during one step 4, shared by its threads.
#[derive(Debug)]
pub struct Room(AtomicUsize);

impl Spares {
    /// A pool of the spares found at start: all waiting.
    pub fn found(files: Vec<PathBuf>) -> Spares {
        Spares {
            waiting: files,
            ..Spares::default()
        }
    }

    /// Spares held, waiting and ready.
    pub(super) fn count(&self) -> usize {
        self.waiting.len() + self.ready.len()
    }

    /// Temp files written into a spare so far.
    pub fn reused(&self) -> u64 {
        self.reused
    }

    /// Makes `tmp` a ready spare, renamed, if there is one; the caller then
    /// rewrites it whole. A spare that is gone (its shard's folder was
    /// dropped) is skipped and the caller creates the file.
    pub fn reuse_as(&mut self, fs: &dyn FileSystem, tmp: &Path) {
        let Some(spare) = self.ready.pop() else {
            return;
        };
        match fs.rename(&spare, tmp) {
            Ok(()) => self.reused += 1,
            Err(e) => tracing::debug!(
                spare = %spare.display(), error = %e, "a spare key file could not be reused"
            ),
        }
    }

    /// Deletes the ready spares this checkpoint did not use, so the pool
    /// shrinks with the write load. A spare that cannot be deleted is
    /// forgotten (it is ignored at start until a checkpoint reuses it).
    pub fn remove_unused(&mut self, fs: &dyn FileSystem) {
        let unused = std::mem::take(&mut self.ready);
        if let Err(e) = loader::remove_all(fs, &unused) {
            tracing::warn!(error = %e, "could not delete unused spare key files");
        }
    }

    /// The last `syncfs` made every waiting spare's rename durable.
    pub fn synced(&mut self) {
        self.ready.append(&mut self.waiting);
    }

    /// Room for spares in the next step 4.
    pub fn room(&self) -> Room {
        Room(AtomicUsize::new(MAX_SPARES.saturating_sub(self.count())))
    }

    /// Adds the spares a step 4 retired: waiting for the next `syncfs`.
    pub fn retired(&mut self, files: impl IntoIterator<Item = PathBuf>) {
        self.waiting.extend(files);
    }
}

impl Room {
    /// Renames the key file `file` aside to `spare` if it exists, is small
    /// enough and the pool has room; returns `spare` if it did. Otherwise the
    /// caller's rename over `file` (or its removal) frees it as before.
    pub fn retire(
        &self,
        fs: &dyn FileSystem,
        file: &Path,
        spare: PathBuf,
    ) -> Result<Option<PathBuf>, StateError> {
        let small = fs
            .metadata(file)
            .is_ok_and(|m| !m.is_dir() && m.len <= SPARE_MAX_BYTES);
        if !small || !self.claim() {
            return Ok(None);
        }
        match fs.rename(file, &spare) {
            Ok(()) => Ok(Some(spare)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::Io {
                path: file.to_path_buf(),
                source: e,
            }),
        }
    }

    fn claim(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The spare name for `name`'s file retired by checkpoint `number`.
pub fn spare_name(name: &str, number: u64) -> String {
    format!("{name}.{number}.{SPARE_EXTENSION}")
}
