//! Damaged replica state is moved aside, never repaired in place.
//!
//! A log whose checksum fails before its tail (or an application file that fails
//! its own checks) means this replica may have forgotten promises and accepted
//! values. Cutting the log at the bad record would let it vote with what is left,
//! which is exactly the unsafe restart of a lost disk. So the application moves the
//! whole directory's contents to `DIR/quarantine-<unix seconds>/` (kept for
//! forensics), says so in the log, and recovers like a lost disk: as a new acceptor
//! incarnation with a snapshot from its peers.
//!
//! A missing log is damage too, once the replica's identity record says it ran: a
//! replica creates its log durably ([`create_log_on`]) before it first writes its
//! identity, so an identity without a log ([`check_known_log_on`]) means the log,
//! and the promises in it, were lost.

use crate::fs::{self, FileSystem, SharedFs};
use crate::storage::{LogOptions, SegmentLog, Storage, StorageError};
use crate::types::Slot;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Prefix of the folders damaged state is moved to.
pub const PREFIX: &str = "quarantine-";

/// Opens the log in `log_dir` once, to find out whether it is corrupt (a torn tail
/// is cut, as at every start). A missing folder is fine.
pub fn check_log(log_dir: &Path) -> Result<(), StorageError> {
    check_log_on(fs::os(), log_dir)
}

/// Like [`check_log`], on the file system `fs`.
pub fn check_log_on(fs: SharedFs, log_dir: &Path) -> Result<(), StorageError> {
    if !fs.exists(log_dir) {
        return Ok(());
    }
    SegmentLog::open_on(fs, log_dir, LogOptions::default()).map(drop)
}

/// Creates the (empty) log in `log_dir` on `fs`, durably: its folder, its first
/// segment and both directory entries. A replica does this before it first writes
/// its identity record.
pub fn create_log_on(fs: SharedFs, log_dir: &Path) -> Result<(), StorageError> {
    SegmentLog::open_on(fs, log_dir, LogOptions::default())?.sync()
}

/// Who could give a replica back a lost log: whether [`check_known_log_on`]
/// treats a lost log as damage or starts a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogRescue {
    /// The group has other replicas (or this one is recovering from them): a lost
    /// log is damage, the caller quarantines and recovers from the peers.
    FromPeers,
    /// A one-replica group: no peer holds the log, so a lost log is moved aside
    /// and a new one starts after the state's checkpoint
    /// ([`restart_log_after_on`]), with an error line.
    None,
}

/// Checks the log of a replica whose identity record says it has run and whose
/// state covers every instance below `applied`: like [`check_log_on`], and a lost
/// log ([`known_log_lost_on`]) is [`StorageError::Corrupt`] too (the replica
/// would vote without the promises it made), unless `rescue` is
/// [`LogRescue::None`]: then the log starts again after `applied`.
pub fn check_known_log_on(
    fs: SharedFs,
    log_dir: &Path,
    applied: Slot,
    rescue: LogRescue,
) -> Result<(), StorageError> {
    if let Some(reason) = known_log_lost_on(&*fs, log_dir, applied)? {
        if rescue == LogRescue::FromPeers {
            return Err(StorageError::Corrupt {
                path: log_dir.to_path_buf(),
                offset: 0,
                reason,
            });
        }
        tracing::error!(
            dir = %log_dir.display(),
            applied,
            reason,
            "the log of this one-replica group was lost and no peer can give it back: starting \
             a new log after the state's checkpoint (what the old one held is moved aside); \
             writes acknowledged after that checkpoint are lost"
        );
        restart_log_after_on(fs.clone(), log_dir, applied)?;
    }
    check_log_on(fs, log_dir)
}

/// Why the log of a replica whose identity record says it has run was lost, or
/// `None` if it was not: no segment at all, or (when the application's state
/// covers every instance below `applied` > 0) segments without a single byte. A
/// checkpoint is written only once the log's decisions it covers are durable, so
/// a replica that applied anything has records in its log; an empty log next to
/// such a state was truncated or deleted, and writes proposed into it would land
/// below what the state machine has applied, never to be applied (issue #18, B5).
pub fn known_log_lost_on(
    fs: &dyn FileSystem,
    log_dir: &Path,
    applied: Slot,
) -> Result<Option<String>, StorageError> {
    if !SegmentLog::exists_on(fs, log_dir)? {
        return Ok(Some(
            "no log segment, although the replica's identity record says it has run \
             (it would vote without the promises it made)"
                .into(),
        ));
    }
    if applied > 0 && SegmentLog::is_empty_on(fs, log_dir)? {
        return Ok(Some(format!(
            "the log holds no record, although the replica's state covers every instance \
             below {applied}: the log was truncated or deleted (it would vote without the \
             promises it made, and writes would land below what is applied)"
        )));
    }
    Ok(None)
}

