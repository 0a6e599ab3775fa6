//! Attack on `diskv admin replica ...` (commit e334d82): the NotLeader hint a
//! replica translates into a place in *its applied* configuration's server list
//! (`KvService::leader_hint`), followed by a Clerk in *its own, newer* list.

mod common;

use common::masters;
use diskv::Clerk;
use shardmaster::Clerk as MasterClerk;
use std::time::Duration;

/// A fake replica: the leader answers every request, the others answer
/// `NotLeader` with the hint a real replica computes from its applied list.
#[derive(Clone)]
struct Fake {
    hint: Option<Option<usize>>,
}

impl diskv::rpc::KvRpc for Fake {
    async fn execute(
        self,
        _: tarpc::context::Context,
        _: diskv::Request,
    ) -> Result<diskv::Reply, diskv::KvError> {
        match self.hint {
            None => Ok(diskv::Reply::Value(Some("v".into()))),
            Some(leader) => Err(diskv::KvError::NotLeader { leader }),
        }
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
        Err(diskv::KvError::Unavailable("a fake replica".into()))
    }
}

/// Attack finding 2. Group 1 was A,B,C,D (three founders and a replica added
/// with `admin replica add`/`promote`); the operator removes A, and the
/// shardmaster records B,C,D in a new configuration. The group itself cannot
/// apply that configuration yet — it is still handing a shard to a group that
/// is down (a config is applied only once every shard of the previous one
/// moved), or just behind — so every replica's applied list is still A,B,C,D.
/// C leads. B and D translate C's seat into its place in *their* list: 2. A
/// Clerk that read the latest configuration (B,C,D) starts at B (index 0), is
/// sent to index 2 of its own list — D — which names index 2 again, so the
/// Clerk moves on to the next, B, which sends it to D... C is never asked, and
/// the Clerk retries forever for as long as the group stays at its old
/// configuration (until the other group comes back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_with_a_newer_server_list_than_the_replicas_still_reaches_the_leader() {
    use diskv::rpc::KvRpc as _;
    use futures::StreamExt as _;
    use tarpc::server::{BaseChannel, Channel as _};
    diskv_testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 1, 1).await;
    // B, C, D: what the latest configuration lists; C leads, and B and D hint
    // at index 2 (C's place in A,B,C,D, the list they applied).
    let (listeners, addrs) = diskv_testkit::listeners(3).await;
    let fakes = [
        Fake {
            hint: Some(Some(2)),
        },
        Fake { hint: None },
        Fake {
            hint: Some(Some(2)),
        },
    ];
    let mut servers = Vec::new();
    for (listener, fake) in listeners.into_iter().zip(fakes) {
        let mut demux = paxos::transport::mux::demux(listener).unwrap();
        servers.push(tokio::spawn(async move {
            while let Some(conn) = demux.clients.recv().await {
                let channel = BaseChannel::with_defaults(paxos::transport::codec::framed(conn));
                let serve = fake.clone().serve();
                tokio::spawn(channel.execute(serve).for_each(|f| async {
                    tokio::spawn(f);
                }));
            }
        }));
    }
    let admin = MasterClerk::new(maddrs.clone());
    admin.join(1, addrs.clone()).await.unwrap();
    let mut ck = Clerk::new(maddrs).await;
    let got = tokio::time::timeout(Duration::from_secs(20), ck.get("k")).await;
    for s in servers {
        s.abort();
    }
    let got = got.expect("the Clerk never asked the leader (C): B and D send it to each other");
    assert_eq!(got.unwrap().as_deref(), Some("v"));
}
