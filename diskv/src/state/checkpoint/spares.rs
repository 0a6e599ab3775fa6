//! Spare key files: the files a checkpoint replaced, kept so that later
//! checkpoints rewrite them instead of creating new ones.
//!
//! **Why.** A checkpoint writes each changed key to a new temp file and renames
//! it over the key's file, so the file system allocates one inode and frees
//! another per changed key. On ext4 without a journal, allocating an inode skips
//! every inode freed in the last minute, reading its inode-table block to find
//! out (docs/BENCHMARKS.md, the Redis-protocol section). Renaming the replaced
//! file aside, then later renaming it to a temp file's name and rewriting it,
//! keeps the same inodes in use.
//!
//! **Safety.** A file renamed aside (to `<name>.<number>.old.tmp`, in its
//! shard's folder) may still be the key's *durable* file until the renames
//! that replaced it are durable, which only a `syncfs` promises. Redoing step 4
//! at start repairs a lost rename while the temp file is still there, but a
//! file system that does not keep a folder's operations in order (ext4 without
//! a journal) may keep the temp file's removal and lose the rename; a rewritten
//! spare would then leave the key's name on other bytes. So a spare retired by
//! checkpoint n's step 4 is *waiting*; checkpoint n+1's `syncfs` (its step 2)
//! makes it *ready*; only checkpoint n+2's step 1 rewrites it. Deleting a
//! spare, waiting or ready, is always safe: it is what the rename over the
//! file did before spares.
//!
//! **Start-up and old binaries.** A spare's name ends in `.tmp`, so start-up
//! deletes spares with the other temp files, in this version and in every
//! earlier one: no binary ever loads a spare as a key (an earlier name,
//! `.old`, was loaded as a key file by a rolled-back binary: finding 1 of the
//! spare attack). The pool starts empty after every restart.
//!
//! **Bound.** Only files of at most [`SPARE_MAX_BYTES`] are kept, at most
//! [`SPARE_BUDGET_BYTES`] of them (counting each as at least one 4 KiB block);
//! the ready spares a checkpoint does not use are deleted, so the pool follows
//! the number of keys one checkpoint rewrites; and a checkpoint that fails
//! before its commit point (a full disk) deletes them all, so a full disk gets
//! their space back. Deleted keys' files are deleted at once, never kept.

use crate::error::StateError;
use crate::state::loader;
use paxos::fs::FileSystem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest file kept as a spare: beyond it the data blocks, not the inode,
/// are the cost.
pub const SPARE_MAX_BYTES: u64 = 64 * 1024;

/// Most disk the spares of one store hold at once (waiting and ready).
pub const SPARE_BUDGET_BYTES: u64 = 64 * 1024 * 1024;

/// What one spare counts against the budget: its bytes, at least one block.
fn cost(len: u64) -> u64 {
    len.max(4096)
}

/// A spare file and what it counts against the budget.
type Spare = (PathBuf, u64);

/// The spare pool of one store.
#[derive(Debug, Default)]
pub struct Spares {
    /// Retired since the last `syncfs`: not to be rewritten yet.
    waiting: Vec<Spare>,
    /// Retired before the last `syncfs`: free to rewrite.
    ready: Vec<Spare>,
    /// Budget bytes the pool holds.
    held: u64,
    /// Temp files written into a spare so far (for tests and logs).
    reused: u64,
}

/// Budget left in the pool during one step 4, shared by its threads.
#[derive(Debug)]
pub struct Room(AtomicU64);

impl Spares {
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
        let Some((spare, cost)) = self.ready.pop() else {
            return;
        };
        self.held -= cost;
        match fs.rename(&spare, tmp) {
            Ok(()) => self.reused += 1,
            Err(e) => tracing::debug!(
                spare = %spare.display(), error = %e, "a spare key file could not be reused"
            ),
        }
    }

    /// Deletes the ready spares this checkpoint did not use, so the pool
    /// shrinks with the write load.
    pub fn remove_unused(&mut self, fs: &dyn FileSystem) {
        let unused = std::mem::take(&mut self.ready);
        self.held -= unused.iter().map(|(_, c)| c).sum::<u64>();
        remove(fs, unused);
    }

    /// Deletes every spare: after a checkpoint failed before its commit point
    /// (a full disk needs their space back; nothing needs them).
    pub fn remove_all(&mut self, fs: &dyn FileSystem) {
        self.remove_unused(fs);
        let waiting = std::mem::take(&mut self.waiting);
        self.held = 0;
        remove(fs, waiting);
    }

    /// The last `syncfs` made every waiting spare's rename durable.
    pub fn synced(&mut self) {
        self.ready.append(&mut self.waiting);
    }

    /// Room for spares in the next step 4.
    pub fn room(&self) -> Room {
        Room(AtomicU64::new(SPARE_BUDGET_BYTES.saturating_sub(self.held)))
    }

    /// Adds the spares a step 4 retired: waiting for the next `syncfs`.
    pub fn retired(&mut self, spares: impl IntoIterator<Item = Spare>) {
        for spare in spares {
            self.held += spare.1;
            self.waiting.push(spare);
        }
    }
}

/// Deletes `spares`; one that cannot be deleted is forgotten (start-up
/// deletes it as a temp file).
fn remove(fs: &dyn FileSystem, spares: Vec<Spare>) {
    let paths: Vec<PathBuf> = spares.into_iter().map(|(p, _)| p).collect();
    if let Err(e) = loader::remove_all(fs, &paths) {
        tracing::warn!(error = %e, "could not delete spare key files");
    }
}

impl Room {
    /// No room: nothing is kept (step 4 redone at start-up, which deletes
    /// spares anyway).
    pub fn none() -> Room {
        Room(AtomicU64::new(0))
    }

    /// Renames the key file `file` aside to `spare` if it exists, is small
    /// enough and the pool has room; returns the spare if it did. Otherwise
    /// the caller's rename over `file` frees it as before.
    pub fn retire(
        &self,
        fs: &dyn FileSystem,
        file: &Path,
        spare: PathBuf,
    ) -> Result<Option<Spare>, StateError> {
        if self.0.load(Ordering::Relaxed) == 0 {
            return Ok(None);
        }
        let len = match fs.metadata(file) {
            Ok(m) if !m.is_dir() && m.len <= SPARE_MAX_BYTES => m.len,
            _ => return Ok(None),
        };
        if !self.claim(cost(len)) {
            return Ok(None);
        }
        match fs.rename(file, &spare) {
            Ok(()) => Ok(Some((spare, cost(len)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::Io {
                path: file.to_path_buf(),
                source: e,
            }),
        }
    }

    fn claim(&self, bytes: u64) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                n.checked_sub(bytes)
            })
            .is_ok()
    }
}

/// The spare name for `name`'s file retired by checkpoint `number`: a temp
/// file's name, so that start-up deletes it.
pub fn spare_name(name: &str, number: u64) -> String {
    format!("{name}.{number}.old.tmp")
}
