//! The directory lock: one server at a time uses a shardmaster directory.

use super::{storage_err, LOCK_FILE};
use crate::error::ShardmasterError;
use paxos::fs::{FileLock, FileSystem};
use std::io::ErrorKind;
use std::path::Path;

/// An exclusive lock on a data directory, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _lock: FileLock,
}

/// Creates `dir` if missing and locks it for this server.
pub fn lock_dir(fs: &dyn FileSystem, dir: &Path) -> Result<DirLock, ShardmasterError> {
    paxos::fs::durable::create_dir_all(fs, dir).map_err(|e| storage_err("create", dir, e))?;
    let path = dir.join(LOCK_FILE);
    match fs.lock(&path) {
        Ok(lock) => Ok(DirLock { _lock: lock }),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Err(ShardmasterError::DirInUse {
            path: dir.display().to_string(),
        }),
        Err(e) => Err(storage_err("lock", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::fs::OsFs;

    #[test]
    fn a_directory_is_locked_by_one_server_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_dir(&OsFs, dir.path()).unwrap();
        assert!(matches!(
            lock_dir(&OsFs, dir.path()),
            Err(ShardmasterError::DirInUse { .. })
        ));
        drop(lock);
        lock_dir(&OsFs, dir.path()).unwrap();
    }
}
