//! Replicas that lost their disks, in one process over TCP.

mod common;

use common::{masters, Group};
use diskv::Clerk;
use diskv_testkit::within;
use std::time::Duration;

/// Waits until replica `i` is admitted as incarnation 1 and its votes count (the
/// instances its lost incarnation may have voted in are decided), so the group
/// can lose another replica.
async fn voting_again(g: &Group, i: usize, what: &str) {
    within(Duration::from_secs(30), what, async {
        loop {
            let node = g.servers[i].as_ref().unwrap().node();
            if node.incarnation() == Some(1) && node.votes_now() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Replica `i`'s own copy of `key` (a group with 4 shards).
fn copy_of(g: &Group, i: usize, key: &str) -> Option<String> {
    g.servers[i].as_ref().unwrap().rsm().with_state(|st| {
        let shard = shardmaster::shard_of(key.as_bytes(), 4);
        st.shard(shard)
            .and_then(|s| s.data.get(key).map(|v| v.to_string()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_disk_rejoins_and_votes_again() {
    diskv_testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 3, 4).await;
    let mut g = Group::start(dir.path(), 1, 3, &maddrs, true).await;
    let mut ck = Clerk::new(maddrs.clone()).await;
    within(Duration::from_secs(30), "writes before the loss", async {
        for i in 0..10 {
            ck.append("k", &format!("{i},")).await.unwrap();
        }
    })
    .await;
    let lost = (g.leader().unwrap() + 1) % 3;
    g.stop(lost);
    g.lose_disk(lost);
    g.restart(lost).await;
    voting_again(&g, lost, "the lost replica's reincarnation").await;
    within(Duration::from_secs(30), "writes after the rejoin", async {
        for i in 10..15 {
            ck.append("k", &format!("{i},")).await.unwrap();
        }
    })
    .await;
    // Take down another replica: the group now needs the reincarnated one's votes.
    let other = (0..3)
        .find(|&i| i != lost && g.servers[i].as_ref().is_some_and(|s| !s.node().is_leader()))
        .unwrap();
    g.stop(other);
    let expected: String = (0..20).map(|i| format!("{i},")).collect();
    within(
        Duration::from_secs(30),
        "writes and reads with the reincarnated replica voting",
        async {
            for i in 15..20 {
                ck.append("k", &format!("{i},")).await.unwrap();
            }
            assert_eq!(ck.get("k").await.unwrap(), Some(expected.clone()));
        },
    )
    .await;
    // Its own copy of the data is complete, once it has applied the last write
    // (it learns that the write is decided a heartbeat after the leader).
    within(
        Duration::from_secs(10),
        "the reincarnated replica's copy of the last write",
        async {
            while copy_of(&g, lost, "k").as_ref() != Some(&expected) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await;
}

/// Regression (found by tests/disk_loss_process.rs): once every replica had
/// checkpointed and the group forgot its log prefix, a replica that lost its disk
/// could only rejoin through a snapshot, but `Rsm` never asked the application for
/// one: the replica logged "waiting for a snapshot" forever and was never admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_disk_installs_a_snapshot_once_the_log_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 3, 4).await;
    let mut g = Group::start(dir.path(), 1, 3, &maddrs, true).await;
    let mut ck = Clerk::new(maddrs.clone()).await;
    let expected: String = (0..10).map(|i| format!("{i},")).collect();
    within(Duration::from_secs(30), "writes before the loss", async {
        for i in 0..10 {
            ck.append("k", &format!("{i},")).await.unwrap();
        }
    })
    .await;
    // Idle: every replica checkpoints and the group forgets the prefix.
    within(
        Duration::from_secs(30),
        "the group forgetting its log prefix",
        async {
            while !g.servers.iter().flatten().all(|s| s.node().min() > 1) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;
    let lost = (g.leader().unwrap() + 1) % 3;
    g.stop(lost);
    g.lose_disk(lost);
    g.restart(lost).await;
    voting_again(
        &g,
        lost,
        "the lost replica's reincarnation through a snapshot",
    )
    .await;
    assert_eq!(copy_of(&g, lost, "k"), Some(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_majority_lost_their_disks_halts() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 3, 4).await;
    let mut g = Group::start(dir.path(), 1, 3, &maddrs, true).await;
    let mut ck = Clerk::new(maddrs.clone()).await;
    within(Duration::from_secs(30), "a write", async {
        ck.put("k", "v").await.unwrap();
    })
    .await;
    let keep = g.leader().unwrap();
    let lost: Vec<usize> = (0..3).filter(|&i| i != keep).collect();
    for &i in &lost {
        g.stop(i);
        g.lose_disk(i);
    }
    for &i in &lost {
        g.restart(i).await;
    }
    within(
        Duration::from_secs(30),
        "the recovering replicas halting",
        async {
            loop {
                if lost
                    .iter()
                    .all(|&i| g.servers[i].as_ref().unwrap().is_halted())
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;
    // And nobody was admitted with empty state.
    for &i in &lost {
        assert_eq!(g.servers[i].as_ref().unwrap().node().incarnation(), None);
    }
}
