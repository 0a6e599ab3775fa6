//! Shards move between groups as groups join and leave, in one process over TCP.

mod common;

use common::{masters, Group};
use diskv::Clerk;
use diskv_testkit::within;
use shardmaster::{Clerk as MasterClerk, ConfigNum};
use std::collections::BTreeMap;
use std::time::Duration;

/// Waits until the shardmaster's latest config has exactly the groups `gids`, and
/// every replica of `groups` has applied it with no shard moving.
async fn settle(groups: &[&Group], admin: &MasterClerk, gids: &[u64]) {
    within(
        Duration::from_secs(60),
        "groups settling on the latest config",
        async {
            loop {
                let latest = admin.query(ConfigNum::Latest).await.unwrap();
                let members: Vec<u64> = latest.groups.keys().copied().collect();
                let done = members == gids
                    && groups.iter().all(|g| {
                        g.servers.iter().flatten().all(|s| {
                            s.rsm()
                                .with_state(|st| st.config().num == latest.num && st.settled())
                        })
                    });
                if done {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_their_shards_through_joins_and_leaves() {
    diskv_testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 3, 10).await;
    let admin = MasterClerk::new(maddrs.clone());
    let g1 = Group::start(dir.path(), 1, 3, &maddrs, true).await;
    let mut ck = Clerk::new(maddrs.clone()).await;
    let mut expected = BTreeMap::new();
    within(Duration::from_secs(60), "writes to group 1", async {
        for i in 0..40 {
            let (k, v) = (format!("k{i:02}"), format!("v{i}"));
            ck.put(&k, &v).await.unwrap();
            expected.insert(k, v);
        }
    })
    .await;

    let g2 = Group::start(dir.path(), 2, 3, &maddrs, true).await;
    let g3 = Group::start(dir.path(), 3, 3, &maddrs, true).await;
    settle(&[&g1, &g2, &g3], &admin, &[1, 2, 3]).await;
    let latest = admin.query(ConfigNum::Latest).await.unwrap();
    for gid in [1, 2, 3] {
        assert!(
            !latest.shards_of(gid).is_empty(),
            "group {gid} got no shard: {:?}",
            latest.shards
        );
    }
    within(
        Duration::from_secs(60),
        "appends while spread over three groups",
        async {
            for i in 0..40 {
                let k = format!("k{i:02}");
                ck.append(&k, "+").await.unwrap();
                expected.get_mut(&k).unwrap().push('+');
            }
        },
    )
    .await;

    admin.leave(1).await.unwrap();
    settle(&[&g1, &g2, &g3], &admin, &[2, 3]).await;
    // Group 1 deleted every shard it handed over.
    for s in g1.servers.iter().flatten() {
        assert!(
            s.rsm().with_state(|st| st.shard_modes().is_empty()),
            "group 1 still holds shards after leaving"
        );
    }
    within(Duration::from_secs(60), "reads after group 1 left", async {
        let got: BTreeMap<String, String> = ck.scan("k", "l").await.unwrap().into_iter().collect();
        assert_eq!(got, expected);
        for (k, v) in &expected {
            assert_eq!(ck.get(k).await.unwrap().as_ref(), Some(v), "key {k}");
        }
    })
    .await;
}
