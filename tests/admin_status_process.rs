//! `diskv admin status` against real processes: it reports every shardmaster and
//! group replica with its role, shards and keys, and its exit status follows the
//! cluster's health as replicas are killed and restarted (docs/REFERENCE.md §3).

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::cluster::ShardCluster;
use support::line_client::wait_serving;
use support::process::{diskv_bin, reserve_addrs, run, Output};

const NSHARDS: usize = 4;

/// Runs `diskv admin status` (with `extra` flags) against `masters`.
fn status(masters: &str, extra: &[&str]) -> Output {
    let mut args = vec!["admin", "--masters", masters, "status", "--wait", "1"];
    args.extend_from_slice(extra);
    run(diskv_bin(), args, Duration::from_secs(30))
}

/// Polls `status --json` until its exit code is `code`; returns the JSON. On
/// timeout, panics with what the last poll printed.
fn wait_code(masters: &str, code: i32, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = status(masters, &["--json"]);
        let json: Option<Value> = serde_json::from_str(out.stdout.trim()).ok();
        if let Some(json) = json.filter(|_| out.status.and_then(|s| s.code()) == Some(code)) {
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 60 s; last: {:?}\n{}\n{}",
            out.status,
            out.stdout,
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn group(json: &Value, gid: u64) -> &Value {
    json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gid"] == gid)
        .unwrap_or_else(|| panic!("group {gid} missing in {json}"))
}

fn roles(group: &Value) -> Vec<String> {
    group["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r["status"]["node"]["role"].as_str() {
            Some(role) => role.to_string(),
            None => "down".to_string(),
        })
        .collect()
}

#[test]
fn status_reports_every_replica_and_its_exit_code_follows_health() {
    // No shardmaster at all: unavailable, said at once, not a hang or a crash.
    let nobody = reserve_addrs(1).remove(0);
    let out = status(&nobody, &[]);
    assert_eq!(out.status.and_then(|s| s.code()), Some(3), "{out:?}");
    assert!(out.stdout.contains("cluster unavailable"), "{}", out.stdout);
    assert!(out.stdout.contains("down"), "{}", out.stdout);

    let mut cl = ShardCluster::start(NSHARDS);
    cl.start_group(1, 3, false);
    cl.wait_groups(&[1]);
    let mut c = cl.client("writer");
    wait_serving(&mut c);
    for i in 0..20 {
        assert_eq!(c.req(&format!("PUT k{i} v")), format!("PUT k{i} not_found"));
    }

    // Healthy: one shardmaster leading, three replicas with one leader, every
    // shard held and every key counted by the leader.
    let json = wait_code(&cl.masters, 0, "status says healthy");
    assert_eq!(json["health"], "healthy", "{json}");
    assert_eq!(json["masters"][0]["status"]["node"]["role"], "leader");
    let g = group(&json, 1);
    let r = roles(g);
    assert_eq!(r.iter().filter(|r| *r == "leader").count(), 1, "{r:?}");
    assert_eq!(r.iter().filter(|r| *r == "follower").count(), 2, "{r:?}");
    let leader = g["leader"].as_u64().expect("a leader") as usize;
    let held = &g["replicas"][leader]["status"];
    assert_eq!(held["shards"].as_object().unwrap().len(), NSHARDS, "{held}");
    assert_eq!(held["keys"], 20, "{held}");
    assert!(held["disk"]["used_bytes"].as_u64().unwrap() > 0, "{held}");
    assert_eq!(json["shards"], serde_json::json!([1, 1, 1, 1]));

    let table = status(&cl.masters, &[]);
    assert!(table.success(), "{table:?}");
    for want in [
        "cluster healthy",
        "shardmaster",
        "group 1",
        "leader",
        "follower",
    ] {
        assert!(
            table.stdout.contains(want),
            "{want:?} missing:\n{}",
            table.stdout
        );
    }

    // One follower killed: degraded (exit 2), the dead one shown down.
    let follower = (leader + 1) % 3;
    cl.kill9(1, follower);
    let json = wait_code(&cl.masters, 2, "status says degraded");
    assert_eq!(roles(group(&json, 1))[follower], "down", "{json}");
    let problems = json["problems"].to_string();
    assert!(problems.contains("is down"), "{problems}");
    let table = status(&cl.masters, &[]);
    assert_eq!(table.status.and_then(|s| s.code()), Some(2), "{table:?}");
    assert!(table.stderr.contains("degraded"), "{}", table.stderr);

    // A second one killed: no majority, unavailable (exit 3).
    let other = (leader + 2) % 3;
    cl.kill9(1, other);
    let json = wait_code(&cl.masters, 3, "status says unavailable");
    assert!(
        json["problems"]
            .to_string()
            .contains("voting replicas of 3"),
        "{json}"
    );

    // Both back: healthy again.
    cl.restart(1, follower);
    cl.restart(1, other);
    wait_code(&cl.masters, 0, "status says healthy again");
}
