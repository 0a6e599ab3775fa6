//! Lost and damaged disks detected without `--restart`, as real processes: a KV
//! replica whose directory was emptied, a KV replica whose log has a flipped byte
//! before its tail, and a `diskv shardmaster` replica whose directory was wiped all
//! rejoin from their peers (never starting empty) and the data survives; a KV
//! directory started with another cluster's shardmasters is refused.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::kv_group::{Group, RECOVERED};
use support::line_client::{wait_serving, Client};
use support::process::{diskv_bin, reserve_addrs, run, wait_until, Process};

const LIMIT: Duration = Duration::from_secs(60);

fn spawn(name: &str, logs: &Path, args: Vec<String>) -> Process {
    Process::spawn_with(name, logs, diskv_bin(), args, |c| {
        c.env("RUST_LOG", "info,tarpc=warn");
    })
}

fn master_args(i: usize, peers: &str, dir: &Path) -> Vec<String> {
    let mut a: Vec<String> = vec!["shardmaster".into(), "--me".into(), i.to_string()];
    a.extend(["--peers".into(), peers.into(), "--dir".into()]);
    a.extend([dir.display().to_string(), "--shards".into(), "4".into()]);
    a
}

fn put_all(c: &mut Client, keys: std::ops::Range<usize>) {
    for k in keys {
        let r = c.req(&format!("PUT k{k} v{k}"));
        assert!(r.starts_with(&format!("PUT k{k} ")), "{r}");
    }
}

fn check_all(c: &mut Client, keys: std::ops::Range<usize>) {
    for k in keys {
        assert_eq!(c.req(&format!("GET k{k}")), format!("GET k{k} v{k}"));
    }
}

/// Waits until replica `i`'s log says it recovered, after saying `why`.
fn wait_recovered(g: &mut Group, i: usize, why: &str) {
    let p = g.server(i);
    wait_until(LIMIT, "the replica recovers from its peers", || {
        let log = p.stderr();
        log.contains(why) && log.contains(RECOVERED)
    });
    assert!(
        !p.stderr().contains("starting fresh"),
        "the replica started empty:\n{}",
        p.stderr()
    );
}

/// Kills a replica other than `keep`, so `keep`'s votes are needed, and checks the
/// data through the group.
fn check_with_only(g: &mut Group, keep: usize, keys: std::ops::Range<usize>) {
    let other = (0..g.len())
        .find(|&j| j != keep && g.is_up(j))
        .expect("another");
    g.kill9(other);
    let mut c = g.client("after-kill");
    check_all(&mut c, keys.clone());
    put_all(&mut c, keys.end..keys.end + 3);
    check_all(&mut c, keys.end..keys.end + 3);
}

#[test]
fn a_kv_replica_whose_directory_was_emptied_recovers_without_restart_flag() {
    let mut g = Group::start(3);
    let mut c = g.client("writer");
    wait_serving(&mut c);
    put_all(&mut c, 0..20);
    g.lose_disk(1);
    g.spawn(1, false);
    wait_recovered(&mut g, 1, "votes in a group that has already started");
    check_with_only(&mut g, 1, 0..20);
}

/// A replica directory remembers its cluster (the shardmaster addresses): started
/// with another cluster's `--masters`, the replica refuses, says why, and changes
/// nothing; started right again, it serves.
#[test]
fn a_kv_replica_directory_of_another_cluster_is_refused() {
    let mut g = Group::start(3);
    let mut c = g.client("writer");
    wait_serving(&mut c);
    put_all(&mut c, 0..5);
    g.kill9(0);
    let before = std::fs::read(g.dir(0).join("identity")).expect("identity");
    let mut args = g.server_args(0, false);
    let at = args
        .iter()
        .position(|a| a == "--masters")
        .expect("--masters")
        + 1;
    args[at] = reserve_addrs(1).remove(0);
    let out = run(diskv_bin(), &args, Duration::from_secs(20));
    assert!(
        out.status.is_some_and(|s| !s.success()),
        "started with another cluster's shardmasters: {:?}\n{}",
        out.status,
        out.stderr
    );
    assert!(
        out.stderr
            .contains("belongs to the cluster whose shardmasters are"),
        "no clear error:\n{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(g.dir(0).join("identity")).expect("identity"),
        before,
        "the refused start changed the identity record"
    );
    // A record written before identities named their cluster: accepted, and named
    // at this start.
    // (The record is JSON sealed with a checksum line; one without the line, as
    // written before records were sealed, is accepted too.)
    let sealed = paxos::fs::durable::unseal(&before).expect("a sealed identity");
    let mut record: serde_json::Value = serde_json::from_slice(sealed).expect("identity JSON");
    let written = record
        .as_object_mut()
        .and_then(|o| o.remove("cluster"))
        .expect("the identity names its cluster");
    std::fs::write(g.dir(0).join("identity"), record.to_string()).expect("rewrite identity");
    g.spawn(0, false);
    let named = || {
        std::fs::read(g.dir(0).join("identity"))
            .ok()
            .and_then(|b| {
                let text = paxos::fs::durable::unseal(&b).ok()?.to_vec();
                serde_json::from_slice::<serde_json::Value>(&text).ok()
            })
            .and_then(|v| v.get("cluster").cloned())
    };
    wait_until(LIMIT, "the old identity record is named", || {
        named().is_some()
    });
    assert_eq!(named(), Some(written));
    check_with_only(&mut g, 0, 0..5);
}

