//! The segment log on a simulated disk: machine crashes that lose what was not
//! synced, processes killed between two calls, a full disk, a failing fsync.

use super::*;
use crate::fs::{FileSystem, SharedFs, SimFs, SimOptions};
use std::sync::Arc;

/// The replica directory, durable on the simulated disk; the log lives in `log/`.
fn replica_disk(options: SimOptions) -> (SimFs, PathBuf) {
    let fs = SimFs::with_options(options);
    fs.create_dir_all(Path::new("/r")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    (fs, PathBuf::from("/r/log"))
}

/// Opens the log as a replica would: syncing for real.
fn open_on(fs: &SimFs, dir: &Path, segment_bytes: u64) -> SegmentLog {
    let shared: SharedFs = Arc::new(fs.clone());
    SegmentLog::open_on(
        shared,
        dir,
        LogOptions {
            segment_bytes,
            sync: true,
        },
    )
    .unwrap()
}

#[test]
fn a_segment_created_before_a_kill_is_durable_once_the_log_reopens() {
    let (fs, dir) = replica_disk(SimOptions::default());
    let mut log = open_on(&fs, &dir, 100);
    let mut slot = 0;
    while log.stats().segments < 2 {
        log.append(&[accepted(slot, 1)]).unwrap();
        slot += 1;
    }
    // Killed right after the rotation: segment 1 exists in the page cache only.
    drop(log);
    let mut log = open_on(&fs, &dir, 100);
    let promise = Record::Promised(Ballot::new(7, 2));
    log.append(std::slice::from_ref(&promise)).unwrap();
    log.sync().unwrap();
    drop(log);
    // The promise was synced, so no power loss may take it away.
    fs.crash_losing_unsynced();
    let loaded = reopen_and_load_on(&fs, &dir);
    assert_eq!(loaded.last(), Some(&promise), "a synced promise was lost");
    assert_eq!(Replayed::of(&loaded).accepted.len(), slot as usize);
}

#[test]
fn a_log_folder_created_before_a_kill_is_durable_once_the_log_reopens() {
    let (fs, dir) = replica_disk(SimOptions::default());
    // Killed between creating the folder and syncing its parent.
    fs.create_dir_all(&dir).unwrap();
    let mut log = open_on(&fs, &dir, 1 << 20);
    log.append(&[accepted(0, 3)]).unwrap();
    log.sync().unwrap();
    drop(log);
    fs.crash_losing_unsynced();
    assert_eq!(reopen_and_load_on(&fs, &dir), vec![accepted(0, 3)]);
}

#[test]
fn records_synced_after_a_rotation_survive_a_crash() {
    let (fs, dir) = replica_disk(SimOptions::default());
    let mut log = open_on(&fs, &dir, 64);
    let appended: Vec<Record> = (0..12).map(|slot| accepted(slot, 1)).collect();
    for record in &appended {
        log.append(std::slice::from_ref(record)).unwrap();
        log.sync().unwrap();
    }
    assert!(log.stats().segments > 3);
    drop(log);
    fs.crash_losing_unsynced();
    let loaded = reopen_and_load_on(&fs, &dir);
    let slots: Vec<Record> = loaded.into_iter().filter(|r| r.slot().is_some()).collect();
    assert_eq!(slots, appended);
}

#[test]
fn a_full_disk_fails_the_append_and_the_log_goes_on_once_there_is_room() {
    let (fs, dir) = replica_disk(SimOptions::default());
    let mut log = open_on(&fs, &dir, 1 << 20);
    log.append(&[accepted(0, 1)]).unwrap();
    log.sync().unwrap();
    fs.set_capacity(Some(fs.used() + 10));
    let err = log.append(&[accepted(1, 1)]).unwrap_err();
    assert!(
        matches!(&err, StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{err:?}"
    );
    fs.set_capacity(None);
    log.append(&[accepted(2, 1)]).unwrap();
    log.sync().unwrap();
    drop(log);
    fs.crash_losing_unsynced();
    assert_eq!(
        reopen_and_load_on(&fs, &dir),
        vec![accepted(0, 1), accepted(2, 1)]
    );
}

#[test]
fn a_failed_fdatasync_makes_the_log_refuse_until_reopened() {
    let (fs, dir) = replica_disk(SimOptions::default());
    let mut log = open_on(&fs, &dir, 1 << 20);
    log.append(&[accepted(0, 1)]).unwrap();
    log.sync().unwrap();
    log.append(&[accepted(1, 1)]).unwrap();
    fs.fail_nth_sync(1);
    assert!(log.sync().is_err());
    assert!(
        log.append(&[accepted(2, 1)]).is_err(),
        "used after a failed sync"
    );
    drop(log);
    fs.crash_losing_unsynced();
    assert_eq!(reopen_and_load_on(&fs, &dir), vec![accepted(0, 1)]);
}

#[test]
fn a_flipped_bit_on_the_simulated_medium_is_refused() {
    let (fs, dir) = replica_disk(SimOptions::default());
    let mut log = open_on(&fs, &dir, 1 << 20);
    log.append(&[accepted(0, 1), accepted(1, 1), accepted(2, 1)])
        .unwrap();
    log.sync().unwrap();
    let (segment, _) = log.tail();
    drop(log);
    fs.corrupt(&segment, 1, 0x04).unwrap(); // the first record's length field
    let shared: SharedFs = Arc::new(fs.clone());
    let err = SegmentLog::open_on(shared, &dir, LogOptions::default()).unwrap_err();
    assert_corrupt_at(err, &segment, 0);
}

fn reopen_and_load_on(fs: &SimFs, dir: &Path) -> Vec<Record> {
    open_on(fs, dir, 1 << 20).load().unwrap()
}