/// For a one-replica group whose log was lost ([`known_log_lost_on`]) and whose
/// state is intact: moves what is left of the log to `<log_dir>.lost-<unix
/// seconds>` and starts a new log after `applied` (its only record says every
/// instance below `applied` is forgotten), so new instances follow the state.
/// Safe only without peers: no other acceptor can hold a promise or a vote this
/// replica forgot. What the lost log held past the state's checkpoint is gone.
pub fn restart_log_after_on(
    fs: SharedFs,
    log_dir: &Path,
    applied: Slot,
) -> Result<(), StorageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StorageError::Io { path, source }
    };
    if fs.exists(log_dir) {
        let mut aside = log_dir.as_os_str().to_owned();
        aside.push(format!(".lost-{}", now_secs()));
        fs.rename(log_dir, Path::new(&aside)).map_err(io(log_dir))?;
    }
    let mut log = SegmentLog::open_on(fs.clone(), log_dir, LogOptions::default())?;
    log.append(&[crate::record::Record::Forgotten { below: applied }])?;
    log.sync()?;
    if let Some(parent) = log_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs.sync_dir(parent).map_err(io(parent))?;
    }
    Ok(())
}

/// True if `e` says the log is damaged (rather than, say, unreadable).
pub fn is_corrupt(e: &StorageError) -> bool {
    matches!(e, StorageError::Corrupt { .. })
}

/// Moves every entry of `dir` except those named in `keep` (and earlier quarantine
/// folders) into a new `dir/quarantine-<unix seconds>/`, durably. Returns that
/// folder, or `None` if there was nothing to move.
pub fn quarantine(dir: &Path, keep: &[&str]) -> io::Result<Option<PathBuf>> {
    quarantine_on(&fs::OsFs, dir, keep, now_secs())
}

