//! One suite every [`Storage`] passes: what the driver and the core rely on.

use super::*;
use crate::storage::MemDisk;
use tempfile::TempDir;

/// Runs the suite on a storage that `reopen` opens afresh on the same disk, as a
/// restarted replica would (after a clean shutdown: everything was synced).
fn suite<S: Storage>(mut reopen: impl FnMut() -> S) {
    let mut storage = reopen();
    assert_eq!(storage.load().unwrap(), vec![], "a new storage is empty");
    storage.append(&every_variant()).unwrap();
    storage.sync().unwrap();
    drop(storage);
    let mut storage = reopen();
    assert_eq!(storage.load().unwrap(), every_variant(), "round trip");

    // A replica's life: accepts, learns, commits, new promises, forgetting.
    let mut appended = every_variant();
    let mut below = 0;
    for slot in 4..64 {
        let round = 5 + slot / 16;
        let mut batch = vec![accepted(slot, round)];
        if slot.is_multiple_of(16) {
            batch.insert(0, Record::Promised(Ballot::new(round, 1)));
        }
        if slot.is_multiple_of(3) {
            batch.push(Record::Learned {
                slot: slot - 1,
                entry: Entry::Noop,
            });
            batch.push(Record::Committed { upto: slot });
        }
        storage.append(&batch).unwrap();
        storage.sync().unwrap();
        appended.extend(batch);
        if slot.is_multiple_of(10) {
            below = slot - 5;
            storage.append(&[Record::Forgotten { below }]).unwrap();
            appended.push(Record::Forgotten { below });
            storage.compact(below).unwrap();
        }
    }
    storage.sync().unwrap();
    let expected = Replayed::of(&appended).from(below);
    assert_eq!(
        Replayed::of(&storage.load().unwrap()).from(below),
        expected,
        "before reopen"
    );
    drop(storage);
    let loaded = reopen().load().unwrap();
    assert_eq!(Replayed::of(&loaded).from(below), expected, "after reopen");
    assert!(loaded.len() < appended.len(), "compaction deleted nothing");
}

#[test]
fn segment_log_conforms() {
    let dir = TempDir::new().unwrap();
    suite(|| open(dir.path(), 256));
}

#[test]
fn mem_storage_conforms() {
    let disk = MemDisk::new();
    suite(|| disk.open());
}
