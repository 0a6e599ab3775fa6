//! A lost log under an intact checkpoint (issue #18, B5): `diskv serve` whose
//! group log was truncated to nothing or deleted while it was stopped says so and
//! starts a new log after its checkpoint, so writes are applied again instead of
//! landing below what the state machine applied (before: every PUT was 503, across
//! restarts, with no error line). Groups of several replicas recover such a replica
//! from its peers instead (the lost-disk path; `paxos::quarantine`).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use support::http::{must_put, put, value, ServeNode};
use support::process::wait_until;

const KEYS: usize = 51;

/// Files (not temporary) under `dir`'s subfolders.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(subdirs) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    subdirs
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_none_or(|x| x != "tmp"))
        .collect()
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).ok()?.modified().ok()
}

/// Starts a node, writes `KEYS` keys and waits until its checkpoint covers them:
/// one key file per key, and the checkpoint record written after the newest.
fn node_with_a_checkpoint(root: &Path) -> ServeNode {
    let mut node = ServeNode::start(root);
    for i in 0..KEYS {
        must_put(&node.addr, &format!("k{i}"), &format!("v{i}"));
    }
    let kv = node.data.join("group-1").join("kv");
    wait_until(Duration::from_secs(30), "a checkpoint of every key", || {
        let keys = files_under(&kv);
        let newest = keys.iter().filter_map(|p| modified(p)).max();
        keys.len() >= KEYS
            && modified(&kv.join("checkpoint")).is_some_and(|c| newest.is_some_and(|n| c >= n))
    });
    node.sigterm();
    node
}

/// The node restarts, says what happened, serves every key, and takes writes.
fn restarts_after_the_checkpoint(node: &mut ServeNode) {
    assert_eq!(node.restart(), KEYS, "Loaded N keys");
    let a = node.addr.clone();
    let r = put(&a, "after", "restart");
    assert_eq!(
        r.status,
        200,
        "a write after the log was lost: {}",
        r.text()
    );
    for i in 0..KEYS {
        assert_eq!(value(&a, &format!("k{i}")), Some(format!("v{i}")), "k{i}");
    }
    assert_eq!(value(&a, "after").as_deref(), Some("restart"));
    let log = node.process().stderr();
    assert!(
        log.contains("the log of this one-replica group was lost"),
        "no error line says what happened"
    );
    node.sigterm();
    assert_eq!(
        node.restart(),
        KEYS + 1,
        "Loaded N keys after a second restart"
    );
    assert_eq!(put(&node.addr, "again", "x").status, 200);
}

#[test]
fn serve_with_its_log_truncated_to_nothing_starts_it_after_the_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let mut node = node_with_a_checkpoint(root.path());
    let log = node.data.join("group-1").join("log");
    for seg in std::fs::read_dir(&log).unwrap().flatten() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(seg.path())
            .unwrap()
            .set_len(0)
            .unwrap();
    }
    restarts_after_the_checkpoint(&mut node);
}

#[test]
fn serve_with_its_log_deleted_starts_it_after_the_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let mut node = node_with_a_checkpoint(root.path());
    std::fs::remove_dir_all(node.data.join("group-1").join("log")).unwrap();
    restarts_after_the_checkpoint(&mut node);
}
