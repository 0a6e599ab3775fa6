//! `diskv cluster` (docs/REFERENCE.md §5): a launcher with its shardmasters and replica
//! groups as child processes, used through HTTP, stopped with SIGINT (exit 0, every
//! child gone), and started again on the same directory with its data.

mod support;

use paxos::transport::role::Role;
use paxos::transport::tls::{Tls, TlsFiles};
use std::path::Path;
use std::time::Duration;
use support::http::{delete, must_put, request, value};
use support::launcher::{self, exists, interrupt, Orphans, READY_LIMIT};
use support::process::{diskv_bin, reserve_addrs, wait_for, Process};

/// Starts a cluster of 3 shardmasters and 2 groups of 3 replicas.
fn launch(dir: &Path, http: &str, logs: &Path, name: &str) -> (Process, Vec<i32>) {
    let shape = ["--groups", "2", "--replicas", "3", "--masters", "3"];
    let (p, pids) = launcher::launch(dir, http, logs, name, &shape);
    assert_eq!(
        pids.len(),
        9,
        "3 shardmasters + 2 groups x 3 replicas:\n{}",
        p.stdout()
    );
    (p, pids)
}

#[test]
fn cluster_serves_stops_and_comes_back_with_its_data() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cluster");
    let logs = root.path().join("logs");
    let http = reserve_addrs(1).remove(0);

    let (mut p, pids) = launch(&dir, &http, &logs, "cluster-1");
    let _orphans = Orphans(pids.clone());
    assert!(dir.join("cluster.json").exists());
    for name in ["shardmaster-0", "group-1-replica-0", "group-2-replica-2"] {
        assert!(
            dir.join("logs").join(format!("{name}.log")).exists(),
            "{name}"
        );
    }
    assert_eq!(request(&http, "GET", "/health", b"").unwrap().status, 200);
    // The identity made for the user's clients (DIR/tls/client) is a client's:
    // it cannot open replica-to-replica connections; the daemons' are nodes'.
    let role = |name: &str| {
        Tls::load(&TlsFiles::in_dir(&dir.join("tls").join(name)))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .role()
    };
    assert_eq!(role("client"), Role::Client);
    for name in ["launcher", "shardmaster-0", "group-2-replica-2"] {
        assert_eq!(role(name), Role::Node, "{name}");
    }
    for i in 0..40 {
        must_put(&http, &format!("key:{i}"), &format!("value {i} 😀"));
    }
    must_put(&http, "key:0", "overwritten");
    assert_eq!(delete(&http, "key:1").status, 200);
    assert_eq!(value(&http, "key:0").as_deref(), Some("overwritten"));
    assert_eq!(value(&http, "key:1"), None);
    assert_eq!(value(&http, "key:2").as_deref(), Some("value 2 😀"));
    let bad = request(&http, "GET", "/kv/a%20b", b"").unwrap();
    assert_eq!(
        (bad.status, bad.message().as_str()),
        (400, "key contains invalid characters")
    );
    let metrics = request(&http, "GET", "/metrics", b"").unwrap().text();
    assert!(
        metrics.contains("diskv_http_requests_total{op=\"put\",status=\"200\"} 41\n"),
        "{metrics}"
    );
    interrupt(&mut p, &pids);
    let ports = std::fs::read_to_string(dir.join("cluster.json")).unwrap();

    // A fresh port for the API: the old one may have been taken meanwhile.
    let http = reserve_addrs(1).remove(0);
    let (mut p, pids) = launch(&dir, &http, &logs, "cluster-2");
    let _orphans2 = Orphans(pids.clone());
    assert!(
        p.stdout().contains("restarting the cluster recorded"),
        "{}",
        p.stdout()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("cluster.json")).unwrap(),
        ports,
        "same addresses"
    );
    assert_eq!(value(&http, "key:0").as_deref(), Some("overwritten"));
    assert_eq!(value(&http, "key:1"), None);
    for i in 2..40 {
        assert_eq!(
            value(&http, &format!("key:{i}")),
            Some(format!("value {i} 😀"))
        );
    }
    p.sigterm();
    let status = p.wait_exit(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(pids.iter().all(|&pid| !exists(pid)));
}

#[test]
fn contradicting_the_recorded_shape_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("cluster.json"),
        r#"{"shards":10,"masters":["127.0.0.1:1"],"groups":[{"gid":1,"replicas":["127.0.0.1:2"]}]}"#,
    )
    .unwrap();
    let http = reserve_addrs(1).remove(0);
    let out = support::process::run(
        diskv_bin(),
        [
            "cluster",
            "--groups",
            "3",
            "--dir",
            &dir.display().to_string(),
            "--http",
            &http,
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("--groups 3 does not match"),
        "{}",
        out.stderr
    );
}

/// `diskv server --http`: a replica that also serves the HTTP API for the cluster,
/// with its own Paxos metrics.
#[test]
fn server_http_flag_serves_the_cluster() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    let addrs = reserve_addrs(3);
    let (master, replica, http) = (&addrs[0], &addrs[1], &addrs[2]);
    let dir = |name: &str| root.path().join(name).display().to_string();
    let _sm = Process::spawn(
        "shardmaster",
        &logs,
        diskv_bin(),
        [
            "shardmaster",
            "--me",
            "0",
            "--peers",
            master,
            "--dir",
            &dir("sm"),
        ],
    );
    let mut server = Process::spawn(
        "server",
        &logs,
        diskv_bin(),
        [
            "server",
            "--gid",
            "1",
            "--masters",
            master,
            "--peers",
            replica,
            "--me",
            "0",
            "--dir",
            &dir("g1"),
            "--join",
            "--http",
            http,
        ],
    );
    wait_for(READY_LIMIT, "the HTTP API is ready", || {
        assert!(server.is_running(), "{}", server.stderr_tail(30));
        let r = request(http, "GET", "/health", b"").ok()?;
        (r.status == 200).then_some(())
    });
    must_put(http, "via:server", "ok");
    assert_eq!(value(http, "via:server").as_deref(), Some("ok"));
    let metrics = request(http, "GET", "/metrics", b"").unwrap().text();
    assert!(metrics.contains("diskv_paxos_is_leader 1\n"), "{metrics}");
    assert!(metrics.contains("diskv_shard_held{gid=\"1\""), "{metrics}");
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
