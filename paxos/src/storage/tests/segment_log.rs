//! The segment log's normal life: round trips, rotation, heads, compaction, syncs.

use super::*;
use crate::storage::segment;
use tempfile::TempDir;

/// The records of one segment file.
fn records_of(path: &Path) -> Vec<Record> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let scan = segment::scan(path, &bytes, false, &mut out).unwrap();
    assert!(scan.torn.is_none());
    out
}

#[test]
fn every_record_variant_round_trips_through_sync_and_reopen() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 1 << 20);
    assert_eq!(log.load().unwrap(), vec![]);
    log.append(&every_variant()).unwrap();
    log.sync().unwrap();
    drop(log);
    assert_eq!(reopen_and_load(dir.path(), 1 << 20), every_variant());
}

#[test]
fn appends_after_reopen_continue_the_last_segment() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 1 << 20);
    log.append(&[accepted(0, 1)]).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = open(dir.path(), 1 << 20);
    log.append(&[accepted(1, 1), accepted(2, 1)]).unwrap();
    log.sync().unwrap();
    // load() after appends reads the disk again.
    assert_eq!(
        log.load().unwrap(),
        vec![accepted(0, 1), accepted(1, 1), accepted(2, 1)]
    );
    drop(log);
    assert_eq!(reopen_and_load(dir.path(), 1 << 20).len(), 3);
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[test]
fn rotation_spreads_records_over_segments_in_order() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 256);
    let appended: Vec<Record> = (0..60).map(|slot| accepted(slot, 2)).collect();
    for chunk in appended.chunks(3) {
        log.append(chunk).unwrap();
        log.sync().unwrap();
    }
    let files = segment_files(dir.path());
    assert!(files.len() >= 5, "only {} segments", files.len());
    assert_eq!(log.stats().segments, files.len() as u64);
    for file in &files[1..] {
        // Each segment after the first starts with the latest promise, implied by
        // the accepts (there is no Committed or Forgotten yet).
        assert_eq!(
            records_of(file)[0],
            Record::Promised(Ballot::new(2, 1)),
            "{}",
            file.display()
        );
    }
    drop(log);
    let loaded = reopen_and_load(dir.path(), 256);
    let slot_records: Vec<Record> = loaded.into_iter().filter(|r| r.slot().is_some()).collect();
    assert_eq!(slot_records, appended);
}

#[test]
fn a_new_segment_head_restates_the_latest_promise_commit_and_forgotten() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 1);
    log.append(&[
        Record::Promised(Ballot::new(5, 0)),
        Record::Committed { upto: 3 },
        Record::Committed { upto: 2 },
        Record::Forgotten { below: 1 },
        accepted(9, 7), // promises 7.1, above the explicit promise
        Record::Promised(Ballot::new(6, 0)),
    ])
    .unwrap();
    log.append(&[accepted(10, 7)]).unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 2);
    assert_eq!(
        records_of(&files[1]),
        vec![
            Record::Promised(Ballot::new(7, 1)),
            Record::Committed { upto: 3 },
            Record::Forgotten { below: 1 },
            accepted(10, 7),
        ]
    );
}

#[test]
fn compact_deletes_exactly_the_forgotten_segments_and_the_facts_survive_reopen() {
    let dir = TempDir::new().unwrap();
    // segment_bytes = 1: every append starts a segment, so segment i + 1 holds slot i.
    let mut log = open(dir.path(), 1);
    let mut appended = vec![
        Record::Promised(Ballot::new(3, 0)),
        Record::Committed { upto: 2 },
    ];
    log.append(&appended).unwrap();
    for slot in 0..8 {
        // Slot 2 is accepted at a ballot above every explicit promise.
        let record = accepted(slot, if slot == 2 { 9 } else { 3 });
        log.append(std::slice::from_ref(&record)).unwrap();
        appended.push(record);
    }
    let forgotten = Record::Forgotten { below: 5 };
    log.append(std::slice::from_ref(&forgotten)).unwrap();
    appended.push(forgotten);
    log.sync().unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 10);

    log.compact(5).unwrap();
    // Segment 0 (facts only) and the segments of slots 0..5 go; slots 5..8 and the
    // current segment stay.
    assert_eq!(segment_files(dir.path()), files[6..].to_vec());
    assert_eq!(log.stats().segments, 4);
    log.sync().unwrap();
    drop(log);

    let loaded = reopen_and_load(dir.path(), 1);
    assert_eq!(Replayed::of(&loaded), Replayed::of(&appended).from(5));
    assert_eq!(Replayed::of(&loaded).promised, Ballot::new(9, 1));
    assert_eq!(Replayed::of(&loaded).committed, 2);
}

