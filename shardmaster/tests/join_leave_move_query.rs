//! The 6.824 lab 4 shardmaster tests (Basic, Unreliable, FreshQuery) against real
//! replicas: in-process servers over TCP on 127.0.0.1, each with its own directory.

mod common;

use common::{check, servers, Cluster, ClusterOptions};
use diskv_testkit::within;
use paxos::transport::{codec, mux};
use shardmaster::rpc::ShardmasterRpcClient;
use shardmaster::{Clerk, Config, ConfigNum, Gid, Op, OpRequest, OpResult, ShardmasterError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::{client, context};

const TEST_LIMIT: Duration = Duration::from_secs(180);

/// Queries configuration `num` at replica `i` only, retrying lost attempts.
async fn query_at(ck: &Clerk, i: usize, which: ConfigNum) -> Config {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match ck.query_at(i, which, Duration::from_millis(700)).await {
            Ok(c) => return c,
            Err(e) if e.is_retryable() => {
                assert!(Instant::now() < deadline, "replica {i} never answered: {e}");
            }
            Err(e) => panic!("query {which:?} at replica {i} refused: {e}"),
        }
    }
}

/// The lab's "Basic leave/join" and "Historical queries".
async fn join_leave_and_history(cl: &Cluster) {
    let ck = cl.clerk();
    let mut cfa = vec![ck.query(ConfigNum::Latest).await.unwrap()];
    check(&cfa[0], &[]);
    assert_eq!(cfa[0].num, 0);

    let (gid1, gid2) = (1, 2);
    assert!(matches!(
        ck.join(gid1, servers(gid1)).await,
        Ok(OpResult::Changed { .. })
    ));
    cfa.push(ck.query(ConfigNum::Latest).await.unwrap());
    check(cfa.last().unwrap(), &[gid1]);

    ck.join(gid2, servers(gid2)).await.unwrap();
    cfa.push(ck.query(ConfigNum::Latest).await.unwrap());
    check(cfa.last().unwrap(), &[gid1, gid2]);

    // The lab joins gid2 a second time: a successful no-op.
    let again = ck.join(gid2, servers(gid2)).await.unwrap();
    assert_eq!(
        again,
        OpResult::Unchanged {
            num: cfa.last().unwrap().num
        }
    );
    let cfx = ck.query(ConfigNum::Latest).await.unwrap();
    check(&cfx, &[gid1, gid2]);
    assert_eq!(cfx.servers(gid1), Some(&servers(gid1)[..]));
    assert_eq!(cfx.servers(gid2), Some(&servers(gid2)[..]));

    ck.leave(gid1).await.unwrap();
    cfa.push(ck.query(ConfigNum::Latest).await.unwrap());
    check(cfa.last().unwrap(), &[gid2]);
    // Leaving again is a new operation, refused without a new config.
    assert_eq!(
        ck.leave(gid1).await,
        Err(ShardmasterError::UnknownGroup { gid: gid1 })
    );
    assert_eq!(
        ck.query(ConfigNum::Latest).await.unwrap(),
        *cfa.last().unwrap()
    );

    // Historical queries, at every replica.
    for c in &cfa {
        for i in 0..cl.addrs.len() {
            assert_eq!(
                &query_at(&ck, i, ConfigNum::Num(c.num)).await,
                c,
                "replica {i}"
            );
        }
    }
    ck.leave(gid2).await.unwrap();
    check(&ck.query(ConfigNum::Latest).await.unwrap(), &[]);
}

/// The lab's "Move".
async fn moves(cl: &Cluster) {
    let ck = cl.clerk();
    let (gid3, gid4) = (503, 504);
    ck.join(gid3, servers(gid3)).await.unwrap();
    ck.join(gid4, servers(gid4)).await.unwrap();
    let nshards = cl.opts.nshards;
    for i in 0..nshards {
        let cf = ck.query(ConfigNum::Latest).await.unwrap();
        let target = if i < nshards / 2 { gid3 } else { gid4 };
        let r = ck.move_shard(i, target).await.unwrap();
        let cf1 = ck.query(ConfigNum::Latest).await.unwrap();
        if cf.shards[i] == target {
            assert_eq!(r, OpResult::Unchanged { num: cf.num });
            assert_eq!(cf1.num, cf.num);
        } else {
            assert_eq!(r, OpResult::Changed { num: cf.num + 1 });
            assert_eq!(
                cf1.num,
                cf.num + 1,
                "Move should increase the config number"
            );
        }
    }
    let cf2 = ck.query(ConfigNum::Latest).await.unwrap();
    for i in 0..nshards {
        let want = if i < nshards / 2 { gid3 } else { gid4 };
        assert_eq!(cf2.shards[i], want, "shard {i} not moved");
    }
    // Invalid moves are refused and change nothing.
    assert_eq!(
        ck.move_shard(0, 999).await,
        Err(ShardmasterError::MoveToUnknownGroup { shard: 0, gid: 999 })
    );
    assert_eq!(
        ck.move_shard(nshards, gid3).await,
        Err(ShardmasterError::ShardOutOfRange {
            shard: nshards,
            nshards
        })
    );
    assert_eq!(
        ck.move_shard(1, 0).await,
        Err(ShardmasterError::ReservedGid)
    );
    assert_eq!(ck.query(ConfigNum::Latest).await.unwrap(), cf2);
    ck.leave(gid3).await.unwrap();
    ck.leave(gid4).await.unwrap();
}

