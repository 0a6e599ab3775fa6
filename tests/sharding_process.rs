//! Several replica groups as users run them: one `diskv shardmaster` process, groups
//! of `diskv server` processes that `--join`, `diskv admin leave`, and `diskv client`
//! processes — the 6.824 Lab 4 / MadKV P2 sharding scenarios with real processes.

mod support;

use std::time::{Duration, Instant};
use support::cluster::ShardCluster;
use support::line_client::wait_serving;

const NSHARDS: usize = 10;

#[test]
fn joins_and_leaves_keep_every_key() {
    let t0 = Instant::now();
    let mut cl = ShardCluster::start(NSHARDS);
    cl.start_group(1, 3, false);
    cl.wait_groups(&[1]);
    let mut c = cl.client("writer");
    wait_serving(&mut c);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert_eq!(
            c.req(&format!("PUT {k} v{k}")),
            format!("PUT {k} not_found")
        );
    }

    cl.start_group(2, 3, false);
    cl.start_group(3, 3, false);
    cl.wait_groups(&[1, 2, 3]);
    for k in &keys {
        assert_eq!(
            c.req(&format!("APPEND {k} +a")),
            format!("APPEND {k} found")
        );
    }

    let before = cl.query().expect("query");
    let on1 = before.shards_of(1);
    cl.admin_ok(&["leave", "1"]);
    cl.wait_groups(&[2, 3]);
    // As 6.824's "allow time for shards to transfer", but exact: group 1 deletes a
    // shard only once its new owner has installed it, so wait for every handoff.
    let after = cl.wait_settled(Duration::from_secs(30));
    assert!(after.shards_of(1).is_empty());
    let deleted = cl.progress(1).deleted;
    for s in &on1 {
        assert!(
            deleted.iter().any(|(d, _)| d == s),
            "group 1 never deleted shard {s}"
        );
    }
    for k in &keys {
        assert_eq!(c.req(&format!("GET {k}")), format!("GET {k} v{k}+a"));
    }

    cl.kill_group(1);
    for k in &keys {
        eprintln!("after kill: writer GET {k}");
        assert_eq!(c.req(&format!("GET {k}")), format!("GET {k} v{k}+a"));
    }
    let mut c2 = cl.client("reader");
    for k in &keys {
        eprintln!("after kill: reader GET {k}");
        assert_eq!(c2.req(&format!("GET {k}")), format!("GET {k} v{k}+a"));
    }
    eprintln!("joins_and_leaves_keep_every_key: {:?}", t0.elapsed());
}

#[test]
fn a_stopped_group_blocks_only_its_shards() {
    let t0 = Instant::now();
    let mut cl = ShardCluster::start(NSHARDS);
    for gid in 1..=3 {
        cl.start_group(gid, 1, false);
    }
    let cfg = cl.wait_groups(&[1, 2, 3]);
    let mut c = cl.client("writer");
    wait_serving(&mut c);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert_eq!(
            c.req(&format!("PUT {k} v{k}")),
            format!("PUT {k} not_found")
        );
    }
    let owner = |k: &str| cfg.shards[shardmaster::shard_of(k.as_bytes(), NSHARDS)];
    // The config must not have changed since (no joins/leaves after it).
    assert_eq!(cl.query().expect("query").num, cfg.num);
    let on3 = keys
        .iter()
        .find(|k| owner(k) == 3)
        .expect("a key on group 3")
        .clone();
    let others: Vec<&String> = keys.iter().filter(|k| owner(k) != 3).collect();
    assert!(others.iter().any(|k| owner(k) == 1) && others.iter().any(|k| owner(k) == 2));
    assert_eq!(
        c.req(&format!("PUT {on3} latest")),
        format!("PUT {on3} found")
    );

    cl.sigstop(3, 0);
    let mut blocked = cl.client("blocked");
    blocked.send(&format!("GET {on3}"));
    assert_eq!(
        blocked.try_recv(Duration::from_secs(2)),
        None,
        "a GET on a stopped group's shard answered"
    );
    for k in &others {
        assert_eq!(c.req(&format!("GET {k}")), format!("GET {k} v{k}"));
    }
    cl.sigcont(3, 0);
    assert_eq!(blocked.recv(), format!("GET {on3} latest"));
    eprintln!("a_stopped_group_blocks_only_its_shards: {:?}", t0.elapsed());
}
