//! [`OsFs`]: the [`FileSystem`] of the machine the process runs on, on `std::fs`
//! and `libc`. Each call is the one system call it names (the append handle is a
//! `File` opened with `O_APPEND`; `sync_data` is `fdatasync`), so the log's hot path
//! costs what it cost before the trait existed.

use super::{FileHandle, FileKind, FileLock, FileSystem, Metadata};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFs;

/// An append handle on a real file.
#[derive(Debug)]
struct OsFile(File);

impl FileHandle for OsFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        self.0.metadata().map(|m| m.len())
    }
}

impl FileSystem for OsFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            names.push(entry?.file_name());
        }
        names.sort_unstable();
        Ok(names)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        fs::write(path, bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn sync_file_system(&self, path: &Path) -> io::Result<()> {
        let file = File::open(path)?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is valid for the duration of the call.
            if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            file.sync_all()
        }
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let m = fs::metadata(path)?;
        Ok(Metadata {
            kind: if m.is_dir() {
                FileKind::Dir
            } else {
                FileKind::File
            },
            len: m.len(),
        })
    }

    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is valid for the duration of the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // The lock lasts as long as the descriptor.
        Ok(FileLock::new(Box::new(file)))
    }

    fn identity(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_handle_appends_truncates_and_reports_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = OsFs.create_new(&path).unwrap();
        f.append(b"hello").unwrap();
        f.append(b" world").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.len().unwrap(), 11);
        f.set_len(5).unwrap();
        assert_eq!(OsFs.read(&path).unwrap(), b"hello");
        assert!(
            OsFs.create_new(&path).is_err(),
            "create_new on an existing file"
        );
        let mut again = OsFs.open_append(&path).unwrap();
        again.append(b"!").unwrap();
        assert_eq!(OsFs.read(&path).unwrap(), b"hello!");
    }

    #[test]
    fn names_are_listed_sorted_and_every_sync_works() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b", "a", "c"] {
            OsFs.write(&dir.path().join(name), name.as_bytes()).unwrap();
        }
        assert_eq!(OsFs.read_dir(dir.path()).unwrap(), ["a", "b", "c"]);
        OsFs.sync_file(&dir.path().join("a")).unwrap();
        OsFs.sync_dir(dir.path()).unwrap();
        OsFs.sync_file_system(dir.path()).unwrap();
        assert!(OsFs.is_dir(dir.path()));
        assert_eq!(OsFs.metadata(&dir.path().join("a")).unwrap().len, 1);
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = OsFs.lock(&path).unwrap();
        let err = OsFs.lock(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(held);
        OsFs.lock(&path).unwrap();
    }
}
