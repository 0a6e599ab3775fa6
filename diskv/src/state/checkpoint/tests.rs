//! The checkpoint's crash and damage tests, on a simulated disk.

use super::writers::lock_writing;
use super::*;
use crate::state::dedup::DupTable;
use crate::state::shard::ShardMode;
use paxos::fs::{FileSystem, SimFs};
use rand::rngs::StdRng;
use rand::SeedableRng;
use shardmaster::Config;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIR: &str = "/r";

/// A simulated disk holding the durable, empty replica folder `/r`.
fn disk() -> (SimFs, SharedFs) {
    let sim = SimFs::new();
    sim.create_dir_all(Path::new(DIR)).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    let fs: SharedFs = Arc::new(sim.clone());
    (sim, fs)
}

fn record(applied: u64) -> CheckpointRecord {
    record_of(applied, 2, [0])
}

/// A record at `applied` of a group of `nshards` serving `shards`, with no
/// files to rename or delete yet.
pub(super) fn record_of(
    applied: u64,
    nshards: usize,
    shards: impl IntoIterator<Item = usize>,
) -> CheckpointRecord {
    let meta = || ShardMeta {
        mode: ShardMode::Serving,
        dups: DupTable::default(),
    };
    CheckpointRecord {
        number: 0,
        applied,
        gid: 1,
        config: Config::initial(nshards),
        now_ms: 0,
        shards: shards.into_iter().map(|s| (s, meta())).collect(),
        writes: Vec::new(),
        deletes: Vec::new(),
        dropped: Vec::new(),
    }
}

fn change(key: &str, value: Option<&str>) -> KeyChange {
    (0, key.to_string(), value.map(Value::from))
}