#[test]
fn compact_keeps_a_segment_with_a_live_instance_and_deletes_around_it() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 1);
    let appended = [
        accepted(1, 1),
        accepted(10, 1),
        accepted(2, 1),
        accepted(3, 1),
        accepted(4, 1),
        accepted(6, 1),
    ];
    for record in &appended {
        log.append(std::slice::from_ref(record)).unwrap();
    }
    let files = segment_files(dir.path());
    log.compact(5).unwrap();
    // Slot 1 goes, slot 10 stays, slots 2, 3 and 4 go, the current segment (slot 6,
    // live) stays.
    assert_eq!(
        segment_files(dir.path()),
        vec![files[1].clone(), files[5].clone()]
    );
    drop(log);
    let loaded = reopen_and_load(dir.path(), 1);
    assert_eq!(
        Replayed::of(&loaded).from(5),
        Replayed::of(&appended).from(5)
    );
    assert_eq!(
        Replayed::of(&loaded)
            .accepted
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![6, 10]
    );
}

#[test]
fn compact_replaces_a_forgotten_current_segment_by_its_head() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 1 << 20);
    log.append(&[accepted(0, 1), Record::Forgotten { below: 100 }])
        .unwrap();
    let before = segment_files(dir.path());
    log.compact(100).unwrap();
    drop(log);
    let after = segment_files(dir.path());
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "the current segment was not replaced");
    assert_eq!(
        reopen_and_load(dir.path(), 1 << 20),
        vec![
            Record::Promised(Ballot::new(1, 1)),
            Record::Forgotten { below: 100 }
        ]
    );
}

/// Total bytes of the files in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum()
}

/// A log with slots `0..100` accepted at ballot 2.1 after a promise of 2.0, decided
/// and forgotten below `forgotten`, in one segment of 1 MiB.
fn hundred_slots(dir: &Path, forgotten: Slot) -> (SegmentLog, Vec<Record>) {
    let mut log = SegmentLog::open(
        dir,
        LogOptions {
            segment_bytes: 1 << 20,
            sync: true,
        },
    )
    .unwrap();
    let mut appended = vec![Record::Promised(Ballot::new(2, 0))];
    appended.extend((0..100).map(|slot| accepted(slot, 2)));
    appended.push(Record::Committed { upto: 100 });
    appended.push(Record::Forgotten { below: forgotten });
    log.append(&appended).unwrap();
    log.sync().unwrap();
    (log, appended)
}

#[test]
fn compact_of_an_idle_log_leaves_only_the_facts_durably() {
    let dir = TempDir::new().unwrap();
    let (mut log, appended) = hundred_slots(dir.path(), 100);
    assert!(dir_bytes(dir.path()) > 2000);
    let dir_syncs = log.stats().dir_syncs;
    log.compact(100).unwrap();
    assert!(
        dir_bytes(dir.path()) < 1024,
        "{} bytes left",
        dir_bytes(dir.path())
    );
    assert_eq!(log.stats().segments, 1);
    // The new segment's entry and the old one's removal are both on disk already.
    assert_eq!(log.stats().dir_syncs, dir_syncs + 2);
    let synced = log.stats();
    log.sync().unwrap();
    assert_eq!(log.stats(), synced, "compact left something unsynced");
    drop(log);

    let state = Replayed::of(&reopen_and_load(dir.path(), 1 << 20));
    assert_eq!(state, Replayed::of(&appended).from(100));
    assert_eq!(
        (state.promised, state.committed, state.forgotten),
        (Ballot::new(2, 1), 100, 100)
    );
}

