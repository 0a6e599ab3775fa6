//! Damaged replica state is moved aside, never repaired in place.
//!
//! A log whose checksum fails before its tail (or an application file that fails
//! its own checks) means this replica may have forgotten promises and accepted
//! values. Cutting the log at the bad record would let it vote with what is left,
//! which is exactly the unsafe restart of a lost disk. So the application moves the
//! whole directory's contents to `DIR/quarantine-<unix seconds>/` (kept for
//! forensics), says so in the log, and recovers like a lost disk: as a new acceptor
//! incarnation with a snapshot from its peers.

use crate::storage::{LogOptions, SegmentLog, StorageError};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Prefix of the folders damaged state is moved to.
pub const PREFIX: &str = "quarantine-";

/// Opens the log in `log_dir` once, to find out whether it is corrupt (a torn tail
/// is cut, as at every start). A missing folder is fine.
pub fn check_log(log_dir: &Path) -> Result<(), StorageError> {
    if !log_dir.exists() {
        return Ok(());
    }
    SegmentLog::open(log_dir, LogOptions::default()).map(drop)
}

/// True if `e` says the log is damaged (rather than, say, unreadable).
pub fn is_corrupt(e: &StorageError) -> bool {
    matches!(e, StorageError::Corrupt { .. })
}

/// Moves every entry of `dir` except those named in `keep` (and earlier quarantine
/// folders) into a new `dir/quarantine-<unix seconds>/`, durably. Returns that
/// folder, or `None` if there was nothing to move.
pub fn quarantine(dir: &Path, keep: &[&str]) -> io::Result<Option<PathBuf>> {
    let mut moving = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let s = name.to_string_lossy();
        if !s.starts_with(PREFIX) && !keep.iter().any(|k| *k == s) {
            moving.push(name);
        }
    }
    if moving.is_empty() {
        return Ok(None);
    }
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut target = dir.join(format!("{PREFIX}{secs}"));
    for n in 1.. {
        if !target.exists() {
            break;
        }
        target = dir.join(format!("{PREFIX}{secs}-{n}"));
    }
    fs::create_dir(&target)?;
    for name in moving {
        fs::rename(dir.join(&name), target.join(&name))?;
    }
    fs::File::open(&target)?.sync_all()?;
    fs::File::open(dir)?.sync_all()?;
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_but_the_kept_entries_moves_aside() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("log")).unwrap();
        fs::write(d.path().join("log/0.log"), b"x").unwrap();
        fs::write(d.path().join("identity"), b"{}").unwrap();
        fs::write(d.path().join("lock"), b"").unwrap();
        let q = quarantine(d.path(), &["lock"]).unwrap().unwrap();
        assert!(q.file_name().unwrap().to_string_lossy().starts_with(PREFIX));
        assert_eq!(fs::read(q.join("log/0.log")).unwrap(), b"x");
        assert!(q.join("identity").exists());
        let left: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(PREFIX))
            .collect();
        assert_eq!(left, vec!["lock".to_string()]);
        // A second quarantine gets its own folder; nothing to move gives None.
        fs::write(d.path().join("state"), b"y").unwrap();
        let q2 = quarantine(d.path(), &["lock"]).unwrap().unwrap();
        assert_ne!(q, q2);
        assert_eq!(quarantine(d.path(), &["lock"]).unwrap(), None);
    }

    #[test]
    fn a_missing_log_is_not_corrupt() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_log(&d.path().join("log")).is_ok());
    }
}
