//! [`SimFs`]: one simulated machine's disk, in memory, for deterministic tests of
//! the real storage code.
//!
//! Every file has its current bytes (what a running process reads) and its durable
//! bytes; every directory has its current entries and its durable entries, plus the
//! entry operations since its last sync, in order. The sync calls move current to
//! durable exactly as the rules of [`crate::fs`] say: `sync_data`/`sync_file` a
//! file's bytes, `sync_dir` a directory's entries, `sync_file_system` everything.
//!
//! Two kinds of failure:
//!
//! - **A process killed** (`kill -9`): drop its handles. Nothing is lost; the page
//!   cache (current state) is still there for the next process.
//! - **A machine crash** (power loss): [`SimFs::crash`] keeps what is durable plus
//!   a random part of the rest, and every handle and lock from before it fails from
//!   then on. Per directory, a prefix (in order) of its unsynced entry operations
//!   survives (creations, renames, removals; a rename between two directories
//!   survives in both or in neither). Per file, unsynced appended bytes survive as
//!   a prefix of any length; a file rewritten whole (or truncated) since its last
//!   sync comes back as its synced bytes or as a prefix of its new ones; with
//!   [`SimOptions::torn_chance`] the survivor ends in a torn tail (zeros, or garbage
//!   to the end of its page); with [`SimOptions::reorder_pages`] unsynced pages
//!   survive independently. Only what the surviving entries reach is kept.
//!   [`SimFs::crash_losing_unsynced`] is the worst case: only what was synced
//!   survives.
//!
//! Faults: a capacity ([`SimOptions::capacity`]: writes beyond it fail with
//! `ENOSPC`), [`SimFs::corrupt`] (a flipped bit on the disk), [`SimFs::wipe`] (the
//! disk lost), [`SimFs::fail_nth_write`] / [`SimFs::fail_nth_sync`] (`EIO`).
//!
//! Deterministic: no clock and no global randomness; the crash's choices come from
//! the caller's seeded generator, and listings are sorted.

mod crash;
mod disk;
mod inode;
#[cfg(test)]
mod tests;

pub use crash::CrashReport;

use super::{FileHandle, FileKind, FileLock, FileSystem, Metadata};
use crash::Fate;
use disk::{errno, Disk};
use inode::Ino;
use rand::RngCore;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::debug;

/// How a [`SimFs`] behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimOptions {
    /// Bytes of file content the disk holds at most (`None`: unlimited). A write
    /// beyond it fails with `ENOSPC` ([`io::ErrorKind::StorageFull`]) and changes
    /// nothing.
    pub capacity: Option<u64>,
    /// Chance that a crash leaves a file with unsynced changes with a torn tail
    /// (default 0.1).
    pub torn_chance: f64,
    /// Unsynced appended pages survive a crash independently, a later one possibly
    /// without an earlier one (default off: they survive as a prefix).
    pub reorder_pages: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            capacity: None,
            torn_chance: 0.1,
            reorder_pages: false,
        }
    }
}

/// One simulated machine's disk. Clones share it.
#[derive(Clone)]
pub struct SimFs {
    disk: Arc<Mutex<Disk>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let disk = self.state();
        f.debug_struct("SimFs")
            .field("generation", &disk.generation)
            .field("inodes", &disk.nodes.len())
            .field("used", &disk.used)
            .finish()
    }
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

impl SimFs {
    /// An empty disk with the default options.
    pub fn new() -> SimFs {
        SimFs::with_options(SimOptions::default())
    }

    /// An empty disk.
    pub fn with_options(options: SimOptions) -> SimFs {
        SimFs {
            disk: Arc::new(Mutex::new(Disk::new(options))),
        }
    }

    fn state(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Crashes the machine: what was not synced survives in part, as `rng` decides
    /// (see the module docs); every handle and lock from before fails from now on.
    pub fn crash(&self, rng: &mut dyn RngCore) -> CrashReport {
        self.crash_with(Fate::Random(rng))
    }

    /// Crashes the machine, losing everything that was not synced.
    pub fn crash_losing_unsynced(&self) -> CrashReport {
        self.crash_with(Fate::LoseUnsynced)
    }

    fn crash_with(&self, mut fate: Fate<'_>) -> CrashReport {
        let mut disk = self.state();
        let report = disk.crash(&mut fate);
        debug!(generation = disk.generation, ?report, "simulated crash");
        report
    }

    /// Loses the whole disk: every file and directory gone, every handle dead.
    pub fn wipe(&self) {
        self.state().wipe();
    }

    /// Flips the bits of `mask` in byte `offset` of the file `path`, in its current
    /// and its durable content (where they are that long): damage on the medium.
    pub fn corrupt(&self, path: &Path, offset: u64, mask: u8) -> io::Result<()> {
        let mut disk = self.state();
        let ino = disk.lookup(path)?;
        let file = disk.file_mut(ino)?;
        let at = usize::try_from(offset).map_err(|_| errno(libc::EINVAL))?;
        if at >= file.current.len() && at >= file.durable.len() {
            return Err(errno(libc::EINVAL));
        }
        for bytes in [&mut file.current, &mut file.durable] {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= mask;
            }
        }
        Ok(())
    }

    /// Sets the capacity (see [`SimOptions::capacity`]).
    pub fn set_capacity(&self, capacity: Option<u64>) {
        self.state().options.capacity = capacity;
    }

