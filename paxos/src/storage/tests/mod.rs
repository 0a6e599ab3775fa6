//! Tests of the storage layer: the segment log, its recovery rule, the in-memory
//! storage and a conformance suite both implementations run.

mod alloc;
mod conformance;
mod crash_property;
mod memory;
mod recovery;
mod segment_log;
mod sim_disk;

use super::{LogOptions, SegmentLog, Storage, StorageError};
use crate::record::Record;
use crate::types::{Ballot, Entry, Slot};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options for tests: no fsync (the tests crash by editing files, not the machine).
fn opts(segment_bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes,
        sync: false,
    }
}

fn open(dir: &Path, segment_bytes: u64) -> SegmentLog {
    SegmentLog::open(dir, opts(segment_bytes)).unwrap()
}

fn reopen_and_load(dir: &Path, segment_bytes: u64) -> Vec<Record> {
    open(dir, segment_bytes).load().unwrap()
}

fn accepted(slot: Slot, round: u64) -> Record {
    let cmd = format!("put k{slot} v{round}").into_bytes();
    Record::Accepted {
        slot,
        ballot: Ballot::new(round, 1),
        entry: Entry::single(cmd),
    }
}

/// One record of every variant, entries of every shape included.
fn every_variant() -> Vec<Record> {
    vec![
        Record::Promised(Ballot::new(4, 2)),
        Record::Accepted {
            slot: 0,
            ballot: Ballot::new(4, 2),
            entry: Entry::Noop,
        },
        accepted(1, 4),
        Record::Accepted {
            slot: 2,
            ballot: Ballot::new(4, 2),
            entry: Entry::batch([vec![], vec![0; 3000], b"append k x".to_vec()]),
        },
        Record::Learned {
            slot: 3,
            entry: Entry::single(vec![0xFF; 17]),
        },
        Record::Learned {
            slot: u64::MAX,
            entry: Entry::Noop,
        },
        Record::Committed { upto: 3 },
        Record::Forgotten { below: 1 },
    ]
}

/// The segment files of `dir`, in log order.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    super::segment::list(&crate::fs::OsFs, dir)
        .unwrap()
        .into_iter()
        .map(|(_, path)| path)
        .collect()
}

fn assert_corrupt_at(err: StorageError, file: &Path, offset: u64) {
    let message = err.to_string();
    match err {
        StorageError::Corrupt {
            path, offset: at, ..
        } => {
            assert_eq!((path.as_path(), at), (file, offset), "{message}");
            assert!(message.contains(&file.display().to_string()), "{message}");
            assert!(message.contains(&format!("byte {offset}")), "{message}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// The acceptor and learner state a sequence of records rebuilds, as the core's
/// `restore` would: the yardstick for compaction.
#[derive(Debug, Default, PartialEq, Eq)]
struct Replayed {
    promised: Ballot,
    accepted: BTreeMap<Slot, (Ballot, Entry)>,
    learned: BTreeMap<Slot, Entry>,
    committed: Slot,
    forgotten: Slot,
}

impl Replayed {
    fn of(records: &[Record]) -> Self {
        let mut state = Replayed::default();
        for record in records {
            match record {
                Record::Promised(b) => state.promised = state.promised.max(*b),
                Record::Accepted {
                    slot,
                    ballot,
                    entry,
                } => {
                    state.promised = state.promised.max(*ballot);
                    state.accepted.insert(*slot, (*ballot, entry.clone()));
                }
                Record::Learned { slot, entry } => {
                    state.learned.insert(*slot, entry.clone());
                }
                Record::Committed { upto } => state.committed = state.committed.max(*upto),
                Record::Forgotten { below } => state.forgotten = state.forgotten.max(*below),
                Record::Membership(_) | Record::LegacyMembership(_) => {}
            }
        }
        state
    }

    /// The same state without the instances below `below`.
    fn from(mut self, below: Slot) -> Self {
        self.accepted.retain(|slot, _| *slot >= below);
        self.learned.retain(|slot, _| *slot >= below);
        self
    }
}
