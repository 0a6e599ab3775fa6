//! A KV replica's checkpoint record as recovery finds it: `DiskStore::load` on a
//! simulated disk whose `kv/checkpoint` holds the bytes, and a key file in
//! `kv/shard-0`. Load replays the record's renames, deletions and dropped
//! shards, then reads the key files of every shard it lists. A record that
//! decodes must round-trip (`encode_record` / `decode_record`).
//!
//! A simulated disk (`paxos::fs::SimFs`), not a temporary folder: a record names
//! files to rename and delete, and a fuzzed one must not touch the real disk.

use crate::fixup;
use crate::targets::as_is_and_repaired;
use diskv::checkpoint::{decode_record, encode_record, CheckpointRecord, DiskStore, ShardMeta};
use diskv::keyfile::{self, KeyFile};
use diskv::shard::ShardMode;
use paxos::fs::{FileSystem, SharedFs, SimFs};
use std::path::Path;
use std::sync::Arc;

/// Loads a store whose checkpoint record is `data` (and `data` with its checksum
/// repaired).
pub fn target(data: &[u8]) {
    as_is_and_repaired(data, fixup::magic_crc, check);
}

fn check(bytes: &[u8]) {
    if let Ok(record) = decode_record(bytes) {
        let again = encode_record(&record).expect("a decoded record encodes");
        assert_eq!(decode_record(&again), Ok(record));
    }
    let sim = SimFs::new();
    let kv = Path::new("/r/kv");
    let shard0 = kv.join("shard-0");
    sim.create_dir_all(&shard0).expect("sim mkdir");
    sim.write(&kv.join("checkpoint"), bytes).expect("sim write");
    let file = KeyFile {
        key: "a".into(),
        value: "1".into(),
    };
    sim.write(&shard0.join(keyfile::file_name("a")), &file.encode())
        .expect("sim write");
    let fs: SharedFs = Arc::new(sim);
    let mut store =
        DiskStore::open_on(fs, Path::new("/r")).expect("opening a store on an empty disk");
    let _ = store.load();
}

/// Records with shards in every mode, pending renames, deletions and drops.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut config = shardmaster::Config::initial(4);
    config.num = 2;
    config.shards = vec![1, 1, 2, 2];
    config.groups.insert(1, vec!["127.0.0.1:7001".into()]);
    config.groups.insert(2, vec!["127.0.0.1:7101".into()]);
    let mut dups = diskv::dedup::DupTable::default();
    dups.record(3, 9, diskv::Reply::Existed(false), 500);
    let record = CheckpointRecord {
        number: 4,
        applied: 120,
        gid: 1,
        config: config.clone(),
        now_ms: 99_000,
        shards: [
            (
                0,
                ShardMeta {
                    mode: ShardMode::Serving,
                    dups,
                },
            ),
            (
                1,
                ShardMeta {
                    mode: ShardMode::Pulling { from: 2, config: 2 },
                    dups: Default::default(),
                },
            ),
            (
                2,
                ShardMeta {
                    mode: ShardMode::Leaving { to: 2, config: 2 },
                    dups: Default::default(),
                },
            ),
        ]
        .into(),
        writes: vec![(0, keyfile::file_name("a")), (0, keyfile::file_name("b"))],
        deletes: vec![(1, keyfile::file_name("gone"))],
        dropped: vec![3],
    };
    let empty = CheckpointRecord {
        number: 1,
        applied: 1,
        gid: 1,
        config,
        now_ms: 0,
        shards: Default::default(),
        writes: Vec::new(),
        deletes: Vec::new(),
        dropped: Vec::new(),
    };
    vec![
        ("full".into(), encode_record(&record).expect("encodes")),
        ("empty".into(), encode_record(&empty).expect("encodes")),
    ]
}