/// The lab's "Concurrent leave/join" with `npara` clients, then "Minimal transfers
/// after joins" and "after leaves". Leaves groups 1..=npara joined.
async fn concurrent_and_minimal_transfers(cl: &Cluster, npara: u64) {
    let mut tasks = Vec::new();
    for gid in 1..=npara {
        let ck = cl.clerk();
        tasks.push(tokio::spawn(async move {
            ck.join(gid + 1000, servers(gid + 1000)).await.unwrap();
            ck.join(gid, servers(gid)).await.unwrap();
            ck.leave(gid + 1000).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let ck = cl.clerk();
    let gids: Vec<Gid> = (1..=npara).collect();
    let c1 = ck.query(ConfigNum::Latest).await.unwrap();
    check(&c1, &gids);

    for i in 0..5 {
        ck.join(1500 + i, servers(1500 + i)).await.unwrap();
    }
    let c2 = ck.query(ConfigNum::Latest).await.unwrap();
    for gid in 1..=npara {
        for (j, &owner) in c2.shards.iter().enumerate() {
            if owner == gid {
                assert_eq!(c1.shards[j], gid, "non-minimal transfer after Joins");
            }
        }
    }
    for i in 0..5 {
        ck.leave(1500 + i).await.unwrap();
    }
    let c3 = ck.query(ConfigNum::Latest).await.unwrap();
    check(&c3, &gids);
    for gid in 1..=npara {
        for (j, &owner) in c2.shards.iter().enumerate() {
            if owner == gid {
                assert_eq!(c3.shards[j], gid, "non-minimal transfer after Leaves");
            }
        }
    }
}

/// Every replica's `min()` reaches the end of the log once it is idle: checkpoints
/// let the log forget, and every replica learns every other's `done`.
async fn min_advances_everywhere(cl: &Cluster) {
    let ck = cl.clerk();
    for gid in 2000..2020 {
        ck.join(gid, servers(gid)).await.unwrap();
        ck.query(ConfigNum::Latest).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let applied: Vec<u64> = cl.servers.iter().flatten().map(|s| s.applied()).collect();
        let mins: Vec<u64> = cl
            .servers
            .iter()
            .flatten()
            .map(|s| s.node().min())
            .collect();
        let end = applied.iter().copied().max().unwrap_or(0);
        if end >= 40 && mins.iter().all(|&m| m == end) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "min() did not reach the end of the log: min {mins:?}, applied {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic() {
    within(TEST_LIMIT, "basic", async {
        let cl = Cluster::start(ClusterOptions::default()).await;
        join_leave_and_history(&cl).await;
        moves(&cl).await;
        concurrent_and_minimal_transfers(&cl, 10).await;
        min_advances_everywhere(&cl).await;
        cl.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable() {
    within(TEST_LIMIT, "unreliable", async {
        let cl = Cluster::start(ClusterOptions {
            unreliable: true,
            ..ClusterOptions::default()
        })
        .await;
        join_leave_and_history(&cl).await;
        moves(&cl).await;
        concurrent_and_minimal_transfers(&cl, 20).await;
        min_advances_everywhere(&cl).await;
        cl.shutdown().await;
    })
    .await;
}

/// A raw RPC client for replica `addr`.
async fn rpc(addr: &str) -> ShardmasterRpcClient {
    let stream = mux::connect(addr, mux::CLIENT).await.expect("connect");
    ShardmasterRpcClient::new(client::Config::default(), codec::framed(stream)).spawn()
}

/// Sends `req` to `addr` until the answer is final.
async fn call_final(addr: &str, req: &OpRequest) -> Result<OpResult, ShardmasterError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let rpc = rpc(addr).await;
    loop {
        let mut ctx = context::current();
        ctx.deadline = Instant::now() + Duration::from_secs(2);
        match rpc.call(ctx, req.clone()).await {
            Ok(Err(e)) if e.is_retryable() => {}
            Ok(answer) => return answer,
            Err(e) => panic!("rpc to {addr} failed: {e}"),
        }
        assert!(Instant::now() < deadline, "{req:?} never decided at {addr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_writes_are_applied_once_wherever_they_land() {
    within(TEST_LIMIT, "duplicates", async {
        let cl = Cluster::start(ClusterOptions::default()).await;
        let req = |seq, op| OpRequest {
            client: 0xfeed,
            seq,
            op,
        };
        let join = req(
            1,
            Op::Join {
                gid: 5,
                servers: servers(5),
            },
        );
        assert_eq!(
            call_final(&cl.addrs[0], &join).await,
            Ok(OpResult::Changed { num: 1 })
        );
        assert_eq!(
            call_final(&cl.addrs[1], &join).await,
            Ok(OpResult::Changed { num: 1 })
        );
        let leave = req(2, Op::Leave { gid: 5 });
        assert_eq!(
            call_final(&cl.addrs[2], &leave).await,
            Ok(OpResult::Changed { num: 2 })
        );
        // A retried Leave is not refused as UnknownGroup, and makes no config.
        assert_eq!(
            call_final(&cl.addrs[0], &leave).await,
            Ok(OpResult::Changed { num: 2 })
        );
        assert_eq!(
            call_final(&cl.addrs[1], &join).await,
            Err(ShardmasterError::Superseded {
                client: 0xfeed,
                seq: 1,
                latest: 2
            })
        );
        // A write without a sequence number breaks the protocol.
        assert!(matches!(
            call_final(&cl.addrs[1], &req(0, Op::Leave { gid: 5 })).await,
            Err(ShardmasterError::BadRequest { .. })
        ));
        let latest = cl.clerk().query(ConfigNum::Latest).await.unwrap();
        assert_eq!(latest.num, 2);
        cl.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_one_shared_clerk() {
    within(TEST_LIMIT, "shared clerk", async {
        let cl = Cluster::start(ClusterOptions::default()).await;
        let ck = Arc::new(cl.clerk());
        let mut tasks = Vec::new();
        for gid in 1..=8 {
            let ck = ck.clone();
            tasks.push(tokio::spawn(async move {
                ck.join(gid, servers(gid)).await.unwrap();
                ck.query(ConfigNum::Latest).await.unwrap()
            }));
        }
        for t in tasks {
            let seen = t.await.unwrap();
            assert!(!seen.groups.is_empty());
        }
        let gids: Vec<Gid> = (1..=8).collect();
        let latest = ck.query(ConfigNum::Latest).await.unwrap();
        check(&latest, &gids);
        assert_eq!(latest.num, 8, "each Join made exactly one config");
        cl.shutdown().await;
    })
    .await;
}

/// Queries replica `i` until it answers, checking that every answer includes `gid`.
async fn fresh_answer(ck: &Clerk, i: usize, gid: Gid) -> Config {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match ck
            .query_at(i, ConfigNum::Latest, Duration::from_secs(2))
            .await
        {
            Ok(c) => {
                assert!(
                    c.groups.contains_key(&gid),
                    "replica {i} answered with stale config {} (no group {gid})",
                    c.num
                );
                return c;
            }
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(Instant::now() < deadline, "replica {i} never answered: {e}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_query_after_a_partition() {
    within(TEST_LIMIT, "fresh query", async {
        let cl = Cluster::start(ClusterOptions {
            proxied: true,
            ..ClusterOptions::default()
        })
        .await;
        let ck = cl.clerk();
        ck.join(1, servers(1)).await.unwrap();
        assert!(query_at(&ck, 0, ConfigNum::Latest)
            .await
            .groups
            .contains_key(&1));

        // Replica 0 is cut off from its peers while group 2 joins.
        cl.isolate(0);
        let others = cl.clerk_for(&[1, 2]);
        others.join(2, servers(2)).await.unwrap();
        // It cannot get a Query decided, so it must not answer at all.
        for _ in 0..3 {
            let r = ck
                .query_at(0, ConfigNum::Latest, Duration::from_millis(800))
                .await;
            assert!(
                matches!(&r, Err(e) if e.is_retryable()),
                "an isolated replica answered: {r:?}"
            );
        }
        // Reconnected, it answers, and never with a config older than the Join.
        cl.heal(0);
        let c = fresh_answer(&ck, 0, 2).await;
        check(&c, &[1, 2]);

        // The lab's variant: replica 0 still sends but hears nothing.
        cl.cut_inbound(0, true);
        others.join(3, servers(3)).await.unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(c) = ck
                .query_at(0, ConfigNum::Latest, Duration::from_millis(500))
                .await
            {
                assert!(c.groups.contains_key(&3), "stale config {}", c.num);
            }
        }
        cl.cut_inbound(0, false);
        let c = fresh_answer(&ck, 0, 3).await;
        check(&c, &[1, 2, 3]);
        cl.shutdown().await;
    })
    .await;
}
