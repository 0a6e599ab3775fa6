//! The in-memory storage (crashes lose unsynced records) and fault injection.

use super::*;
use crate::storage::{FaultPlan, FaultyStorage, MemDisk, MemStorage};

#[test]
fn a_crash_keeps_only_the_synced_records() {
    let mut storage = MemStorage::new();
    storage.append(&[accepted(0, 1), accepted(1, 1)]).unwrap();
    storage.sync().unwrap();
    storage.append(&[accepted(2, 1)]).unwrap();
    let disk = storage.disk();
    assert_eq!(disk.records().len(), 3);
    disk.crash();
    assert_eq!(
        disk.open().load().unwrap(),
        vec![accepted(0, 1), accepted(1, 1)]
    );
    assert_eq!(disk.synced_records(), disk.records());
}

#[test]
fn a_handle_opened_before_a_crash_fails_and_the_restarted_one_works() {
    let disk = MemDisk::new();
    let mut before = disk.open();
    before.append(&[accepted(0, 1)]).unwrap();
    before.sync().unwrap();
    disk.crash();
    assert!(matches!(
        before.append(&[accepted(1, 1)]),
        Err(StorageError::Injected(_))
    ));
    assert!(matches!(before.sync(), Err(StorageError::Injected(_))));
    let mut after = disk.open();
    after.append(&[accepted(1, 1)]).unwrap();
    assert_eq!(after.load().unwrap(), vec![accepted(0, 1), accepted(1, 1)]);
}

#[test]
fn compact_drops_forgotten_instances_and_keeps_what_outlives_them() {
    let mut storage = MemStorage::new();
    let appended = vec![
        Record::Promised(Ballot::new(2, 0)),
        accepted(0, 5), // its promise of 5.1 must survive
        Record::Learned {
            slot: 1,
            entry: Entry::Noop,
        },
        Record::Committed { upto: 2 },
        accepted(3, 2),
        Record::Forgotten { below: 2 },
    ];
    storage.append(&appended).unwrap();
    storage.sync().unwrap();
    storage.compact(2).unwrap();
    let kept = storage.load().unwrap();
    assert_eq!(
        kept,
        vec![
            Record::Promised(Ballot::new(5, 1)),
            Record::Committed { upto: 2 },
            accepted(3, 2),
            Record::Forgotten { below: 2 },
        ]
    );
    assert_eq!(Replayed::of(&kept), Replayed::of(&appended).from(2));
    storage.disk().crash();
    assert_eq!(
        storage.disk().open().load().unwrap(),
        kept,
        "compaction lost the synced mark"
    );
}

#[test]
fn compact_never_drops_a_synced_fact_for_an_unsynced_one() {
    let mut storage = MemStorage::new();
    storage
        .append(&[
            Record::Committed { upto: 1 },
            Record::Promised(Ballot::new(1, 0)),
        ])
        .unwrap();
    storage.sync().unwrap();
    storage
        .append(&[
            Record::Committed { upto: 2 },
            Record::Promised(Ballot::new(2, 0)),
        ])
        .unwrap();
    storage.compact(10).unwrap();
    storage.disk().crash();
    let state = Replayed::of(&storage.disk().open().load().unwrap());
    assert_eq!((state.committed, state.promised), (1, Ballot::new(1, 0)));
}

#[test]
fn faulty_storage_fails_exactly_the_nth_append() {
    let mut storage = FaultyStorage::new(MemStorage::new(), FaultPlan::fail_append(2));
    storage.append(&[accepted(0, 1)]).unwrap();
    let err = storage.append(&[accepted(1, 1)]).unwrap_err();
    assert!(
        matches!(&err, StorageError::Injected(m) if m.contains("append #2")),
        "{err}"
    );
    storage.append(&[accepted(2, 1)]).unwrap();
    storage.sync().unwrap();
    assert_eq!(
        storage.load().unwrap(),
        vec![accepted(0, 1), accepted(2, 1)]
    );
}

#[test]
fn a_failed_sync_leaves_records_unsynced_so_a_crash_loses_them() {
    let mut storage = FaultyStorage::new(MemStorage::new(), FaultPlan::fail_sync(2));
    storage.append(&[accepted(0, 1)]).unwrap();
    storage.sync().unwrap();
    storage.append(&[accepted(1, 1)]).unwrap();
    assert!(matches!(storage.sync(), Err(StorageError::Injected(_))));
    let disk = storage.inner().disk();
    disk.crash();
    assert_eq!(disk.open().load().unwrap(), vec![accepted(0, 1)]);
}

#[test]
fn then_stop_fails_every_call_after_the_planned_fault() {
    let mut storage = FaultyStorage::new(MemStorage::new(), FaultPlan::fail_sync(1).then_stop());
    storage.append(&[accepted(0, 1)]).unwrap();
    assert!(storage.sync().is_err());
    assert!(storage.switch().is_stopped());
    assert!(matches!(
        storage.append(&[accepted(1, 1)]),
        Err(StorageError::Injected(_))
    ));
    assert!(matches!(storage.load(), Err(StorageError::Injected(_))));
    assert!(matches!(storage.compact(1), Err(StorageError::Injected(_))));
    assert_eq!(storage.into_inner().disk().records(), vec![accepted(0, 1)]);
}

#[test]
fn the_switch_stops_and_revives_a_storage_owned_elsewhere() {
    let mut storage = FaultyStorage::new(MemStorage::new(), FaultPlan::default());
    let switch = storage.switch();
    switch.stop();
    assert!(matches!(
        storage.append(&[accepted(0, 1)]),
        Err(StorageError::Injected(_))
    ));
    switch.resume();
    storage.append(&[accepted(1, 1)]).unwrap();
    assert_eq!(storage.load().unwrap(), vec![accepted(1, 1)]);
}
