//! A whole cluster in one process over real TCP: three shardmaster replicas, one
//! KV group of three replicas, and Clerks.

use diskv::{Clerk, KvServer, ServerOptions};
use shardmaster::server::{ServerOptions as MasterOptions, ShardmasterServer};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

async fn listeners(n: usize) -> (Vec<TcpListener>, Vec<String>) {
    let mut ls = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
        ls.push(l);
    }
    (ls, addrs)
}

async fn bind(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => assert!(Instant::now() < deadline, "cannot bind {addr}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Cluster {
    masters: Vec<ShardmasterServer>,
    master_addrs: Vec<String>,
    kv: Vec<Option<KvServer>>,
    kv_addrs: Vec<String>,
}

fn kv_opts(
    dir: &Path,
    me: usize,
    masters: &[String],
    peers: &[String],
    restart: bool,
) -> ServerOptions {
    ServerOptions {
        gid: 1,
        masters: masters.to_vec(),
        peers: peers.to_vec(),
        me,
        dir: dir.join(format!("kv{me}")),
        restart,
        join: true,
        unreliable: false,
        nshards: None,
    }
}

async fn cluster(dir: &Path) -> Cluster {
    let (mls, master_addrs) = listeners(3).await;
    let mut masters = Vec::new();
    for (i, l) in mls.into_iter().enumerate() {
        let mut o = MasterOptions::new(dir.join(format!("sm{i}")), i, master_addrs.clone());
        o.nshards = Some(4);
        masters.push(ShardmasterServer::start(l, o).await.expect("shardmaster"));
    }
    let (kls, kv_addrs) = listeners(3).await;
    let mut kv = Vec::new();
    for (i, l) in kls.into_iter().enumerate() {
        kv.push(Some(
            KvServer::start(l, kv_opts(dir, i, &master_addrs, &kv_addrs, false))
                .await
                .expect("kv"),
        ));
    }
    Cluster {
        masters,
        master_addrs,
        kv,
        kv_addrs,
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} took over 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_through_one_group() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path()).await;
    let mut ck = Clerk::new(c.master_addrs.clone()).await;
    within("ops", async {
        assert!(!ck.put("a", "1").await.unwrap());
        assert!(ck.put("a", "2").await.unwrap());
        assert!(ck.append("a", "x").await.unwrap());
        assert!(!ck.append("b", "y").await.unwrap());
        assert_eq!(ck.get("a").await.unwrap().as_deref(), Some("2x"));
        assert_eq!(ck.swap("a", "3").await.unwrap().as_deref(), Some("2x"));
        assert_eq!(ck.swap("c", "z").await.unwrap(), None);
        assert!(ck.delete("c").await.unwrap());
        assert!(!ck.delete("c").await.unwrap());
        assert_eq!(ck.get("c").await.unwrap(), None);
        assert_eq!(
            ck.scan("a", "b").await.unwrap(),
            vec![("a".into(), "3".into()), ("b".into(), "y".into())]
        );
        ck.clear().await.unwrap();
        assert_eq!(ck.scan("", "~").await.unwrap(), vec![]);
    })
    .await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_leader_loss_and_full_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path()).await;
    let mut ck = Clerk::new(c.master_addrs.clone()).await;
    within("first writes", async {
        for i in 0..20 {
            ck.append("k", &format!("{i},")).await.unwrap();
        }
    })
    .await;
    // Stop the leader; the others go on.
    let leader =
        c.kv.iter()
            .position(|s| s.as_ref().is_some_and(|s| s.node().is_leader()))
            .expect("a leader");
    c.kv[leader] = None;
    within("writes without the old leader", async {
        for i in 20..30 {
            ck.append("k", &format!("{i},")).await.unwrap();
        }
    })
    .await;
    // Stop everyone, restart everyone from their directories.
    for s in c.kv.iter_mut() {
        *s = None;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        let l = bind(&c.kv_addrs[i]).await;
        c.kv[i] = Some(
            KvServer::start(
                l,
                kv_opts(dir.path(), i, &c.master_addrs, &c.kv_addrs, true),
            )
            .await
            .expect("restart"),
        );
    }
    let expected: String = (0..30).map(|i| format!("{i},")).collect();
    within("read after restart", async {
        assert_eq!(ck.get("k").await.unwrap(), Some(expected));
    })
    .await;
    drop(c);
}
