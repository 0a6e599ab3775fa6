//! A replica directory's identity record: `diskv::identity::Identity::load` on a
//! simulated disk (sealed JSON). One that loads must store and load back equal.

use crate::fixup;
use crate::targets::as_is_and_repaired;
use diskv::identity::Identity;
use paxos::fs::{FileSystem, SimFs};
use std::path::Path;

/// Loads an identity file holding `data` (and `data` sealed again).
pub fn target(data: &[u8]) {
    as_is_and_repaired(data, fixup::seal, check);
}

fn check(bytes: &[u8]) {
    let sim = SimFs::new();
    let dir = Path::new("/r");
    sim.create_dir_all(dir).expect("sim mkdir");
    sim.write(&dir.join("identity"), bytes).expect("sim write");
    if let Ok(Some(id)) = Identity::load(&sim, dir) {
        let other = SimFs::new();
        id.store(&other, dir).expect("storing a loaded identity");
        let back = Identity::load(&other, dir).expect("loading it back");
        assert_eq!(back, Some(id));
    }
}

/// Identity files as `Identity::store` writes them, and one from before sealing.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let plain = Identity {
        cluster: vec!["127.0.0.1:7001".into(), "127.0.0.1:7002".into()],
        gid: 100,
        me: 1,
        nshards: 10,
        incarnation: 2,
        recovering: Some(0x5eed),
    };
    let old = Identity {
        cluster: Vec::new(),
        recovering: None,
        ..plain.clone()
    };
    let mut seeds = Vec::new();
    for (name, id) in [("recovering", plain), ("settled", old)] {
        let sim = SimFs::new();
        id.store(&sim, Path::new("/r")).expect("storing a seed");
        let bytes = sim.read(Path::new("/r/identity")).expect("reading a seed");
        seeds.push((name.to_string(), bytes));
    }
    seeds.push((
        "unsealed".into(),
        br#"{"gid":1,"me":0,"nshards":10,"incarnation":2}"#.to_vec(),
    ));
    seeds
}
