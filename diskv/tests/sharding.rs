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

/// A fake group: it answers each read of a scan or key listing with one key
/// per shard, only once `barrier`'s parties (requests, over every fake group)
/// are in flight at once, and counts the requests it gets. One that does not
/// `take_batches` refuses a batch as a replica before batched reads would.
#[derive(Clone)]
struct AllAtOnce {
    barrier: std::sync::Arc<tokio::sync::Barrier>,
    take_batches: bool,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl AllAtOnce {
    fn read(shard: usize, op: &diskv::Op) -> diskv::Reply {
        let key = format!("k{shard:02}");
        match op {
            diskv::Op::Keys { .. } => diskv::Reply::Keys(vec![key]),
            _ => diskv::Reply::Pairs(vec![(key, format!("from shard {shard}"))]),
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl diskv::rpc::KvRpc for AllAtOnce {
    async fn execute(
        self,
        _: tarpc::context::Context,
        req: diskv::Request,
    ) -> Result<diskv::Reply, diskv::KvError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.barrier.wait().await;
        Ok(Self::read(req.shard, &req.op))
    }
    async fn execute_batch(
        self,
        _: tarpc::context::Context,
        batch: diskv::Batch,
    ) -> Result<diskv::Reply, diskv::KvError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if !self.take_batches {
            return Err(diskv::KvError::Invalid(
                "Scan is not an operation on one key: it cannot be in a batch".into(),
            ));
        }
        self.barrier.wait().await;
        let replies = batch.ops.iter().map(|(s, op)| Self::read(*s, op));
        Ok(diskv::Reply::Batch(replies.collect()))
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
}

/// Serves `group` on a new loopback listener; returns its address and task.
async fn serve_fake(group: AllAtOnce) -> (String, tokio::task::JoinHandle<()>) {
    use diskv::rpc::KvRpc as _;
    use futures::StreamExt as _;
    use tarpc::server::{BaseChannel, Channel as _};
    let (mut listeners, addrs) = diskv_testkit::listeners(1).await;
    let mut demux = paxos::transport::mux::demux(listeners.remove(0)).unwrap();
    let server = tokio::spawn(async move {
        while let Some(conn) = demux.clients.recv().await {
            let channel = BaseChannel::with_defaults(paxos::transport::codec::framed(conn));
            let serve = group.clone().serve();
            tokio::spawn(channel.execute(serve).for_each(|f| async {
                tokio::spawn(f);
            }));
        }
    });
    (addrs[0].clone(), server)
}

/// Two fake groups of five shards each, answering only when `parties`
/// requests wait together; a scan and a key listing of all ten shards must
/// come back merged in key order. Returns the requests each group got.
async fn scan_two_groups(take_batches: bool, parties: usize) -> usize {
    const SHARDS: usize = 10;
    diskv_testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 1, SHARDS).await;
    let group = AllAtOnce {
        barrier: std::sync::Arc::new(tokio::sync::Barrier::new(parties)),
        take_batches,
        requests: Default::default(),
    };
    let (a, server_a) = serve_fake(group.clone()).await;
    let (b, server_b) = serve_fake(group.clone()).await;
    let admin = MasterClerk::new(maddrs.clone());
    admin.join(7, vec![a]).await.unwrap();
    admin.join(8, vec![b]).await.unwrap();
    let latest = admin.query(ConfigNum::Latest).await.unwrap();
    assert_eq!(latest.shards_of(7).len(), 5, "{:?}", latest.shards);
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
    let scanned = group.requests();
    let listed = within(Duration::from_secs(30), "a key listing", ck.keys("", 100)).await;
    assert_eq!(listed.unwrap(), want);
    assert_eq!(
        group.requests(),
        2 * scanned,
        "the listing asks as the scan did"
    );
    server_a.abort();
    server_b.abort();
    scanned
}

/// A scan (and a key listing) asks each group once, for all of its shards,
/// and both groups at once: each fake group answers only when the other one
/// is asked too, so a Clerk that asked one group after the other would never
/// get an answer, and one that asked shard by shard would send ten requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_asks_each_group_once_and_every_group_at_once() {
    assert_eq!(scan_two_groups(true, 2).await, 2);
}

/// Groups that refuse reads in a batch (replicas of an older version) are
/// asked shard by shard, every shard at once: the fake groups answer only
/// when all ten reads wait together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_groups_without_batched_reads_asks_every_shard_at_once() {
    assert_eq!(scan_two_groups(false, 10).await, 2 + 10);
}
