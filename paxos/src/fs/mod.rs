//! File I/O behind one trait, so the real storage code (the Paxos segment log, the
//! KV checkpoint files, identity records, quarantine) runs unchanged on the real
//! disk ([`OsFs`]) or on a simulated one ([`SimFs`]) whose crashes lose exactly what
//! a real machine may lose.
//!
//! The trait covers what the storage code needs and no more: whole-file reads and
//! writes, directory listings, append handles with `fdatasync`, renames and
//! removals, the three kinds of sync (a file, a directory's entries, the whole file
//! system) and an exclusive lock. Errors are plain [`std::io::Error`]s, so callers
//! keep their own typed errors and add the path.
//!
//! [`durable`] holds the one implementation of "replace a file atomically and
//! durably" and "read a file, if it exists", on the trait.
//!
//! # Sync rules every caller relies on
//!
//! - Data written to a file is durable once [`FileHandle::sync_data`] or
//!   [`FileSystem::sync_file`] returned for it.
//! - A new, renamed or removed directory entry is durable once
//!   [`FileSystem::sync_dir`] of the directory holding it returned. Syncing a file
//!   does not make its name durable.
//! - [`FileSystem::sync_file_system`] makes everything durable.
//!
//! [`SimFs`] enforces exactly these rules at a crash; `OsFs` inherits whatever the
//! kernel does, which is at least this.

pub mod durable;
mod os;
pub mod sim;

pub use os::OsFs;
pub use sim::{SimFs, SimOptions};

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// True if `e` says the file system is out of space (ENOSPC) or the user is over
/// quota (EDQUOT): a state that ends once space is freed, unlike a device error.
pub fn is_no_space(e: &io::Error) -> bool {
    // Linux's numbers; `ErrorKind::StorageFull` alone misses quotas.
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    e.kind() == io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(ENOSPC) | Some(EDQUOT))
}

/// A shared handle on a file system, as the storage code holds it.
pub type SharedFs = Arc<dyn FileSystem>;

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// What [`FileSystem::metadata`] tells about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// File or directory.
    pub kind: FileKind,
    /// Bytes in the file (unspecified for a directory).
    pub len: u64,
}

impl Metadata {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// A file opened to append to it. Dropping it closes the file.
pub trait FileHandle: Send + Sync + fmt::Debug {
    /// Appends all of `bytes` at the end of the file (not yet durable).
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes, or extends it with zeros (not yet durable).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// True if the file holds no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// An exclusive lock on a file, held until dropped (or until the machine crashes).
pub struct FileLock {
    _held: Box<dyn Send + Sync>,
}

impl FileLock {
    /// Wraps whatever keeps the lock held while it lives.
    pub fn new(held: Box<dyn Send + Sync>) -> FileLock {
        FileLock { _held: held }
    }
}

impl fmt::Debug for FileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileLock")
    }
}

/// One machine's file system, as the storage code uses it. See the
/// [module docs](self) for the sync rules.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The names of the entries of directory `path`, sorted.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// Creates directory `path` and any missing parents (not yet durable).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates the file `path`, which must not exist, and opens it to append.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
    /// Opens the existing file `path` to append to it.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
    /// Replaces the content of the file `path` (created if missing) by `bytes`. Not
    /// synced: a crash may leave the old content or any prefix of the new.
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Renames `from` to `to`, replacing a file at `to` (the entries are not yet
    /// durable).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path` (not yet durable).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes directory `path` and everything under it (not yet durable).
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the data of the file `path` durable (`fsync`).
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of directory `path` (created, renamed, removed) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes everything on the file system holding `path` durable (`syncfs`).
    fn sync_file_system(&self, path: &Path) -> io::Result<()>;
    /// What `path` is and how long.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;
    /// Takes an exclusive lock on the file `path` (created if missing) without
    /// waiting: an error of kind [`io::ErrorKind::WouldBlock`] if it is held.
    fn lock(&self, path: &Path) -> io::Result<FileLock>;
    /// Tells file systems apart: two handles with the same identity see the same
    /// files, so a path means the same file through both.
    fn identity(&self) -> usize;

    /// True if `path` exists (false also when it cannot be examined).
    fn exists(&self, path: &Path) -> bool {
        self.metadata(path).is_ok()
    }

    /// True if `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool {
        self.metadata(path).is_ok_and(|m| m.is_dir())
    }
}

/// The real file system, shared.
pub fn os() -> SharedFs {
    Arc::new(OsFs)
}
