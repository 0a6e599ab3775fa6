//! The MadKV P2 testcase, on the MadKV-style static layout: one shardmaster and
//! three single-replica groups started with `--join`; clients know only the
//! shardmaster. Puts and Swaps; Gets and Scans succeed; one partition is killed;
//! Gets and single-key Scans on the other partitions still succeed; a Get and a
//! full Scan touching the dead partition block; the partition restarts with
//! `--restart` and the blocked requests (and new ones) return the latest values.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::cluster::ShardCluster;
use support::line_client::wait_serving;

const NSHARDS: usize = 10;
/// How long a request on the dead partition must stay unanswered.
const BLOCKED: Duration = Duration::from_secs(3);

#[test]
fn madkv_p2_a_dead_partition_blocks_only_its_keys_until_restarted() {
    let t0 = Instant::now();
    let mut cl = ShardCluster::start(NSHARDS);
    for gid in 1..=3 {
        cl.start_group(gid, 1, false);
    }
    let cfg = cl.wait_groups(&[1, 2, 3]);
    let mut c = cl.client("p2");
    wait_serving(&mut c);

    // 1–2. Puts and Swaps.
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..30 {
        let k = format!("k{i:02}");
        assert_eq!(
            c.req(&format!("PUT {k} p{i}")),
            format!("PUT {k} not_found")
        );
        want.insert(k, format!("p{i}"));
    }
    for i in (0..30).step_by(2) {
        let k = format!("k{i:02}");
        assert_eq!(c.req(&format!("SWAP {k} s{i}")), format!("SWAP {k} p{i}"));
        want.insert(k, format!("s{i}"));
    }
    // 3. Gets and Scans succeed.
    for (k, v) in &want {
        assert_eq!(c.req(&format!("GET {k}")), format!("GET {k} {v}"));
    }
    let all: Vec<(String, String)> = want.clone().into_iter().collect();
    assert_eq!(c.scan("k00", "k29"), all);
    assert_eq!(c.scan("k10", "k14"), all[10..15].to_vec());

    // Every group serves some of the keys, and the layout has not changed.
    assert_eq!(cl.query().expect("query").num, cfg.num);
    let owner: BTreeMap<String, u64> = want
        .keys()
        .map(|k| (k.clone(), cl.owner(&cfg, k)))
        .collect();
    let on = |gid: u64| -> Vec<String> {
        owner
            .iter()
            .filter(|(_, &g)| g == gid)
            .map(|(k, _)| k.clone())
            .collect()
    };
    for gid in 1..=3 {
        assert!(
            !on(gid).is_empty(),
            "no key on group {gid}: {:?}",
            cfg.shards
        );
    }
    let dead_key = on(3)[0].clone();

    // 4. Kill partition 3 (its only replica).
    cl.kill_group(3);

    // 5. Gets and Scans on the unaffected partitions succeed.
    for k in on(1).iter().chain(&on(2)) {
        assert_eq!(c.req(&format!("GET {k}")), format!("GET {k} {}", want[k]));
        assert_eq!(c.scan(k, k), vec![(k.clone(), want[k].clone())]);
    }

    // 6. A Get and a Scan involving partition 3 do not answer.
    let mut get = cl.client("blocked-get");
    get.send(&format!("GET {dead_key}"));
    let mut scan = cl.client("blocked-scan");
    scan.send("SCAN k00 k29");
    assert_eq!(
        get.try_recv(BLOCKED),
        None,
        "a GET on the dead partition answered"
    );
    assert_eq!(
        scan.try_recv(Duration::ZERO),
        None,
        "a SCAN over the dead partition answered"
    );
    // Writes to the live partitions go on (a key outside the blocked Scan's range).
    let live = (0..100)
        .map(|i| format!("x{i}"))
        .find(|k| cl.owner(&cfg, k) == 1)
        .expect("a key on group 1");
    assert_eq!(
        c.req(&format!("PUT {live} v")),
        format!("PUT {live} not_found")
    );
    assert_eq!(c.req(&format!("GET {live}")), format!("GET {live} v"));

    // 7. Restart partition 3 on its directory.
    cl.restart_group(3);

    // 8. The blocked Get returns the latest value written before the crash; so do
    // the blocked Scan and a new Get.
    assert_eq!(get.recv(), format!("GET {dead_key} {}", want[&dead_key]));
    let all: Vec<(String, String)> = want.clone().into_iter().collect();
    assert_eq!(scan.recv_scan("k00", "k29"), all);
    for k in on(3) {
        assert_eq!(c.req(&format!("GET {k}")), format!("GET {k} {}", want[&k]));
    }
    eprintln!("madkv_p2: {:?}", t0.elapsed());
}
