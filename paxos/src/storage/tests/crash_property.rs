//! Property: whatever the records, segment size, sync points and torn tail, a crash
//! loses only unsynced records, and only a suffix of them.
//!
//! Run twice: on real files with the crash written by hand (the last segment cut
//! and padded with zeros, a new segment removed), and on a simulated disk whose
//! own crash model decides what survives (see `crate::fs::sim`), with a process
//! killed and restarted along the way.

use super::*;
use crate::fs::{FileSystem, SharedFs, SimFs, SimOptions};
use crate::storage::facts::Facts;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use tempfile::TempDir;

/// One step of a replica's life; facts (promises, watermarks) only grow, as in the
/// protocol, so a segment head that restates them is recognisable as a repeat.
#[derive(Clone, Debug)]
enum Step {
    Accept { slot: Slot, cmd_len: usize },
    Learn { slot: Slot },
    Promise,
    Commit,
    Forget,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..50_u64, 0..300_usize).prop_map(|(slot, cmd_len)| Step::Accept { slot, cmd_len }),
        2 => (0..50_u64).prop_map(|slot| Step::Learn { slot }),
        1 => Just(Step::Promise),
        1 => Just(Step::Commit),
        1 => Just(Step::Forget),
    ]
}

/// One step of the script: what is appended, whether a sync follows, how many
/// records the append carries.
type Scripted = (Step, bool, usize);

/// Turns steps into records: accepts at the latest promise, strictly growing facts.
fn records(steps: &[Scripted]) -> Vec<Record> {
    let (mut round, mut committed, mut forgotten) = (1, 0, 0);
    let cmd = |slot: Slot, len: usize| vec![slot as u8; len];
    steps
        .iter()
        .map(|(step, _, _)| match *step {
            Step::Accept { slot, cmd_len } => Record::Accepted {
                slot,
                ballot: Ballot::new(round, 0),
                entry: Entry::single(cmd(slot, cmd_len)),
            },
            Step::Learn { slot } => Record::Learned {
                slot,
                entry: Entry::single(cmd(slot, 3)),
            },
            Step::Promise => {
                round += 1;
                Record::Promised(Ballot::new(round, 0))
            }
            Step::Commit => {
                committed += 1;
                Record::Committed { upto: committed }
            }
            Step::Forget => {
                forgotten += 1;
                Record::Forgotten { below: forgotten }
            }
        })
        .collect()
}

/// The records cut into the script's appends, each with whether a sync follows it.
fn batches<'a>(all: &'a [Record], steps: &[Scripted]) -> Vec<(&'a [Record], bool)> {
    let mut rest = all;
    let mut out = Vec::new();
    for (_, sync, size) in steps {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at((*size).min(rest.len()));
        out.push((batch, *sync));
        rest = tail;
    }
    out
}

/// Removes the segment heads: facts that repeat one already seen.
fn without_heads(loaded: Vec<Record>) -> Vec<Record> {
    let mut seen = Facts::default();
    let mut out = Vec::with_capacity(loaded.len());
    for record in loaded {
        let repeat = match record {
            Record::Promised(ballot) => seen.promised >= Some(ballot),
            Record::Committed { upto } => seen.committed >= Some(upto),
            Record::Forgotten { below } => seen.forgotten >= Some(below),
            Record::Membership(ref m) => {
                seen.membership.as_ref().map(|s| s.version()) >= Some(m.version())
            }
            Record::Accepted { .. } | Record::Learned { .. } | Record::LegacyMembership(_) => false,
        };
        seen.observe(&record);
        if !repeat {
            out.push(record);
        }
    }
    out
}

