//! A full disk is a state, not a crash (issue #18, B4): on a small tmpfs made by
//! the test, `diskv serve` refuses writes at once with 507 and the cause, keeps
//! serving reads, reports the condition on `/health` and `/metrics`, and resumes by
//! itself once space is freed, with every acknowledged write kept; in a group of
//! three, one replica with a full disk does not stall the group and rejoins it once
//! its disk has room. Skipped, with a message, where a tmpfs cannot be mounted.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::cluster::ShardCluster;
use support::http::{get, must_put, put, request, value, ServeNode};
use support::process::{diskv_bin, reserve_addrs, run, wait_for};
use support::small_fs::SmallFs;

/// Puts until one answer is not 200; returns it, with the keys acknowledged.
fn put_until_refused(addr: &str, acked: &mut BTreeMap<String, String>) -> support::http::Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..10_000 {
        assert!(
            Instant::now() < deadline,
            "no write was refused on a full disk"
        );
        let (k, v) = (format!("after:{i}"), format!("value-{i}"));
        let r = put(addr, &k, &v);
        if r.status != 200 {
            return r;
        }
        acked.insert(k, v);
    }
    panic!("10,000 writes fit on a full disk");
}

#[test]
fn serve_on_a_full_disk_refuses_writes_with_507_serves_reads_and_resumes_by_itself() {
    let root = tempfile::tempdir().unwrap();
    // The data directory and the process's logs share the small file system, as
    // they often do on a real machine: a log line that cannot be written must not
    // cost a request its answer.
    let Some(fs) = SmallFs::mount(&root.path().join("fs"), 48) else {
        return;
    };
    let mut node = ServeNode::start(&fs.path);
    let a = node.addr.clone();
    let mut acked = BTreeMap::new();
    for i in 0..20 {
        let (k, v) = (format!("before:{i}"), format!("value-{i}"));
        must_put(&a, &k, &v);
        acked.insert(k, v);
    }
    fs.fill();

    let started = Instant::now();
    let refused = put_until_refused(&a, &mut acked);
    assert_eq!(
        refused.status,
        507,
        "a write on a full disk: {}",
        refused.text()
    );
    assert!(
        refused.text().contains("disk is full"),
        "507 body: {}",
        refused.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the refusal took {:?}",
        started.elapsed()
    );
    // Once the replica knows, a write is refused at once.
    let again = Instant::now();
    let r = put(&a, "while:full", "x");
    assert_eq!(r.status, 507, "{}", r.text());
    assert!(r.text().contains("was not applied"), "{}", r.text());
    assert!(
        again.elapsed() < Duration::from_secs(2),
        "took {:?}",
        again.elapsed()
    );

    for (k, v) in &acked {
        let r = get(&a, k);
        assert_eq!(r.status, 200, "GET {k} on a full disk: {}", r.text());
        assert_eq!(&r.text(), v, "GET {k}");
    }
    let health = request(&a, "GET", "/health", b"").unwrap();
    assert_eq!(
        health.status,
        503,
        "/health on a full disk: {}",
        health.text()
    );
    assert!(health.text().contains("disk is full"), "{}", health.text());
    let metrics = request(&a, "GET", "/metrics", b"").unwrap().text();
    assert!(
        metrics.contains("diskv_storage_no_space 1"),
        "metrics lack the condition"
    );

    fs.free();
    wait_for(
        Duration::from_secs(30),
        "a write after space was freed",
        || (put(&a, "after:free", "yes").status == 200).then_some(()),
    );
    acked.insert("after:free".into(), "yes".into());
    assert_eq!(request(&a, "GET", "/health", b"").unwrap().status, 200);
    for (k, v) in &acked {
        assert_eq!(
            value(&a, k).as_deref(),
            Some(v.as_str()),
            "key {k} after resuming"
        );
    }
    // Nothing acknowledged is lost across a kill -9 either.
    node.kill9();
    node.restart();
    let a = node.addr.clone();
    for (k, v) in &acked {
        assert_eq!(
            value(&a, k).as_deref(),
            Some(v.as_str()),
            "key {k} after a restart"
        );
    }
    assert_eq!(value(&a, "while:full"), None, "a refused write took effect");
}

