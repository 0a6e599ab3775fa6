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

/// A group that answers a read only once `parties` reads are in flight at once.
#[derive(Clone)]
struct AllAtOnce {
    barrier: std::sync::Arc<tokio::sync::Barrier>,
}

impl diskv::rpc::KvRpc for AllAtOnce {
    async fn execute(
        self,
        _: tarpc::context::Context,
        req: diskv::Request,
    ) -> Result<diskv::Reply, diskv::KvError> {
        self.barrier.wait().await;
        let key = format!("k{:02}", req.shard);
        Ok(match req.op {
            diskv::Op::Keys { .. } => diskv::Reply::Keys(vec![key]),
            _ => diskv::Reply::Pairs(vec![(key, format!("from shard {}", req.shard))]),
        })
    }
    async fn fetch_shard(
        self,
        _: tarpc::context::Context,
        _: u64,
        _: usize,
    ) -> Result<diskv::rpc::ShardTransfer, diskv::KvError> {
        Err(diskv::KvError::Unavailable("a fake group".into()))
    }
    async fn shard_installed(
        self,
        _: tarpc::context::Context,
        _: u64,
        _: usize,
    ) -> Result<bool, diskv::KvError> {
        Err(diskv::KvError::Unavailable("a fake group".into()))
    }
    async fn snapshot(
        self,
        _: tarpc::context::Context,
    ) -> Result<diskv::rpc::GroupSnapshot, diskv::KvError> {
        Err(diskv::KvError::Unavailable("a fake group".into()))
    }
    async fn status(
        self,
        _: tarpc::context::Context,
    ) -> Result<diskv::rpc::ReplicaStatus, diskv::KvError> {
        Err(diskv::KvError::Unavailable("a fake group".into()))
    }
    async fn read_shard(
        self,
        _: tarpc::context::Context,
        _: diskv::rpc::ShardRead,
    ) -> Result<diskv::rpc::ShardPage, diskv::KvError> {
        Err(diskv::KvError::Unavailable("a fake group".into()))
    }
    async fn change_membership(
        self,
        _: tarpc::context::Context,
        _: paxos::core::Change,
    ) -> paxos::core::ChangeAnswer {
        paxos::core::ChangeAnswer::NotLeader(None)
    }
    async fn execute_batch(
        self,
        _: tarpc::context::Context,
        _: diskv::Batch,
    ) -> Result<diskv::Reply, diskv::KvError> {
        Err(diskv::KvError::Unavailable("a fake group".into()))
    }
}

/// A scan (and a key listing) asks every shard at once: the fake group holding all
/// ten shards answers only when ten reads wait together, so a Clerk that asked
/// one shard after another would never get an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_reads_every_shard_at_once() {
    use diskv::rpc::KvRpc as _;
    use futures::StreamExt as _;
    use tarpc::server::{BaseChannel, Channel as _};
    const SHARDS: usize = 10;
    diskv_testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 1, SHARDS).await;
    let (mut listeners, addrs) = diskv_testkit::listeners(1).await;
    let (listener, addr) = (listeners.remove(0), addrs[0].clone());
    let mut demux = paxos::transport::mux::demux(listener).unwrap();
    let group = AllAtOnce {
        barrier: std::sync::Arc::new(tokio::sync::Barrier::new(SHARDS)),
    };
    let server = tokio::spawn(async move {
        while let Some(conn) = demux.clients.recv().await {
            let channel = BaseChannel::with_defaults(paxos::transport::codec::framed(conn));
            let serve = group.clone().serve();
            tokio::spawn(channel.execute(serve).for_each(|f| async {
                tokio::spawn(f);
            }));
        }
    });
    let admin = MasterClerk::new(maddrs.clone());
    admin.join(7, vec![addr]).await.unwrap();
    let mut ck = Clerk::new(maddrs).await;
    let want: Vec<String> = (0..SHARDS).map(|s| format!("k{s:02}")).collect();
    let pairs = within(
        Duration::from_secs(30),
        "a scan of ten shards",
        ck.scan("", "~"),
    )
    .await;
    let keys: Vec<String> = pairs.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, want, "every shard's piece, merged in key order");
    let listed = within(Duration::from_secs(30), "a key listing", ck.keys("", 100)).await;
    assert_eq!(listed.unwrap(), want);
    server.abort();
}