/// Flips one payload byte of a frame that has frames after it, in the first log
/// segment of `log_dir` that has one: corruption before the tail.
fn flip_mid_log_byte(log_dir: &Path) {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(log_dir)
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    for seg in segs {
        let mut bytes = std::fs::read(&seg).expect("segment");
        let mut off = 0;
        while off + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[off..off + 4].try_into().expect("4")) as usize;
            let next = off + 8 + len;
            if len > 0 && next < bytes.len() {
                bytes[off + 8 + len / 2] ^= 0x5a;
                std::fs::write(&seg, &bytes).expect("write segment");
                return;
            }
            off = next;
        }
    }
    panic!(
        "no log frame with another after it under {}",
        log_dir.display()
    );
}

#[test]
fn a_kv_replica_with_a_corrupt_log_is_quarantined_and_recovered() {
    let mut g = Group::start(3);
    let mut c = g.client("writer");
    wait_serving(&mut c);
    put_all(&mut c, 0..20);
    // Killed right after the writes, before an idle checkpoint compacts its log.
    g.kill9(2);
    flip_mid_log_byte(&g.dir(2).join("log"));
    g.spawn(2, false);
    wait_recovered(&mut g, 2, "damaged state moved aside");
    let quarantined = std::fs::read_dir(g.dir(2))
        .expect("dir")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("quarantine-"));
    assert!(quarantined, "the damaged state was not kept for forensics");
    check_with_only(&mut g, 2, 0..20);
}

fn admin(masters: &str, args: &[&str]) -> String {
    let mut a = vec!["admin", "--masters", masters, "--timeout", "20"];
    a.extend_from_slice(args);
    let out = run(diskv_bin(), a, LIMIT);
    assert!(out.success(), "admin {args:?} failed: {}", out.stderr);
    out.stdout.trim().to_string()
}

#[test]
fn a_shardmaster_whose_directory_was_wiped_rejoins_and_answers_the_same_configs() {
    let root = tempfile::tempdir().expect("tempdir");
    let logs = root.path().join("logs");
    let addrs = reserve_addrs(3);
    let peers = addrs.join(",");
    let dir = |i: usize| root.path().join(format!("sm{i}"));
    let mut procs: Vec<Option<Process>> = (0..3)
        .map(|i| {
            Some(spawn(
                &format!("sm{i}"),
                &logs,
                master_args(i, &peers, &dir(i)),
            ))
        })
        .collect();
    for gid in 1..=4 {
        admin(
            &peers,
            &[
                "join",
                &gid.to_string(),
                &format!("127.0.0.1:{}", 9000 + gid),
            ],
        );
    }
    admin(&peers, &["move", "0", "3"]);
    admin(&peers, &["leave", "2"]);
    procs[2].take().expect("running").kill9();
    std::fs::remove_dir_all(dir(2)).expect("wipe");
    let restarted = spawn("sm2-again", &logs, master_args(2, &peers, &dir(2)));
    wait_until(LIMIT, "the wiped shardmaster recovers", || {
        restarted
            .stderr()
            .contains("recovered from a lost disk; voting again")
    });
    assert!(!restarted.stderr().contains("starting fresh"));
    let through_others = format!("{},{}", addrs[0], addrs[1]);
    let latest = admin(&through_others, &["query"]);
    assert!(latest.contains("\"num\":6"), "{latest}");
    for num in 0..=6 {
        let n = num.to_string();
        assert_eq!(
            admin(&addrs[2], &["query", &n]),
            admin(&through_others, &["query", &n])
        );
    }
    // It votes: with replica 0 gone, replicas 1 and 2 still decide.
    procs[0].take().expect("running").kill9();
    let both = format!("{},{}", addrs[1], addrs[2]);
    admin(&both, &["join", "9", "127.0.0.1:9009"]);
    assert!(admin(&addrs[2], &["query"]).contains("\"num\":7"));
    drop(restarted);
}