#[test]
fn compact_again_after_an_idle_compaction_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let (mut log, _) = hundred_slots(dir.path(), 100);
    log.compact(100).unwrap();
    let (files, bytes, stats) = (
        segment_files(dir.path()),
        dir_bytes(dir.path()),
        log.stats(),
    );
    log.compact(100).unwrap();
    log.compact(100).unwrap();
    assert_eq!(
        segment_files(dir.path()),
        files,
        "a head-only segment was rotated"
    );
    assert_eq!((dir_bytes(dir.path()), log.stats()), (bytes, stats));
}

#[test]
fn compact_keeps_the_current_segment_while_it_holds_a_live_instance() {
    let dir = TempDir::new().unwrap();
    let (mut log, appended) = hundred_slots(dir.path(), 99);
    let (files, bytes) = (segment_files(dir.path()), dir_bytes(dir.path()));
    // Slot 99 is still live: the segment (and slots 0..99 in it) must stay.
    log.compact(99).unwrap();
    assert_eq!(
        (segment_files(dir.path()), dir_bytes(dir.path())),
        (files, bytes)
    );
    drop(log);
    let state = Replayed::of(&reopen_and_load(dir.path(), 1 << 20));
    assert_eq!(state.from(99), Replayed::of(&appended).from(99));
}

#[test]
fn sync_with_nothing_appended_is_a_no_op() {
    let dir = TempDir::new().unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    log.sync().unwrap();
    // The new directory's first segment needed a directory sync, not a data sync.
    assert_eq!((log.stats().syncs, log.stats().dir_syncs), (0, 1));
    log.append(&[accepted(0, 1)]).unwrap();
    log.sync().unwrap();
    let after_one = log.stats();
    assert_eq!((after_one.syncs, after_one.dir_syncs), (1, 1));
    assert!(after_one.sync_nanos > 0, "time in fdatasync not counted");
    log.sync().unwrap();
    log.append(&[]).unwrap();
    log.sync().unwrap();
    assert_eq!(log.stats(), after_one);
}

#[test]
fn rotation_syncs_the_previous_segment_and_the_next_sync_syncs_the_directory() {
    let dir = TempDir::new().unwrap();
    let mut log = SegmentLog::open(
        dir.path(),
        LogOptions {
            segment_bytes: 1,
            sync: true,
        },
    )
    .unwrap();
    log.append(&[accepted(0, 1)]).unwrap();
    log.append(&[accepted(1, 1)]).unwrap(); // rotates: syncs segment 0 and the directory
    let stats = log.stats();
    assert_eq!((stats.syncs, stats.dir_syncs, stats.segments), (1, 1, 2));
    log.sync().unwrap(); // the new segment's data and directory entry
    let stats = log.stats();
    assert_eq!(
        (stats.syncs, stats.dir_syncs, stats.records, stats.appends),
        (2, 2, 2, 2)
    );
}

#[test]
fn a_record_above_the_frame_limit_is_refused_and_the_log_stays_usable() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 1 << 30);
    let huge = Record::Learned {
        slot: 1,
        entry: Entry::single(vec![7; 64 << 20]),
    };
    let err = log.append(&[accepted(0, 1), huge]).unwrap_err();
    assert!(
        matches!(&err, StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput),
        "{err:?}"
    );
    log.append(&[accepted(2, 1)]).unwrap();
    drop(log);
    assert_eq!(reopen_and_load(dir.path(), 1 << 30), vec![accepted(2, 1)]);
}
