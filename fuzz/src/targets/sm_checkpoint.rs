//! A shardmaster replica's state file: `shardmaster::persist::load_checkpoint` on a
//! simulated disk (`DSM1`, checksum, length, postcard `Checkpoint` whose
//! `ConfigStore` checks its invariants). One that loads must round-trip through
//! `encode_checkpoint`.

use crate::fixup;
use crate::targets::as_is_and_repaired;
use paxos::fs::{FileSystem, SimFs};
use shardmaster::persist::{decode_checkpoint, encode_checkpoint, load_checkpoint, Checkpoint};
use std::path::Path;

/// Loads a state file holding `data` (and `data` with checksum and length
/// repaired).
pub fn target(data: &[u8]) {
    as_is_and_repaired(data, fixup::magic_crc_len, check);
}

fn check(bytes: &[u8]) {
    let sim = SimFs::new();
    let dir = Path::new("/sm");
    sim.create_dir_all(dir).expect("sim mkdir");
    sim.write(&dir.join(shardmaster::persist::STATE_FILE), bytes)
        .expect("sim write");
    if let Ok(Some(ckpt)) = load_checkpoint(&sim, dir) {
        let again = encode_checkpoint(&ckpt.borrowed()).expect("a loaded checkpoint encodes");
        assert_eq!(decode_checkpoint(&again), Ok(ckpt));
    }
}

/// Checkpoints of a new cluster and of one with groups, moves and duplicates.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    use shardmaster::{ConfigStore, Op};
    let new = Checkpoint {
        applied: 0,
        store: ConfigStore::new(10).expect("10 shards"),
        dups: Default::default(),
    };
    let mut store = ConfigStore::new(10).expect("10 shards");
    let mut dups = shardmaster::dedup::DupTable::new();
    let ops = [
        Op::Join {
            gid: 100,
            servers: vec!["127.0.0.1:7001".into(), "127.0.0.1:7002".into()],
        },
        Op::Join {
            gid: 101,
            servers: vec!["127.0.0.1:7101".into()],
        },
        Op::Move { shard: 0, gid: 101 },
        Op::Leave { gid: 100 },
    ];
    for (seq, op) in ops.iter().enumerate() {
        let result = store.apply(op);
        dups.insert(
            7,
            shardmaster::dedup::DupEntry {
                seq: seq as u64 + 1,
                result,
            },
        );
    }
    let busy = Checkpoint {
        applied: 57,
        store,
        dups,
    };
    [("new", new), ("busy", busy)]
        .into_iter()
        .map(|(name, c)| {
            let bytes = encode_checkpoint(&c.borrowed()).expect("seed checkpoints encode");
            (name.to_string(), bytes)
        })
        .collect()
}