/// The applied instance and shard 0's data of the checkpoint on the disk.
fn loaded(fs: &SharedFs) -> (u64, BTreeMap<String, String>) {
    let (record, shards) = DiskStore::open_on(fs.clone(), Path::new(DIR))
        .unwrap()
        .load()
        .unwrap()
        .expect("a checkpoint");
    let data = shards.get(&0).map(|s| s.data.clone()).unwrap_or_default();
    (
        record.applied,
        data.into_iter()
            .map(|(k, v)| (k, v.into_string()))
            .collect(),
    )
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_record_naming_a_path_outside_its_shard_folder_is_refused() {
    for bad in ["..", "../../identity", "a/b", "", "."] {
        let mut r = record(5);
        r.deletes.push((0, bad.to_string()));
        let err = decode_record(&encode_record(&r).unwrap()).unwrap_err();
        assert!(err.contains("not a key file name"), "{bad:?}: {err}");
        let mut r = record(5);
        r.writes.push((0, bad.to_string()));
        assert!(
            decode_record(&encode_record(&r).unwrap()).is_err(),
            "{bad:?}"
        );
    }
    let mut r = record(5);
    r.writes.push((0, keyfile::file_name("user:1/x.y")));
    r.deletes.push((0, keyfile::file_name(&"k".repeat(1000))));
    assert_eq!(decode_record(&encode_record(&r).unwrap()), Ok(r));
}

#[test]
fn a_crash_at_any_step_of_a_checkpoint_leaves_the_old_one_or_the_new_one() {
    let first = data(&[("a", "1"), ("b", "2")]);
    let second = data(&[("a", "3"), ("c", "4")]);
    let (mut old_seen, mut new_seen) = (false, false);
    // Fail the nth write or sync of the second checkpoint, then crash; n past
    // the last step lets it finish.
    for (n, fail_sync) in (1..12).flat_map(|n| [(n, false), (n, true)]) {
        for seed in 0..4 {
            let (sim, fs) = disk();
            let mut store = DiskStore::open_on(fs.clone(), Path::new(DIR)).unwrap();
            let changes = [change("a", Some("1")), change("b", Some("2"))];
            store.write(record(10), &changes, vec![]).unwrap();
            if fail_sync {
                sim.fail_nth_sync(n);
            } else {
                sim.fail_nth_write(n);
            }
            let changes = [
                change("a", Some("3")),
                change("b", None),
                change("c", Some("4")),
            ];
            let finished = store.write(record(20), &changes, vec![]).is_ok();
            drop(store);
            sim.crash(&mut StdRng::seed_from_u64(seed));
            let (applied, found) = loaded(&fs);
            let expected = match applied {
                10 if !finished => &first,
                20 => &second,
                other => panic!("checkpoint {other} after step {n} (finished: {finished})"),
            };
            assert_eq!(&found, expected, "step {n}, sync {fail_sync}, seed {seed}");
            old_seen |= applied == 10;
            new_seen |= applied == 20;
            // Loading redid the renames and removed temp files for good.
            sim.crash_losing_unsynced();
            assert_eq!(loaded(&fs), (applied, expected.clone()));
        }
    }
    assert!(old_seen && new_seen, "old {old_seen}, new {new_seen}");
}

/// A checkpoint whose record committed but whose renames failed (step 4)
/// is retried by the replica at the same `applied`: that retry used to be
/// skipped as already written, the keys counted as clean, and the next start
/// deleted the temp files holding their new values (review finding).
#[test]
fn a_checkpoint_whose_renames_failed_is_finished_before_anything_else() {
    // Rename 1 is the record's (nothing commits), rename 2 key a's.
    for n in 1..3 {
        let (sim, fs) = disk();
        let mut store = DiskStore::open_on(fs.clone(), Path::new(DIR)).unwrap();
        store
            .write(record(10), &[change("a", Some("1"))], vec![])
            .unwrap();
        sim.fail_nth_rename(n);
        let first = store.write(record(20), &[change("a", Some("3"))], vec![]);
        // The replica retries the keys of a failed checkpoint at the same point.
        let retry = store.write(record(20), &[change("a", Some("3"))], vec![]);
        store
            .write(record(30), &[change("c", Some("4"))], vec![])
            .unwrap();
        drop(store);
        sim.crash(&mut StdRng::seed_from_u64(n));
        let (applied, found) = loaded(&fs);
        assert_eq!(applied, 30, "rename {n}: first {first:?}, retry {retry:?}");
        assert_eq!(
            found,
            data(&[("a", "3"), ("c", "4")]),
            "rename {n} failed: first {first:?}, retry {retry:?}"
        );
    }
}

#[test]
fn stores_at_the_same_path_on_two_disks_do_not_wait_for_each_other() {
    let (_a, fs_a) = disk();
    let (_b, fs_b) = disk();
    let store_a = DiskStore::open_on(fs_a.clone(), Path::new(DIR)).unwrap();
    let _writing = store_a.writing();
    // Would wait for the checkpoint of disk a if stores were keyed by path only.
    let started = Instant::now();
    DiskStore::open_on(fs_b, Path::new(DIR)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(lock_writing().contains_key(&(fs_a.identity(), PathBuf::from("/r/kv"))));
}

/// The data after checkpoint `i` of [`rewrites`]: keys `k0`..`k5` rewritten
/// each time, one of them deleted in turn.
fn rewritten(i: u64) -> Vec<KeyChange> {
    (0..6)
        .map(|k| {
            let key = format!("k{k}");
            if k == i % 6 {
                change(&key, None)
            } else {
                change(&key, Some(&format!("{k}@{i}")))
            }
        })
        .collect()
}

/// What the store holds after checkpoints `1..=i` of [`rewritten`].
fn rewrites(i: u64) -> BTreeMap<String, String> {
    rewritten(i)
        .into_iter()
        .filter_map(|(_, k, v)| v.map(|v| (k, v.into_string())))
        .collect()
}

/// Spares (replaced key files kept for their inodes) are rewritten only once
/// a `syncfs` made the renames that retired them durable: a crash at any step
/// of any checkpoint, with any part of the unsynced work surviving, leaves the
/// last committed checkpoint's data exactly.
#[test]
fn a_crash_while_spare_files_are_rewritten_leaves_a_whole_checkpoint() {
    const CHECKPOINTS: u64 = 6;
    let mut reused = 0;
    for (n, fault) in (1..40).flat_map(|n| [(n, 0), (n, 1), (n, 2)]) {
        for seed in 0..3 {
            let (sim, fs) = disk();
            let mut store = DiskStore::open_on(fs.clone(), Path::new(DIR)).unwrap();
            match fault {
                0 => sim.fail_nth_write(n + 6),
                1 => sim.fail_nth_sync(n),
                _ => sim.fail_nth_rename(n + 6),
            }
            let mut committed = 0;
            for i in 1..=CHECKPOINTS {
                if store.write(record(i * 10), &rewritten(i), vec![]).is_err() {
                    break;
                }
                committed = i;
            }
            reused = reused.max(store.spares().1);
            drop(store);
            sim.crash(&mut StdRng::seed_from_u64(seed));
            let any = DiskStore::open_on(fs.clone(), Path::new(DIR))
                .unwrap()
                .load()
                .unwrap();
            if any.is_none() {
                assert_eq!(committed, 0, "fault {fault} at {n}, seed {seed}");
                continue;
            }
            let (applied, found) = loaded(&fs);
            // A failed checkpoint may still have committed (its renames failed).
            let i = applied / 10;
            assert!(
                i == committed || i == committed + 1,
                "fault {fault} at {n}, seed {seed}: checkpoint {i} after {committed}"
            );
            assert_eq!(found, rewrites(i), "fault {fault} at {n}, seed {seed}");
            sim.crash_losing_unsynced();
            assert_eq!(loaded(&fs), (applied, rewrites(i)));
        }
    }
    // Checkpoints 3.. rewrite the files checkpoint 1 replaced.
    assert!(reused >= 5, "only {reused} spares were reused");
}

/// Spare files (those whose names end in `.old.tmp`) on the disk.
fn spare_files(sim: &SimFs) -> usize {
    sim.files()
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".old.tmp"))
        .count()
}

