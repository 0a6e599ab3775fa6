//! `diskv admin backup` and `diskv restore` with real processes (issue #15,
//! item 6; docs/REFERENCE.md §3): a backup taken from a cluster of two groups
//! and restored into a new cluster of one group holds exactly the state at the
//! backup, not the writes after it; a damaged backup and a cluster that holds
//! keys are refused before anything is written.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::cluster::ShardCluster;
use support::line_client::{wait_serving, Client};
use support::process::{diskv_bin, run, Output};

const NSHARDS: usize = 4;
/// A scan over every key the test writes (any token sorts between them).
const ALL: (&str, &str) = ("!", "\u{10FFFF}");

/// `diskv restore DIR --masters` of `cluster`, with `extra` flags.
fn restore(cluster: &ShardCluster, dir: &Path, extra: &[&str]) -> Output {
    let dir = dir.display().to_string();
    let mut args = vec!["restore", &dir, "--masters", &cluster.masters];
    args.extend_from_slice(extra);
    run(diskv_bin(), args, Duration::from_secs(60))
}

fn everything(c: &mut Client) -> BTreeMap<String, String> {
    c.scan(ALL.0, ALL.1).into_iter().collect()
}

/// Flips one byte in the middle of `file`.
fn flip_a_byte(file: &Path) {
    let mut bytes = std::fs::read(file).expect("read shard file");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(file, bytes).expect("write shard file");
}

#[test]
fn a_restored_cluster_holds_exactly_the_state_at_the_backup() {
    let t0 = Instant::now();
    let mut src = ShardCluster::start(NSHARDS);
    src.start_group(1, 1, false);
    src.start_group(2, 1, false);
    let config = src.wait_groups(&[1, 2]);
    let mut w = src.client("writer");
    wait_serving(&mut w);
    let mut at_backup = BTreeMap::new();
    for i in 0..40 {
        let (k, v) = (format!("k{i:02}"), format!("v{i}-ü✓"));
        assert_eq!(w.req(&format!("PUT {k} {v}")), format!("PUT {k} not_found"));
        at_backup.insert(k, v);
    }
    // 15 MiB over 4 shards: one shard holds at least 5 MiB, more than one page
    // of a shard read (4 MiB), so the backup reads a snapshot page by page.
    for i in 0..6 {
        let (k, v) = (format!("big{i}"), format!("B{i}{}", "x".repeat(5 << 19)));
        assert_eq!(w.req(&format!("PUT {k} {v}")), format!("PUT {k} not_found"));
        at_backup.insert(k, v);
    }
    let owners: std::collections::BTreeSet<u64> =
        at_backup.keys().map(|k| src.owner(&config, k)).collect();
    assert_eq!(owners.len(), 2, "the keys live on both groups");

    let backups = tempfile::tempdir().expect("tempdir");
    let good = backups.path().join("good");
    let out = src.admin(&["backup", &good.display().to_string()]);
    assert!(out.success(), "backup failed: {}", out.stderr);
    assert!(out.stdout.contains("46 keys"), "{}", out.stdout);
    let manifest = std::fs::read_to_string(good.join("MANIFEST")).expect("manifest");
    let json = manifest.split("\n# crc32c").next().unwrap_or_default();
    let manifest: serde_json::Value = serde_json::from_str(json).expect("manifest JSON");
    assert_eq!(manifest["config"], config.num);
    let largest = manifest["shards"].as_array().expect("shards").iter();
    let largest = largest.filter_map(|s| s["bytes"].as_u64()).max();
    assert!(
        largest > Some(4 << 20),
        "no shard took two pages: {manifest}"
    );

    // The cluster moves on after the backup: overwrites, deletes, new keys.
    for i in 0..10 {
        assert_eq!(
            w.req(&format!("PUT k{i:02} later")),
            format!("PUT k{i:02} found")
        );
        assert_eq!(
            w.req(&format!("DELETE k{:02}", i + 10)),
            format!("DELETE k{:02} found", i + 10)
        );
        assert_eq!(
            w.req(&format!("PUT n{i:02} new")),
            format!("PUT n{i:02} not_found")
        );
    }
    assert_ne!(everything(&mut w), at_backup);

    let mut dst = ShardCluster::start(NSHARDS);
    dst.start_group(7, 1, false);
    dst.wait_groups(&[7]);
    let mut r = dst.client("reader");
    wait_serving(&mut r);

    // A damaged copy is refused whole: nothing is written.
    let damaged = backups.path().join("damaged");
    std::fs::create_dir(&damaged).expect("mkdir");
    for entry in std::fs::read_dir(&good).expect("read backup") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), damaged.join(entry.file_name())).expect("copy");
    }
    flip_a_byte(&damaged.join("shard-0003.dkvb"));
    let out = restore(&dst, &damaged, &[]);
    assert!(!out.success(), "a damaged backup was restored");
    assert!(out.stderr.contains("checksum mismatch"), "{}", out.stderr);
    assert_eq!(
        everything(&mut r),
        BTreeMap::new(),
        "a damaged restore wrote keys"
    );

    let out = restore(&dst, &good, &[]);
    assert!(out.success(), "restore failed: {}", out.stderr);
    assert!(out.stdout.contains("46 keys"), "{}", out.stdout);
    assert_eq!(everything(&mut r), at_backup);

    // The cluster now holds keys: a second restore is refused unless forced.
    let out = restore(&dst, &good, &[]);
    assert!(
        !out.success(),
        "a restore into a cluster with keys went ahead"
    );
    assert!(out.stderr.contains("already holds keys"), "{}", out.stderr);
    let out = restore(&dst, &good, &["--force"]);
    assert!(out.success(), "restore --force failed: {}", out.stderr);
    assert_eq!(everything(&mut r), at_backup);
    eprintln!(
        "a_restored_cluster_holds_exactly_the_state_at_the_backup: {:?}",
        t0.elapsed()
    );
}