    /// The `n`th data write from now (append or whole-file write; 1 = the next)
    /// fails with `EIO` and changes nothing.
    pub fn fail_nth_write(&self, n: u64) {
        self.state().faults.write_in = Some(n.max(1));
    }

    /// The `n`th sync from now (of a file, a directory or everything; 1 = the next)
    /// fails with `EIO` and makes nothing durable.
    pub fn fail_nth_sync(&self, n: u64) {
        self.state().faults.sync_in = Some(n.max(1));
    }

    /// The `n`th rename from now (1 = the next) fails with `EIO` and changes
    /// nothing.
    pub fn fail_nth_rename(&self, n: u64) {
        self.state().faults.rename_in = Some(n.max(1));
    }

    /// Every file a process sees now, by path (`/a/b`), sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        self.state()
            .files(false)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    /// Every file that is durably there (survives any crash), by path, sorted.
    pub fn durable_files(&self) -> Vec<PathBuf> {
        self.state()
            .files(true)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    /// The durable bytes of the file `path` names in the durable tree: what any
    /// crash keeps of it. `None` if no crash is sure to keep it.
    pub fn durable_read(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.state();
        let ino = disk.lookup_durable(path)?;
        disk.file(ino).ok().map(|f| f.durable.clone())
    }

    /// Bytes of file content held now.
    pub fn used(&self) -> u64 {
        self.state().used
    }

    /// Opens a handle on `ino` in this generation.
    fn handle(&self, disk: &mut Disk, ino: Ino) -> Box<dyn FileHandle> {
        *disk.open.entry(ino).or_insert(0) += 1;
        Box::new(SimFile {
            fs: self.clone(),
            ino,
            generation: disk.generation,
        })
    }
}

/// Drops one reference of `ino` from this generation's open set.
fn release(disk: &mut Disk, ino: Ino, generation: u64) {
    if disk.generation != generation {
        return;
    }
    if let Some(n) = disk.open.get_mut(&ino) {
        *n -= 1;
        if *n == 0 {
            disk.open.remove(&ino);
        }
    }
}

/// An append handle on a simulated file.
struct SimFile {
    fs: SimFs,
    ino: Ino,
    generation: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("ino", &self.ino)
            .field("generation", &self.generation)
            .finish()
    }
}

impl SimFile {
    /// The disk, if this handle is still alive (opened since the last crash).
    fn disk(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let disk = self.fs.state();
        if disk.generation != self.generation {
            return Err(io::Error::other(
                "the file was opened before a simulated crash",
            ));
        }
        Ok(disk)
    }
}

impl FileHandle for SimFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.disk()?.append(self.ino, bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut disk = self.disk()?;
        disk.sync_fault()?;
        disk.file_mut(self.ino)?.sync();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| errno(libc::EFBIG))?;
        self.disk()?.set_len(self.ino, len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.disk()?.file(self.ino)?.current.len() as u64)
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        release(&mut self.fs.state(), self.ino, self.generation);
    }
}

/// A lock held on a simulated file.
struct SimLock {
    fs: SimFs,
    ino: Ino,
    generation: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut disk = self.fs.state();
        if disk.generation == self.generation {
            disk.locked.remove(&self.ino);
        }
        release(&mut disk, self.ino, self.generation);
    }
}

impl FileSystem for SimFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let disk = self.state();
        let ino = disk.lookup(path)?;
        Ok(disk.file(ino)?.current.clone())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let disk = self.state();
        let ino = disk.lookup(path)?;
        Ok(disk.dir(ino)?.current.keys().cloned().collect())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.state().create_dir_all(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let mut disk = self.state();
        let ino = disk.create_file(path, true)?;
        Ok(self.handle(&mut disk, ino))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let mut disk = self.state();
        let ino = disk.lookup(path)?;
        disk.file(ino)?;
        Ok(self.handle(&mut disk, ino))
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.state().write(path, bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.state().rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.state().remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.state().remove_dir_all(path)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.state();
        let ino = disk.lookup(path)?;
        disk.sync_fault()?;
        if disk.dir(ino).is_ok() {
            return disk.sync_dir(ino);
        }
        disk.file_mut(ino)?.sync();
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.state();
        let ino = disk.lookup(path)?;
        disk.dir(ino)?;
        disk.sync_fault()?;
        disk.sync_dir(ino)
    }

    fn sync_file_system(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.state();
        disk.lookup(path)?;
        disk.sync_fault()?;
        disk.sync_everything();
        Ok(())
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let disk = self.state();
        let ino = disk.lookup(path)?;
        Ok(match disk.file(ino) {
            Ok(f) => Metadata {
                kind: FileKind::File,
                len: f.current.len() as u64,
            },
            Err(_) => Metadata {
                kind: FileKind::Dir,
                len: 0,
            },
        })
    }

    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        let mut disk = self.state();
        let ino = disk.create_file(path, false)?;
        if !disk.locked.insert(ino) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        *disk.open.entry(ino).or_insert(0) += 1;
        Ok(FileLock::new(Box::new(SimLock {
            fs: self.clone(),
            ino,
            generation: disk.generation,
        })))
    }

    fn identity(&self) -> usize {
        Arc::as_ptr(&self.disk) as *const () as usize
    }
}
