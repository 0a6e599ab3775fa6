//! Durable files: small files replaced whole (identity and cluster records,
//! checkpoint records), durable directories, and the two checksums such files
//! carry.
//!
//! [`replace`] is the one way such a file is written: to `NAME.tmp` next to it,
//! fsynced, renamed over `NAME`, and the directory fsynced. A crash at any instant
//! leaves either the old file or the new one under `NAME` (a `NAME.tmp` may be
//! left behind; the next `replace` overwrites it). [`create_dir_all`] makes new
//! directories durable in their parents.
//!
//! A file's content says whether it is intact: text records end with a checksum
//! line ([`seal`] / [`unseal`]), binary files start with a checksummed
//! [`Header`]. These live here, next to the [`FileSystem`] trait, because every
//! service (the KV replica, the shardmaster) and the simulator write their files
//! through that trait, and all of them depend on this crate.

mod header;
mod seal;

pub use header::{Header, HeaderError};
pub use seal::{seal, unseal};

use super::FileSystem;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// Suffix of the temp file [`replace`] writes first.
pub const TEMP_SUFFIX: &str = ".tmp";

/// The temp file [`replace`] writes before renaming it over `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(TEMP_SUFFIX);
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces the file `path` by `bytes`, atomically and durably: once this returns,
/// `path` holds `bytes` across any crash; if it fails or the machine crashes first,
/// `path` holds either its old content or `bytes`.
pub fn replace(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    fs.write(&tmp, bytes)?;
    fs.sync_file(&tmp)?;
    fs.rename(&tmp, path)?;
    fs.sync_dir(parent_dir(path))
}

/// [`replace`] on the machine's own file system for a file whose permissions
/// matter (keys, token files): the temp file is made anew with `mode` — a stale
/// one left by an interrupted run, with another mode or as a symbolic link, is
/// removed first and the new one created exclusively — so the file never has
/// other permissions than `mode`.
pub fn replace_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = temp_path(path);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(parent_dir(path))?.sync_all()
}

/// Creates directory `dir` and any missing parents, durably: once this returns,
/// every directory it created is in its parent's durable entries (a directory
/// made with a plain `create_dir_all` can vanish in a power loss, taking
/// everything synced inside it along).
pub fn create_dir_all(fs: &dyn FileSystem, dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !fs.is_dir(at) {
        missing.push(at);
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => break,
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir)?;
    for created in missing.iter().rev() {
        fs.sync_dir(parent_dir(created))?;
    }
    Ok(())
}

/// The content of the file `path`, or `None` if it does not exist.
pub fn read_if_exists(fs: &dyn FileSystem, path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs.read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{OsFs, SimFs};

    /// Found by the simulator: a data directory made with a plain
    /// `create_dir_all` vanished in a power loss with the identity record synced
    /// inside it, and the replica restarted as a lost disk.
    #[test]
    fn a_directory_created_durably_survives_a_power_loss() {
        let sim = SimFs::new();
        create_dir_all(&sim, Path::new("/a/b/c")).unwrap();
        replace(&sim, Path::new("/a/b/c/record"), b"x").unwrap();
        sim.crash_losing_unsynced();
        assert_eq!(sim.read(Path::new("/a/b/c/record")).unwrap(), b"x");
        // Without it, the folders are gone after the same crash.
        let plain = SimFs::new();
        plain.create_dir_all(Path::new("/a/b/c")).unwrap();
        replace(&plain, Path::new("/a/b/c/record"), b"x").unwrap();
        plain.crash_losing_unsynced();
        assert!(plain.read(Path::new("/a/b/c/record")).is_err());
    }

    #[test]
    fn temp_files_sit_next_to_their_target() {
        assert_eq!(
            temp_path(Path::new("/a/b/state")),
            Path::new("/a/b/state.tmp")
        );
        assert_eq!(temp_path(Path::new("identity")), Path::new("identity.tmp"));
        assert_eq!(parent_dir(Path::new("identity")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/a/b")), Path::new("/a"));
    }

    #[test]
    fn a_replaced_file_survives_a_crash_that_keeps_nothing_unsynced() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_file_system(Path::new("/")).unwrap();
        let path = Path::new("/d/record");
        replace(&fs, path, b"one").unwrap();
        fs.crash_losing_unsynced();
        assert_eq!(
            read_if_exists(&fs, path).unwrap().as_deref(),
            Some(&b"one"[..])
        );
        replace(&fs, path, b"two").unwrap();
        fs.crash_losing_unsynced();
        assert_eq!(
            read_if_exists(&fs, path).unwrap().as_deref(),
            Some(&b"two"[..])
        );
    }

    #[test]
    fn a_crash_during_replace_leaves_the_old_or_the_new_content() {
        let path = Path::new("/record");
        // Every prefix of replace's steps, then a crash that keeps nothing unsynced:
        // the old content until the directory sync, the new one after it.
        for steps in 0..=4 {
            let fs = SimFs::new();
            replace(&fs, path, b"old").unwrap();
            let tmp = temp_path(path);
            let ops: [&dyn Fn(); 4] = [
                &|| fs.write(&tmp, b"new").unwrap(),
                &|| fs.sync_file(&tmp).unwrap(),
                &|| fs.rename(&tmp, path).unwrap(),
                &|| fs.sync_dir(Path::new("/")).unwrap(),
            ];
            for op in &ops[..steps] {
                op();
            }
            fs.crash_losing_unsynced();
            let expected: &[u8] = if steps == 4 { b"new" } else { b"old" };
            assert_eq!(fs.read(path).unwrap(), expected, "after {steps} steps");
        }
    }

    #[test]
    fn a_missing_file_reads_as_none_and_other_errors_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read_if_exists(&OsFs, &dir.path().join("none")).unwrap(),
            None
        );
        assert!(read_if_exists(&OsFs, dir.path()).is_err(), "a directory");
        replace(&OsFs, &dir.path().join("f"), b"x").unwrap();
        assert_eq!(
            read_if_exists(&OsFs, &dir.path().join("f")).unwrap(),
            Some(b"x".to_vec())
        );
        assert!(!dir.path().join("f.tmp").exists());
    }
}
