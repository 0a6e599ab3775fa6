//! A cluster spread over three hosts — network namespaces made by the test, each
//! with its own address on a bridge — with clients on a fourth: one host at a
//! time is cut off the network and brought back while the clients work; then the
//! group's replica on one host is replaced by a new one on a fifth host (`diskv
//! admin replica replace`) and a founder's host is cut off, so the replacement's
//! vote is needed. The clients' history must be linearizable (issue #15, items 1
//! and 3).
//!
//! Each host runs one shardmaster and one replica of the group, listening on its
//! own address (10.77.0.N), so every message between processes crosses the
//! bridge; the processes are the same `diskv shardmaster` and `diskv server` users
//! run. Needs root for the namespaces: skipped with a message without it, unless
//! `DISKV_REQUIRE_NETNS` is set (as `.ci/run` does), so CI cannot skip it.

mod support;

use std::time::{Duration, Instant};
use support::line_client::{wait_serving, Client};
use support::netns::Hosts;
use support::process::{diskv_bin, run, wait_until, Process};
use support::seed::{seed, Rng};
use support::workload::{Outcome, Workload};

const SERVER_HOSTS: usize = 3;
const CLIENT_HOST: usize = 3;
/// Where the replacement replica runs.
const NEW_HOST: usize = 4;
const MASTER_PORT: u16 = 7000;
const REPLICA_PORT: u16 = 7100;

/// The hosts, or `None` (and a message) where namespaces cannot be made.
fn hosts() -> Option<Hosts> {
    match Hosts::make(SERVER_HOSTS + 2) {
        Ok(h) => Some(h),
        Err(why) => {
            assert!(
                std::env::var_os("DISKV_REQUIRE_NETNS").is_none(),
                "DISKV_REQUIRE_NETNS is set but network namespaces cannot be made: {why}"
            );
            eprintln!("SKIPPED: cannot make network namespaces (run as root with iproute2): {why}");
            None
        }
    }
}

/// Starts `diskv ARGS` on host `i`.
fn spawn_on(
    hosts: &Hosts,
    i: usize,
    name: &str,
    logs: &std::path::Path,
    args: &[String],
) -> Process {
    let mut all = hosts.exec_args(i, diskv_bin());
    all.extend_from_slice(args);
    Process::spawn_with(name, logs, "ip", all, |c| {
        c.env("RUST_LOG", "info,tarpc=warn");
    })
}

#[test]
fn a_cluster_over_three_hosts_stays_linearizable_while_hosts_are_cut_off() {
    let Some(hosts) = hosts() else { return };
    let seed = seed("multihost");
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    let list = |port: u16| -> String {
        (0..SERVER_HOSTS)
            .map(|i| format!("{}:{port}", hosts.ip(i)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (masters, peers) = (list(MASTER_PORT), list(REPLICA_PORT));

    // Declared after `hosts`, so they are killed (by pid) before the namespaces go.
    let mut processes = Vec::new();
    for i in 0..SERVER_HOSTS {
        let dir = |what: &str| root.path().join(format!("{what}{i}")).display().to_string();
        let sm: Vec<String> = ["shardmaster", "--me", &i.to_string(), "--peers", &masters]
            .iter()
            .map(|s| s.to_string())
            .chain(["--dir".into(), dir("sm"), "--shards".into(), "4".into()])
            .collect();
        processes.push(spawn_on(&hosts, i, &format!("sm{i}"), &logs, &sm));
        let server: Vec<String> = [
            "server",
            "--gid",
            "1",
            "--masters",
            &masters,
            "--peers",
            &peers,
            "--me",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([i.to_string(), "--dir".into(), dir("g"), "--join".into()])
        .collect();
        processes.push(spawn_on(&hosts, i, &format!("g{i}"), &logs, &server));
    }
    let client = |name: &str| Client::spawn_in(name, &masters, &logs, hosts.netns(CLIENT_HOST));
    let mut warm = client("warm");
    wait_serving(&mut warm);
    drop(warm);

    let clients = (0..3).map(|ci| client(&format!("c{ci}"))).collect();
    let work = Workload::start("multihost", clients, seed);
    let mut rng = Rng::new(seed, 0);
    let t0 = Instant::now();
    let mut cuts = Vec::new();
    // Each server host in turn, in a seeded order, cut off for 1.5–3 s (long
    // enough to lose a leader: the election timeout is well under a second).
    let mut order: Vec<usize> = (0..SERVER_HOSTS).collect();
    order.rotate_left((rng.next() % SERVER_HOSTS as u64) as usize);
    for host in order {
        hosts.cut(host);
        let down = Duration::from_millis(1500 + rng.next() % 1500);
        std::thread::sleep(down);
        hosts.heal(host);
        cuts.push((host, down));
        std::thread::sleep(Duration::from_millis(1500 + rng.next() % 1000));
    }
    // The group's replica on host 2 is replaced by one on a new host; the old
    // process is killed, the new one starts empty and claims the seat.
    let admin = |args: &[&str]| {
        let mut all = hosts.exec_args(CLIENT_HOST, diskv_bin());
        all.extend(["admin", "--masters", &masters, "--timeout", "30"].map(String::from));
        all.extend(args.iter().map(|s| s.to_string()));
        let out = run("ip", all, Duration::from_secs(60));
        assert!(
            out.success(),
            "admin {args:?} failed: {}{}",
            out.stdout,
            out.stderr
        );
        out.stdout
    };
    let new_addr = format!("{}:{REPLICA_PORT}", hosts.ip(NEW_HOST));
    admin(&["replica", "replace", "1", "2", &new_addr]);
    let mut old = processes.remove(5);
    assert_eq!(old.name(), "g2");
    old.kill9();
    let new_peers = [0, 1, NEW_HOST]
        .map(|h| format!("{}:{REPLICA_PORT}", hosts.ip(h)))
        .join(",");
    let server: Vec<String> = ["server", "--gid", "1", "--masters", &masters]
        .iter()
        .map(|s| s.to_string())
        .chain(["--peers".into(), new_peers, "--me".into(), "2".into()])
        .chain([
            "--dir".into(),
            root.path().join("g-new").display().to_string(),
        ])
        .collect();
    processes.push(spawn_on(&hosts, NEW_HOST, "g2-new", &logs, &server));
    let claimed = format!("2\t{new_addr}\tVoter");
    wait_until(
        Duration::from_secs(60),
        "the replacement claims its seat",
        || {
            admin(&["replica", "list", "1"])
                .lines()
                .any(|l| l.starts_with(&claimed) && !l.contains("vacant"))
        },
    );
    // A founder's host cut off: the group decides only with the replacement.
    let founder = (rng.next() % 2) as usize;
    hosts.cut(founder);
    std::thread::sleep(Duration::from_millis(2500));
    hosts.heal(founder);
    cuts.push((founder, Duration::from_millis(2500)));

    let Outcome {
        returned,
        timed_out,
        ops,
    } = work.finish(client("final"), seed);
    eprintln!(
        "multihost: {ops} ops ({returned} returned, {timed_out} unknown), cuts {cuts:?}, {:?}",
        t0.elapsed()
    );
    assert!(returned >= 30, "too few operations returned: {returned}");
    for p in &mut processes {
        assert!(
            p.is_running(),
            "{} exited:\n{}",
            p.name(),
            p.stderr_tail(20)
        );
    }
}
