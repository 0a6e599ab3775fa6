//! Restarts: every configuration survives replicas stopping and starting again on
//! their directories, the shard count is fixed at first start, and a directory
//! serves one replica at a time.

mod common;

use common::{churn, history, servers, Cluster, ClusterOptions};
use diskv_testkit::bind_again;
use diskv_testkit::{wait_until, within};
use shardmaster::{ConfigNum, ServerOptions, ShardmasterError, ShardmasterServer};
use std::time::Duration;
use tokio::net::TcpListener;

const TEST_LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_config_survives_restarts_of_every_replica() {
    within(TEST_LIMIT, "restarts", async {
        let mut cl = Cluster::start(ClusterOptions {
            checkpoint_every: 4,
            ..ClusterOptions::default()
        })
        .await;
        churn(&cl, 10).await;
        let before = history(&cl.clerk()).await;
        assert!(before.len() > 8);
        // The logs were cut behind checkpoints.
        wait_until(Duration::from_secs(20), "min() advances", || {
            cl.servers.iter().flatten().all(|s| s.node().min() > 0)
        })
        .await;

        // One replica down while the others go on; it catches up when back.
        cl.stop(2).await;
        churn(&cl, 20).await;
        cl.restart(2).await;
        let mid = history(&cl.clerk()).await;
        assert_eq!(mid[..before.len()], before[..], "history changed");
        let latest = mid.last().unwrap().clone();
        wait_until(Duration::from_secs(20), "replica 2 catches up", || {
            cl.server(2).latest() == latest
        })
        .await;

        // Everyone down, everyone up: same history at every replica.
        for i in 0..3 {
            cl.stop(i).await;
        }
        for i in 0..3 {
            cl.restart(i).await;
        }
        assert_eq!(history(&cl.clerk()).await, mid);
        let ck = cl.clerk();
        for c in &mid {
            for i in 0..3 {
                let got = loop {
                    match ck
                        .query_at(i, ConfigNum::Num(c.num), Duration::from_secs(2))
                        .await
                    {
                        Ok(got) => break got,
                        Err(e) => assert!(e.is_retryable(), "{e}"),
                    }
                };
                assert_eq!(&got, c, "replica {i}, config {}", c.num);
            }
        }
        // And the group still takes writes.
        ck.join(99, servers(99)).await.unwrap();
        assert_eq!(
            ck.query(ConfigNum::Latest).await.unwrap().num,
            latest.num + 1
        );
        cl.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shard_count_is_fixed_at_first_start() {
    within(TEST_LIMIT, "shard count", async {
        let mut cl = Cluster::start(ClusterOptions {
            nshards: 7,
            ..ClusterOptions::default()
        })
        .await;
        cl.clerk().join(1, servers(1)).await.unwrap();
        cl.stop(1).await;

        // A different --shards is refused with a message saying what to do.
        let mut opts = cl.server_options(1, true);
        opts.nshards = Some(12);
        let err = ShardmasterServer::start(bind_again(&cl.addrs[1]).await, opts)
            .await
            .err()
            .expect("a different shard count must be refused");
        assert!(
            matches!(
                &err,
                ShardmasterError::ClusterMismatch {
                    recorded: 7,
                    given: 12,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("omit it or pass 7"), "{err}");

        // Without --shards, the recorded count is used.
        cl.restart(1).await;
        assert_eq!(cl.server(1).nshards(), 7);
        assert_eq!(
            cl.clerk()
                .query(ConfigNum::Latest)
                .await
                .unwrap()
                .shards
                .len(),
            7
        );
        cl.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_serves_one_replica_at_a_time() {
    within(TEST_LIMIT, "lock", async {
        let cl = Cluster::start(ClusterOptions::default()).await;
        let opts = cl.server_options(0, false);
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = ShardmasterServer::start(other, opts)
            .await
            .err()
            .expect("a second server on a directory in use must be refused");
        assert!(matches!(err, ShardmasterError::DirInUse { .. }), "{err:?}");
        cl.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_is_quarantined_and_recovered_from_the_peers() {
    within(TEST_LIMIT, "corrupt checkpoint", async {
        let mut cl = Cluster::start(ClusterOptions {
            checkpoint_every: 2,
            ..ClusterOptions::default()
        })
        .await;
        churn(&cl, 10).await;
        wait_until(Duration::from_secs(20), "a checkpoint on replica 0", || {
            cl.server(0).checkpointed() > 0
        })
        .await;
        cl.stop(0).await;
        let state = cl.dir(0).join("state");
        let mut bytes = std::fs::read(&state).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&state, &bytes).unwrap();
        cl.restart(0).await;
        // Never repaired in place: the damaged file is kept aside, byte for byte.
        let kept = std::fs::read_dir(cl.dir(0))
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("quarantine-"))
            .expect("a quarantine folder");
        assert_eq!(std::fs::read(kept.path().join("state")).unwrap(), bytes);
        wait_until(
            Duration::from_secs(40),
            "recovery as a new incarnation",
            || cl.server(0).incarnation() == Some(1),
        )
        .await;
        assert_eq!(history(&cl.clerk()).await, {
            let ck = cl.clerk_for(&[0]);
            let latest = ck.query(ConfigNum::Latest).await.unwrap();
            let mut all = Vec::new();
            for num in 0..=latest.num {
                all.push(ck.query(ConfigNum::Num(num)).await.unwrap());
            }
            all
        });
        cl.shutdown().await;
    })
    .await;
}

#[test]
fn bad_options_are_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let opts = ServerOptions::new(dir.path().join("x"), 3, vec!["127.0.0.1:1".into()]);
        let err = ShardmasterServer::start(l, opts).await.err().unwrap();
        assert!(err.to_string().contains("--me 3"), "{err}");
    });
    assert!(!dir.path().join("x").exists());
}