/// A cluster with group 1 of `n` replicas, replica `full`'s directory on a tmpfs
/// of `mib` MiB, `PUT k0 v0` done through a line client, then that tmpfs filled.
/// `None` (the test skips) where a tmpfs cannot be mounted.
fn group_with_a_full_replica(
    n: usize,
    full: usize,
    mib: u64,
) -> Option<(ShardCluster, SmallFs, support::line_client::Client)> {
    let mut c = ShardCluster::start(4);
    let fs = SmallFs::mount(&c.replica_dir(1, full), mib)?;
    c.start_group(1, n, false);
    c.wait_started(1);
    c.wait_groups(&[1]);
    let mut client = c.client("c");
    client.send("PUT k0 v0");
    assert_eq!(client.recv(), "PUT k0 not_found");
    fs.fill();
    Some((c, fs, client))
}

#[test]
fn one_replica_of_three_with_a_full_disk_does_not_stall_its_group_and_rejoins() {
    let Some((mut c, fs, mut client)) = group_with_a_full_replica(3, 2, 48) else {
        return;
    };
    let started = Instant::now();
    // Values of 2 KB: a few fill what is left of the log's last page.
    let big = "x".repeat(2000);
    for i in 1..=30 {
        client.send(&format!("PUT k{i} {big}{i}"));
        assert_eq!(client.recv(), format!("PUT k{i} not_found"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "30 writes took {:?} with one full replica",
        started.elapsed()
    );
    wait_for(
        Duration::from_secs(30),
        "replica 2 says its disk is full",
        || c.group_log(1).contains("the disk is full").then_some(()),
    );
    fs.free();
    wait_for(Duration::from_secs(30), "replica 2 resumes", || {
        c.group_log(1)
            .contains("storage takes writes again")
            .then_some(())
    });
    // Replica 2 votes again: with replica 0 gone, the group needs it.
    c.kill9(1, 0);
    for i in 31..=40 {
        client.send(&format!("PUT k{i} {big}{i}"));
        assert_eq!(client.recv(), format!("PUT k{i} not_found"));
    }
    client.send("GET k0");
    assert_eq!(client.recv(), "GET k0 v0");
    for i in 1..=40 {
        client.send(&format!("GET k{i}"));
        assert_eq!(client.recv(), format!("GET k{i} {big}{i}"));
    }
}

#[test]
fn serve_on_a_read_only_data_directory_says_so_and_exits_non_zero() {
    let root = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount(&root.path().join("data"), 16) else {
        return;
    };
    let mut node = ServeNode::start(root.path());
    must_put(&node.addr, "k", "v");
    node.sigterm();
    fs.make_read_only();
    let data = node.data.display().to_string();
    let addr = reserve_addrs(1).remove(0);
    let out = run(
        diskv_bin(),
        ["serve", "--listen", &addr, "--data-dir", &data],
        Duration::from_secs(30),
    );
    let stderr = &out.stderr;
    let status = out
        .status
        .expect("serve exits within 30 s on a read-only directory");
    assert!(
        !status.success(),
        "serve started on a read-only directory:\n{stderr}"
    );
    assert!(
        stderr.contains("Read-only file system") && stderr.contains(&data),
        "the error does not name the cause and the directory:\n{stderr}"
    );
}

#[test]
fn the_line_client_answers_error_when_its_group_s_disk_is_full_and_reads_on() {
    let Some((_c, fs, mut client)) = group_with_a_full_replica(1, 0, 32) else {
        return;
    };
    let big = "x".repeat(2000);
    let refused = (1..=200)
        .find_map(|i| {
            client.send(&format!("PUT k{i} {big}"));
            let reply = client.recv();
            (reply != format!("PUT k{i} not_found")).then_some(reply)
        })
        .expect("200 writes of 2 KB fit on a full disk");
    assert!(
        refused.starts_with("ERROR insufficient storage") && refused.contains("disk is full"),
        "{refused}"
    );
    // The client carries on: reads are served, and writes resume once space is freed.
    client.send("GET k0");
    assert_eq!(client.recv(), "GET k0 v0");
    fs.free();
    wait_for(
        Duration::from_secs(30),
        "a write after space was freed",
        || {
            client.send("PUT after v");
            let reply = client.recv();
            (reply.starts_with("PUT after")).then_some(())
        },
    );
}