/// Checks a log reopened after a crash: it holds a prefix of `all` at least
/// `synced` records long, goes on, and what it syncs next is still there after
/// `restart` (which reopens it, after another crash or not, and loads it).
fn recovered(
    mut log: SegmentLog,
    all: &[Record],
    synced: usize,
    restart: impl FnOnce() -> Vec<Record>,
) -> Result<(), TestCaseError> {
    let loaded = without_heads(log.load().unwrap());
    prop_assert!(
        loaded.len() >= synced,
        "lost synced records: {} < {synced}",
        loaded.len()
    );
    prop_assert_eq!(&loaded[..], &all[..loaded.len()]);
    let marker = Record::Learned {
        slot: 999,
        entry: Entry::Noop,
    };
    log.append(std::slice::from_ref(&marker)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut expected = loaded;
    expected.push(marker);
    prop_assert_eq!(without_heads(restart()), expected);
    Ok(())
}

fn config() -> Config {
    Config {
        cases: 96,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5e9_1097),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_crash_loses_only_a_suffix_of_the_unsynced_records(
        steps in prop::collection::vec((step(), any::<bool>(), 1..4_usize), 1..60),
        segment_bytes in 1..700_u64,
        cut in any::<prop::sample::Index>(),
        zeros in 0..64_usize,
        lose_new_segment in any::<bool>(),
    ) {
        let dir = TempDir::new().unwrap();
        let mut log = open(dir.path(), segment_bytes);
        let all = records(&steps);
        let (mut appended, mut synced, mut synced_tail) = (0, 0, log.tail());
        for (batch, sync) in batches(&all, &steps) {
            log.append(batch).unwrap();
            appended += batch.len();
            if sync {
                log.sync().unwrap();
                (synced, synced_tail) = (appended, log.tail());
            }
        }
        let (last, len) = log.tail();
        drop(log);

        // The crash: the last segment keeps its synced bytes and any part of the rest,
        // maybe followed by preallocated zeros. A segment created since the last sync
        // may vanish altogether.
        let durable = if last == synced_tail.0 { synced_tail.1 } else { 0 };
        let cut_at = durable + cut.index((len - durable + 1) as usize) as u64;
        if durable == 0 && cut_at == 0 && lose_new_segment && segment_files(dir.path()).len() > 1 {
            std::fs::remove_file(&last).unwrap();
        } else {
            let mut bytes = std::fs::read(&last).unwrap();
            bytes.truncate(cut_at as usize);
            bytes.resize(bytes.len() + zeros, 0);
            std::fs::write(&last, bytes).unwrap();
        }

        let log = open(dir.path(), segment_bytes);
        recovered(log, &all, synced, || reopen_and_load(dir.path(), segment_bytes))?;
    }
}

/// Opens the log on a simulated disk as a replica would (syncing).
fn open_sim(fs: &SimFs, segment_bytes: u64) -> SegmentLog {
    let shared: SharedFs = Arc::new(fs.clone());
    let opts = LogOptions {
        segment_bytes,
        sync: true,
    };
    SegmentLog::open_on(shared, Path::new("/r/log"), opts).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_machine_crash_on_a_simulated_disk_loses_only_a_suffix_of_the_unsynced_records(
        steps in prop::collection::vec((step(), any::<bool>(), 1..4_usize), 1..60),
        segment_bytes in 1..700_u64,
        kill_at in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let fs = SimFs::with_options(SimOptions { torn_chance: 0.3, ..SimOptions::default() });
        fs.create_dir_all(Path::new("/r")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let mut log = open_sim(&fs, segment_bytes);
        let all = records(&steps);
        let kill_at = kill_at.index(steps.len());
        let (mut appended, mut synced) = (0, 0);
        for (i, (batch, sync)) in batches(&all, &steps).into_iter().enumerate() {
            log.append(batch).unwrap();
            appended += batch.len();
            if sync {
                log.sync().unwrap();
                synced = appended;
            }
            if i == kill_at {
                // kill -9 and restart: the page cache survives, and the reopened
                // log makes all of it durable before acting on it.
                drop(log);
                log = open_sim(&fs, segment_bytes);
                synced = appended;
            }
        }
        drop(log);

        let mut rng = StdRng::seed_from_u64(seed);
        fs.crash(&mut rng);
        let log = open_sim(&fs, segment_bytes);
        recovered(log, &all, synced, || {
            fs.crash(&mut rng);
            open_sim(&fs, segment_bytes).load().unwrap()
        })?;
    }
}