#[test]
fn unused_spares_are_deleted_and_start_up_deletes_them_all() {
    let (sim, fs) = disk();
    let mut store = DiskStore::open_on(fs.clone(), Path::new(DIR)).unwrap();
    for i in 1..=3 {
        store.write(record(i * 10), &rewritten(i), vec![]).unwrap();
    }
    assert!(store.spares().0 > 0, "{:?}", store.spares());
    assert_eq!(spare_files(&sim), store.spares().0);
    // Two checkpoints without writes: the first makes them ready, the second
    // finds no use for them.
    store.write(record(40), &[], vec![]).unwrap();
    store.write(record(50), &[], vec![]).unwrap();
    assert_eq!((store.spares().0, spare_files(&sim)), (0, 0));
    store.write(record(60), &rewritten(6), vec![]).unwrap();
    assert!(spare_files(&sim) > 0);
    // A restart deletes them (they are temp files) and loads the keys only.
    drop(store);
    assert_eq!(loaded(&fs), (60, rewrites(6)));
    assert_eq!(spare_files(&sim), 0);
}

/// Spare attack, finding 1: spares were named `<name>.<n>.old`, and a binary
/// from before spares loads every file of a shard folder that does not end in
/// `.tmp` as a key file: a rolled-back replica loaded old values, and deleted
/// keys came back. Every file a checkpoint leaves in a shard folder must be a
/// key file or a temp file.
#[test]
fn every_file_in_a_shard_folder_is_a_key_file_or_a_temp_file() {
    let (sim, fs) = disk();
    let mut store = DiskStore::open_on(fs, Path::new(DIR)).unwrap();
    for i in 1..=8 {
        store.write(record(i * 10), &rewritten(i), vec![]).unwrap();
        assert!(store.spares().0 > 0 || i == 1);
        for path in sim.files() {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.parent().is_some_and(|d| d.ends_with("shard-0")) {
                assert!(
                    keyfile::is_file_name(&name) || name.ends_with(".tmp"),
                    "checkpoint {i} left {name:?}, which an earlier binary would load as a key"
                );
            }
        }
    }
}

/// Spare attack, findings 2 and 3: a deleted key's file is deleted, not kept
/// as a spare (its space came back at once before spares), and a checkpoint
/// that fails before its commit point (a full disk) deletes every spare, so
/// the next attempt has their space.
#[test]
fn deleted_keys_and_failed_checkpoints_keep_no_spares() {
    let (sim, fs) = disk();
    let mut store = DiskStore::open_on(fs, Path::new(DIR)).unwrap();
    let keys = |v: Option<&str>| -> Vec<KeyChange> {
        (0..20).map(|k| change(&format!("k{k}"), v)).collect()
    };
    store.write(record(10), &keys(Some("1")), vec![]).unwrap();
    store.write(record(20), &keys(None), vec![]).unwrap();
    assert_eq!(
        (store.spares().0, spare_files(&sim)),
        (0, 0),
        "deleted keys kept"
    );
    for i in 3..=5 {
        store
            .write(record(i * 10), &keys(Some("x")), vec![])
            .unwrap();
    }
    assert!(spare_files(&sim) > 0);
    sim.fail_nth_write(3);
    let failed = store.write(record(60), &keys(Some("y")), vec![]);
    assert!(failed.is_err());
    assert_eq!((store.spares().0, spare_files(&sim)), (0, 0), "{failed:?}");
    store.write(record(70), &keys(Some("z")), vec![]).unwrap();
    drop(store);
}
