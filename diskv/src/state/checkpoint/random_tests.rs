//! A model test of the store under random checkpoints, faults and crashes
//! (from the spare attack): random puts and deletes over three shards, odd key
//! names, values around the spare size limit, shards dropped and installed
//! again, a fault on the nth write, sync or rename (the keys of a failed
//! checkpoint stay dirty and are retried, sometimes at the same applied
//! instance), and kills and power losses with random survivors. After every
//! restart the store must load exactly the state of a checkpoint that may have
//! committed.

use super::*;
use paxos::fs::{FileSystem, SimFs, SimOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::sync::Arc;

const DIR: &str = "/r";
const SHARDS: usize = 3;

/// Held shards and their data.
type State = BTreeMap<usize, BTreeMap<String, String>>;

fn record(applied: u64, st: &State) -> CheckpointRecord {
    super::tests::record_of(applied, SHARDS, st.keys().copied())
}

/// Opens and loads the store: (applied, state, store).
fn load(fs: &SharedFs) -> (u64, State, DiskStore) {
    let mut store = DiskStore::open_on(fs.clone(), Path::new(DIR)).unwrap();
    match store.load().expect("start-up refused") {
        None => (0, State::new(), store),
        Some((record, shards)) => {
            let st = shards
                .into_iter()
                .map(|(s, sh)| {
                    let data = sh.data.into_iter().map(|(k, v)| (k, v.into_string()));
                    (s, data.collect())
                })
                .collect();
            (record.applied, st, store)
        }
    }
}

fn no_faults(sim: &SimFs) {
    sim.fail_nth_write(u64::MAX);
    sim.fail_nth_sync(u64::MAX);
    sim.fail_nth_rename(u64::MAX);
}

fn random_key(rng: &mut StdRng) -> String {
    let i = rng.gen_range(0..40);
    match rng.gen_range(0..10) {
        0 => format!("{}:{i}", "long".repeat(50)), // a hashed file name
        1 => format!("odd.key/{i}.old"),           // dots and slashes
        _ => format!("k{i}"),
    }
}

fn random_value(rng: &mut StdRng) -> String {
    match rng.gen_range(0..40) {
        0 => "B".repeat(70_000), // larger than a spare may be
        1 => "b".repeat(64 * 1024 - 40),
        _ => format!("v{}", rng.gen::<u32>()).repeat(rng.gen_range(1..20)),
    }
}

/// One random run; returns the spares reused.
fn random_run(seed: u64, rounds: usize, options: SimOptions) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let sim = SimFs::with_options(options);
    sim.create_dir_all(Path::new(DIR)).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    let fs: SharedFs = Arc::new(sim.clone());
    let (_, _, mut store) = load(&fs);
    let mut mem: State = (0..SHARDS).map(|s| (s, BTreeMap::new())).collect();
    let mut dirty: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut dropped: Vec<usize> = Vec::new();
    // The states a crash may come back to, by applied instance.
    let mut candidates: BTreeMap<u64, State> = [(0, State::new())].into_iter().collect();
    let (mut applied, mut last_failed, mut reused) = (0, false, 0);
    for round in 0..rounds {
        if !(last_failed && rng.gen_bool(0.3)) {
            applied += 10;
            for _ in 0..rng.gen_range(0..10) {
                let held: Vec<usize> = mem.keys().copied().collect();
                if held.is_empty() {
                    break;
                }
                let shard = held[rng.gen_range(0..held.len())];
                let key = random_key(&mut rng);
                let data = mem.get_mut(&shard).unwrap();
                if rng.gen_bool(0.3) {
                    data.remove(&key);
                } else {
                    data.insert(key.clone(), random_value(&mut rng));
                }
                dirty.insert((shard, key));
            }
            if rng.gen_bool(0.06) {
                let held: Vec<usize> = mem.keys().copied().collect();
                if let Some(&s) = held.get(rng.gen_range(0..held.len().max(1))) {
                    mem.remove(&s);
                    dirty.retain(|(d, _)| *d != s);
                    dropped.push(s);
                }
            }
            if rng.gen_bool(0.06) {
                let s = rng.gen_range(0..SHARDS);
                if let std::collections::btree_map::Entry::Vacant(slot) = mem.entry(s) {
                    let data = slot.insert(BTreeMap::new());
                    for _ in 0..rng.gen_range(0..8) {
                        let key = random_key(&mut rng);
                        data.insert(key.clone(), random_value(&mut rng));
                        dirty.insert((s, key));
                    }
                }
            }
        }
        if rng.gen_bool(0.3) {
            let n = rng.gen_range(1..30);
            match rng.gen_range(0..3) {
                0 => sim.fail_nth_write(n),
                1 => sim.fail_nth_sync(n),
                _ => sim.fail_nth_rename(n),
            }
        }
        let changes: Vec<KeyChange> = dirty
            .iter()
            .map(|(s, k)| {
                let value = mem.get(s).and_then(|d| d.get(k));
                (*s, k.clone(), value.map(|v| Value::from(v.as_str())))
            })
            .collect();
        let drops: Vec<DroppedShard> = dropped
            .iter()
            .map(|&s| {
                let held = mem.get(&s);
                (
                    s,
                    held.map(|d| d.keys().map(|k| keyfile::file_name(k)).collect()),
                )
            })
            .collect();
        let result = store.write(record(applied, &mem), &changes, drops);
        candidates.insert(applied, mem.clone());
        last_failed = result.is_err();
        if !last_failed {
            candidates.retain(|&a, _| a == applied);
            dirty.clear();
            dropped.clear();
        }
        reused = reused.max(store.spares().1);
        let fate = rng.gen_range(0..20);
        if fate < 3 {
            no_faults(&sim);
            drop(store);
            match fate {
                0 => {}
                1 => {
                    sim.crash(&mut rng);
                }
                _ => {
                    sim.crash_losing_unsynced();
                }
            }
            let (got, st, s) = load(&fs);
            store = s;
            let want = candidates.get(&got).unwrap_or_else(|| {
                panic!("seed {seed} round {round}: loaded applied {got}, not a candidate")
            });
            assert_eq!(&st, want, "seed {seed} round {round} fate {fate}");
            mem = st;
            applied = got;
            candidates = [(got, mem.clone())].into_iter().collect();
            dirty.clear();
            dropped.clear();
            last_failed = false;
        }
    }
    reused
}

#[test]
fn random_checkpoints_faults_and_crashes_load_a_committed_state() {
    let reused: u64 = (0..200)
        .map(|seed| random_run(seed, 100, SimOptions::default()))
        .sum();
    assert!(reused > 100, "spares were hardly reused: {reused}");
}

#[test]
fn random_checkpoints_with_torn_and_reordered_pages_load_a_committed_state() {
    let options = SimOptions {
        torn_chance: 0.5,
        reorder_pages: true,
        ..SimOptions::default()
    };
    for seed in 5000..5060 {
        random_run(seed, 100, options);
    }
}
