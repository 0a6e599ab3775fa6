//! A cluster spread over three hosts — network namespaces made by the test, each
//! with its own address on a bridge — with clients on a fourth: one host at a
//! time is cut off the network and brought back while the clients work, and their
//! history must be linearizable (issue #15, item 3).
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
use support::process::{diskv_bin, Process};
use support::seed::{seed, Rng};
use support::workload::{Outcome, Workload};

const SERVER_HOSTS: usize = 3;
const CLIENT_HOST: usize = 3;
const MASTER_PORT: u16 = 7000;
const REPLICA_PORT: u16 = 7100;

/// The hosts, or `None` (and a message) where namespaces cannot be made.
fn hosts() -> Option<Hosts> {
    match Hosts::make(SERVER_HOSTS + 1) {
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