/// Seconds since the Unix epoch by the system clock: the name of a quarantine
/// folder made now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Like [`quarantine`], on the file system `fs`, naming the folder after `secs`
/// (the caller's clock: a simulator passes its own time).
pub fn quarantine_on(
    fs: &dyn FileSystem,
    dir: &Path,
    keep: &[&str],
    secs: u64,
) -> io::Result<Option<PathBuf>> {
    let moving: Vec<OsString> = fs
        .read_dir(dir)?
        .into_iter()
        .filter(|name| {
            let s = name.to_string_lossy();
            !s.starts_with(PREFIX) && !keep.iter().any(|k| *k == s)
        })
        .collect();
    if moving.is_empty() {
        return Ok(None);
    }
    let mut target = dir.join(format!("{PREFIX}{secs}"));
    for n in 1.. {
        if !fs.exists(&target) {
            break;
        }
        target = dir.join(format!("{PREFIX}{secs}-{n}"));
    }
    fs.create_dir_all(&target)?;
    for name in moving {
        fs.rename(&dir.join(&name), &target.join(&name))?;
    }
    fs.sync_dir(&target)?;
    fs.sync_dir(dir)?;
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::SimFs;
    use std::fs;

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

    /// Issue #18, B5: a known replica's log truncated to nothing (or deleted) next
    /// to a state that applied instances is lost, and an empty log of a replica
    /// that applied nothing is not.
    #[test]
    fn an_emptied_or_deleted_log_of_a_replica_that_applied_is_lost() {
        let d = tempfile::tempdir().unwrap();
        let log_dir = d.path().join("log");
        let os = crate::fs::os();
        assert!(
            known_log_lost_on(&*os, &log_dir, 0).unwrap().is_some(),
            "no log at all"
        );
        create_log_on(os.clone(), &log_dir).unwrap();
        assert_eq!(
            known_log_lost_on(&*os, &log_dir, 0).unwrap(),
            None,
            "a new replica"
        );
        let lost = known_log_lost_on(&*os, &log_dir, 51)
            .unwrap()
            .expect("lost");
        assert!(
            lost.contains("truncated or deleted") && lost.contains("51"),
            "{lost}"
        );
        let mut log = SegmentLog::open(&log_dir, LogOptions::default()).unwrap();
        log.append(&[crate::record::Record::Committed { upto: 51 }])
            .unwrap();
        log.sync().unwrap();
        drop(log);
        assert_eq!(
            known_log_lost_on(&*os, &log_dir, 51).unwrap(),
            None,
            "it has records"
        );
        for (_, seg) in crate::storage::segment::list(&*os, &log_dir).unwrap() {
            fs::OpenOptions::new()
                .write(true)
                .open(seg)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
        assert!(
            known_log_lost_on(&*os, &log_dir, 51).unwrap().is_some(),
            "truncated"
        );
        assert!(matches!(
            check_known_log_on(os.clone(), &log_dir, 51, LogRescue::FromPeers),
            Err(StorageError::Corrupt { .. })
        ));
    }

    /// A one-replica group restarts its log after the checkpoint: new instances
    /// follow the state instead of landing below what it applied.
    #[test]
    fn a_restarted_log_begins_after_the_checkpoint_and_keeps_the_old_one_aside() {
        let d = tempfile::tempdir().unwrap();
        let log_dir = d.path().join("log");
        create_log_on(crate::fs::os(), &log_dir).unwrap();
        restart_log_after_on(crate::fs::os(), &log_dir, 51).unwrap();
        let mut log = SegmentLog::open(&log_dir, LogOptions::default()).unwrap();
        let cfg = crate::core::CoreConfig::new(0, 1);
        let (replica, replay) = crate::node::restore(&cfg, &mut log, 51).unwrap();
        assert_eq!((replica.floor(), replica.commit_index()), (51, 51));
        assert!(replay.is_empty());
        let aside = fs::read_dir(d.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("log.lost-")
            })
            .count();
        assert_eq!(aside, 1, "the old log is kept aside");
        assert_eq!(
            known_log_lost_on(&*crate::fs::os(), &log_dir, 51).unwrap(),
            None
        );
    }

    #[test]
    fn a_missing_log_is_not_corrupt() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_log(&d.path().join("log")).is_ok());
    }

    #[test]
    fn a_known_replica_needs_a_log_with_a_segment() {
        let sim = SimFs::new();
        let shared: SharedFs = std::sync::Arc::new(sim.clone());
        let log = Path::new("/replica/log");
        sim.create_dir_all(Path::new("/replica")).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let missing = check_known_log_on(shared.clone(), log, 0, LogRescue::FromPeers).unwrap_err();
        assert!(is_corrupt(&missing), "{missing}");
        sim.create_dir_all(log).unwrap();
        let empty = check_known_log_on(shared.clone(), log, 0, LogRescue::FromPeers).unwrap_err();
        assert!(is_corrupt(&empty), "{empty}");
        assert!(
            check_log_on(shared.clone(), log).is_ok(),
            "an unknown replica may have none"
        );
        sim.remove_dir_all(log).unwrap();
        create_log_on(shared.clone(), log).unwrap();
        sim.crash_losing_unsynced();
        check_known_log_on(shared, log, 0, LogRescue::FromPeers).unwrap();
    }

    #[test]
    fn a_quarantine_is_named_after_the_given_time_and_durable() {
        let sim = SimFs::new();
        let dir = Path::new("/replica");
        sim.create_dir_all(&dir.join("log")).unwrap();
        sim.write(&dir.join("log/0.log"), b"x").unwrap();
        sim.write(&dir.join("identity"), b"{}").unwrap();
        sim.sync_file_system(dir).unwrap();
        let q = quarantine_on(&sim, dir, &[], 77).unwrap().unwrap();
        assert_eq!(q, dir.join("quarantine-77"));
        let again = Path::new("/replica/state");
        sim.write(again, b"y").unwrap();
        assert_eq!(
            quarantine_on(&sim, dir, &[], 77).unwrap().unwrap(),
            dir.join("quarantine-77-1")
        );
        // Durable: a crash that keeps nothing unsynced keeps the moves.
        sim.crash_losing_unsynced();
        assert_eq!(
            sim.files(),
            [
                dir.join("quarantine-77/identity"),
                dir.join("quarantine-77/log/0.log"),
                dir.join("quarantine-77-1/state"),
            ]
        );
    }
}
