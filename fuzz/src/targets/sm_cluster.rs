//! A shardmaster directory's cluster record: `shardmaster::persist::read_cluster`
//! on a simulated disk (sealed `key value` text). One that reads must write and
//! read back equal (when its shard count is one a cluster may have).

use crate::fixup;
use crate::targets::as_is_and_repaired;
use paxos::fs::{FileSystem, SimFs};
use shardmaster::persist::{read_cluster, write_cluster, ClusterRecord, CLUSTER_FILE};
use std::path::Path;

/// Reads a cluster record holding `data` (and `data` sealed again).
pub fn target(data: &[u8]) {
    as_is_and_repaired(data, fixup::seal, check);
}

fn check(bytes: &[u8]) {
    let sim = SimFs::new();
    let dir = Path::new("/sm");
    sim.create_dir_all(dir).expect("sim mkdir");
    sim.write(&dir.join(CLUSTER_FILE), bytes)
        .expect("sim write");
    if let Ok(Some(record)) = read_cluster(&sim, dir) {
        let other = SimFs::new();
        other.create_dir_all(dir).expect("sim mkdir");
        if write_cluster(&other, dir, &record).is_ok() {
            assert_eq!(read_cluster(&other, dir).expect("reads back"), Some(record));
        }
    }
}

/// Records as `write_cluster` writes them.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let plain = ClusterRecord {
        nshards: 10,
        me: 1,
        peers: 3,
        recovering: None,
    };
    let recovering = ClusterRecord {
        recovering: Some(u64::MAX),
        ..plain
    };
    [("plain", plain), ("recovering", recovering)]
        .into_iter()
        .map(|(name, record)| {
            let sim = SimFs::new();
            let dir = Path::new("/sm");
            sim.create_dir_all(dir).expect("sim mkdir");
            write_cluster(&sim, dir, &record).expect("seed records write");
            let bytes = sim
                .read(&dir.join(CLUSTER_FILE))
                .expect("seed records read");
            (name.to_string(), bytes)
        })
        .collect()
}
