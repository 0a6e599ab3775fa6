//! A whole cluster in one process over real TCP: three shardmaster replicas, one
//! KV group of three replicas, and Clerks.

mod common;

use common::{masters, Group};
use diskv::Clerk;
use diskv_testkit::within;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_through_one_group() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 3, 4).await;
    let _g = Group::start(dir.path(), 1, 3, &maddrs, true).await;
    let mut ck = Clerk::new(maddrs.clone()).await;
    within(Duration::from_secs(30), "ops", async {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_leader_loss_and_full_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 3, 4).await;
    let mut g = Group::start(dir.path(), 1, 3, &maddrs, true).await;
    let mut ck = Clerk::new(maddrs.clone()).await;
    within(Duration::from_secs(30), "first writes", async {
        for i in 0..20 {
            ck.append("k", &format!("{i},")).await.unwrap();
        }
    })
    .await;
    let leader = g.leader().expect("a leader");
    g.stop(leader);
    within(
        Duration::from_secs(30),
        "writes without the old leader",
        async {
            for i in 20..30 {
                ck.append("k", &format!("{i},")).await.unwrap();
            }
        },
    )
    .await;
    for i in 0..3 {
        g.stop(i);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        g.restart(i).await;
    }
    let expected: String = (0..30).map(|i| format!("{i},")).collect();
    within(Duration::from_secs(30), "read after restart", async {
        assert_eq!(ck.get("k").await.unwrap(), Some(expected));
    })
    .await;
}
