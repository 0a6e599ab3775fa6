//! Reconfiguration survives crashes in the middle of a shard handoff: replicas of
//! the sending or the receiving group are SIGKILLed at different points after a
//! Move (one replica, a majority, the whole group), restarted with `--restart`, and
//! the move completes with no acknowledged append lost or applied twice.

mod support;

use std::time::{Duration, Instant};
use support::appends::{check_appends, count, Appenders};
use support::cluster::ShardCluster;
use support::line_client::wait_serving;

const NSHARDS: usize = 4;

/// Which group of the handoff loses replicas.
#[derive(Clone, Copy, Debug)]
enum Side {
    Sender,
    Receiver,
    Both,
}

/// One handoff: which replicas die, and how long after the Move.
#[derive(Clone, Copy, Debug)]
struct Crash {
    side: Side,
    /// Replicas killed in each affected group (3 = the whole group).
    replicas: usize,
    /// Time from the Move to the kill.
    after: Duration,
    /// Time from the kill to the restart.
    down: Duration,
}

const fn crash(side: Side, replicas: usize, after_ms: u64, down_ms: u64) -> Crash {
    Crash {
        side,
        replicas,
        after: Duration::from_millis(after_ms),
        down: Duration::from_millis(down_ms),
    }
}

/// From "before the new config is even polled" to "long after": the leader polls
/// every 100 ms, then proposes the config, pulls, installs, and releases.
const SCHEDULE: [Crash; 8] = [
    crash(Side::Sender, 1, 0, 300),
    crash(Side::Receiver, 1, 120, 300),
    crash(Side::Sender, 3, 150, 500),
    crash(Side::Receiver, 3, 0, 500),
    crash(Side::Sender, 2, 250, 400),
    crash(Side::Receiver, 2, 180, 400),
    crash(Side::Both, 1, 100, 300),
    crash(Side::Both, 3, 200, 600),
];

#[test]
fn moves_complete_when_replicas_crash_mid_handoff() {
    let t0 = Instant::now();
    let mut cl = ShardCluster::start(NSHARDS);
    cl.start_group(1, 3, false);
    cl.start_group(2, 3, false);
    cl.wait_groups(&[1, 2]);
    let mut warm = cl.client("warm");
    wait_serving(&mut warm);
    drop(warm);
    cl.wait_settled(Duration::from_secs(60));

    let appenders = Appenders::start((0..3).map(|i| cl.client(&format!("c{i}"))).collect(), 2);
    for (round, crash) in SCHEDULE.iter().enumerate() {
        let shard = round % NSHARDS;
        let before = cl.query().expect("query");
        let from = before.shards[shard];
        let to = if from == 1 { 2 } else { 1 };
        let t = Instant::now();
        cl.move_shard(shard, to);
        std::thread::sleep(crash.after);
        let victims: Vec<u64> = match crash.side {
            Side::Sender => vec![from],
            Side::Receiver => vec![to],
            Side::Both => vec![from, to],
        };
        for &gid in &victims {
            for i in 0..crash.replicas {
                // Start at a different replica each round, to hit leaders too.
                cl.kill9(gid, (i + round) % 3);
            }
        }
        std::thread::sleep(crash.down);
        for &gid in &victims {
            cl.restart_group(gid);
        }
        let after = cl.wait_settled(Duration::from_secs(90));
        assert_eq!(
            after.shards[shard], to,
            "round {round}: shard {shard} not moved"
        );
        eprintln!(
            "round {round}: shard {shard} {from} -> {to} with {crash:?}: settled in {:?}",
            t.elapsed()
        );
    }
    let acked = appenders.stop();
    let mut c = cl.client("check");
    check_appends(&mut c, &acked);
    let n = count(&acked);
    eprintln!(
        "moves_complete_when_replicas_crash_mid_handoff: {n} acknowledged appends, {:?}",
        t0.elapsed()
    );
    assert!(n >= 20, "too few appends got through: {n}");
}

/// A shard handed over and deleted, then given back and installed while its group
/// never went idle (so no checkpoint came in between), must survive the group's
/// next checkpoint and a SIGKILL of all its replicas.
#[test]
fn a_shard_that_leaves_and_comes_back_survives_a_full_restart() {
    let t0 = Instant::now();
    let mut cl = ShardCluster::start(NSHARDS);
    cl.start_group(1, 3, false);
    cl.start_group(2, 3, false);
    let cfg = cl.wait_groups(&[1, 2]);
    cl.wait_settled(Duration::from_secs(60));
    let mut c = cl.client("writer");
    wait_serving(&mut c);
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert_eq!(c.req(&format!("PUT {k} {k}")), format!("PUT {k} not_found"));
    }
    let on1 = cfg.shards_of(1);
    assert!(on1.len() >= 2, "group 1 holds {on1:?}");
    let shard = on1[0];
    let moving: Vec<&String> = keys.iter().filter(|k| cl.shard_of(k) == shard).collect();
    assert!(!moving.is_empty(), "no key on shard {shard}");
    let busy_key = (0..100)
        .map(|i| format!("busy{i}"))
        .find(|k| cl.owner(&cfg, k) == 1 && cl.shard_of(k) != shard)
        .expect("a key on group 1's other shard");

    // Keep group 1 deciding instances (so it never checkpoints as idle) while the
    // shard goes to group 2 and comes back.
    let busy = Appenders::with_keys(vec![cl.client("busy")], vec![vec![busy_key]]);
    cl.move_shard(shard, 2);
    cl.wait_settled(Duration::from_secs(60));
    cl.move_shard(shard, 1);
    cl.wait_settled(Duration::from_secs(60));
    let acked = busy.stop();
    // Idle now: every replica of group 1 checkpoints.
    let stopped = std::time::SystemTime::now();
    let checkpointed = |i: usize| {
        std::fs::metadata(cl.replica_dir(1, i).join("kv/checkpoint"))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > stopped)
    };
    support::process::wait_until(Duration::from_secs(30), "group 1 checkpoints", || {
        (0..3).all(checkpointed)
    });
    cl.kill_group(1);
    cl.restart_group(1);

    let mut c = cl.client("reader");
    for k in &keys {
        assert_eq!(
            c.req(&format!("GET {k}")),
            format!("GET {k} {k}"),
            "shard {shard}"
        );
    }
    check_appends(&mut c, &acked);
    eprintln!(
        "a_shard_that_leaves_and_comes_back_survives_a_full_restart: {} busy appends, {:?}",
        count(&acked),
        t0.elapsed()
    );
}
