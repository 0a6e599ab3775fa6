//! Attack on the local path (a front door calls the replica of its own process
//! directly, `Clerk::with_local` / `KvServer::local`, instead of over loopback RPC).

mod common;

use common::masters;
use diskv::http::front::{Front, FrontOptions};
use diskv::{KvServer, Op, ServerOptions};
use diskv_testkit::within;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn opts(
    dir: &Path,
    masters: &[String],
    addr: &str,
    restart: bool,
    unreliable: bool,
) -> ServerOptions {
    ServerOptions {
        gid: 1,
        masters: masters.to_vec(),
        peers: vec![addr.to_string()],
        me: 0,
        dir: dir.join("g1-0"),
        restart,
        join: true,
        unreliable,
        nshards: None,
    }
}

fn put(key: String) -> Op {
    Op::Put {
        key,
        value: "v".into(),
    }
}

/// docs/REFERENCE.md §2: `--unreliable` "drops 10% of incoming requests unanswered
/// and discards the reply of 20% of the rest, for client and replica traffic
/// alike". The front door of `diskv server --unreliable --http/--resp` now calls
/// its own replica directly and skips the policy: 40 writes that each had a 28%
/// chance of losing an attempt (3 s each) all go through at once. Before the
/// change they went over the unreliable RPC listener. P(no loss in 40) = 2e-6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_local_front_door_of_an_unreliable_replica_bypasses_the_unreliable_network() {
    diskv_testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 1, 10).await;
    let (mut ls, addrs) = diskv_testkit::listeners(1).await;
    let server = KvServer::start(
        ls.remove(0),
        opts(dir.path(), &maddrs, &addrs[0], false, true),
    )
    .await
    .expect("kv replica");
    // Each attempt is lost with probability 0.28 and costs 3 s; the default
    // 10 s operation timeout fails one of 40 writes about a quarter of the time
    // (four losses in a row), so give each write room for many lost attempts.
    let patient = FrontOptions {
        op_timeout: Duration::from_secs(120),
        ..FrontOptions::default()
    };
    let front = Arc::new(Front::new(maddrs.clone(), patient).with_local(Arc::new(server)));
    within(
        Duration::from_secs(60),
        "the front door to be ready",
        front.wait_ready(),
    )
    .await;

    let t0 = Instant::now();
    let ops = (0..40).map(|i| {
        let front = front.clone();
        async move { front.execute(put(format!("k{i}"))).await }
    });
    for r in futures::future::join_all(ops).await {
        r.expect("put");
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "40 writes through the front door of an --unreliable replica took {took:?}: \
         none lost an attempt, the local path bypasses --unreliable"
    );
}

/// A replica stopped and started again in the same process (the in-process test
/// harness's `Group::restart`, a supervisor embedding diskv) listens on the same
/// address; a Clerk over RPC reaches the new one. The local path pins the old
/// replica's `KvService` by address: every request to that address goes to the
/// stopped service ("replica unavailable: stopped"), never to the new replica, so
/// a one-replica group is unavailable through the front door for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_local_front_door_reaches_a_replica_restarted_in_the_same_process() {
    diskv_testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 1, 10).await;
    let (mut ls, addrs) = diskv_testkit::listeners(1).await;
    let first = Arc::new(
        KvServer::start(
            ls.remove(0),
            opts(dir.path(), &maddrs, &addrs[0], false, false),
        )
        .await
        .expect("kv replica"),
    );
    let opts_short = FrontOptions {
        op_timeout: Duration::from_secs(10),
        ..FrontOptions::default()
    };
    let front = Arc::new(Front::new(maddrs.clone(), opts_short).with_local(first.clone()));
    within(
        Duration::from_secs(60),
        "the front door to be ready",
        front.wait_ready(),
    )
    .await;
    front
        .execute(put("a".into()))
        .await
        .expect("put before the restart");

    // Stop the replica and start it again on the same address, same directory.
    first.shutdown();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let l = diskv_testkit::bind_again(&addrs[0]).await;
    let _second = KvServer::start(l, opts(dir.path(), &maddrs, &addrs[0], true, false))
        .await
        .expect("restart");

    // A plain Clerk (over RPC) is served by the restarted replica.
    let mut rpc = diskv::Clerk::new(maddrs.clone()).await;
    within(Duration::from_secs(30), "a Get over RPC", rpc.get("a"))
        .await
        .expect("get over RPC");

    // The front door's pooled Clerks should be too.
    let got = front.execute(Op::Get { key: "a".into() }).await;
    assert_eq!(
        got.map_err(|e| e.to_string()),
        Ok(Some("v".into())),
        "the front door cannot reach the replica restarted at {}",
        addrs[0]
    );
}
