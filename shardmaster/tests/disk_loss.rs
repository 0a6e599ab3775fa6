//! Shardmaster replicas that lose their disks: one rejoins as a new incarnation
//! with a snapshot from its peers (no `--restart` needed: its peers tell it the
//! group ran); a majority lost halts instead of starting empty.

mod common;

use common::{churn, history, servers, Cluster, ClusterOptions};
use diskv_testkit::{wait_until, within};
use shardmaster::ConfigNum;
use std::time::Duration;

const TEST_LIMIT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(40);

fn wipe(cl: &Cluster, i: usize) {
    std::fs::remove_dir_all(cl.dir(i)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_disk_rejoins_from_its_peers_and_votes_again() {
    within(TEST_LIMIT, "lost disk", async {
        let mut cl = Cluster::start(ClusterOptions::default()).await;
        churn(&cl, 100).await;
        let before = history(&cl.clerk_for(&[0, 1, 2])).await;
        let lost = 1;
        cl.stop(lost).await;
        // Writes it never saw, then its disk is gone.
        churn(&cl, 200).await;
        wipe(&cl, lost);
        cl.restart(lost).await;
        wait_until(
            STEP,
            "the reincarnation is decided and its votes count",
            || cl.server(lost).incarnation() == Some(1) && cl.server(lost).votes_now(),
        )
        .await;
        assert!(!cl.server(lost).is_halted());
        let expected = history(&cl.clerk_for(&[0, 2])).await;
        assert!(expected.len() > before.len());
        // Answered through the recovered replica alone: the same history.
        assert_eq!(history(&cl.clerk_for(&[lost])).await, expected);
        // Its own copy matches too (the snapshot and the catch-up were applied).
        let peer_latest = cl.server(0).latest();
        wait_until(STEP, "the local state catches up", || {
            cl.server(lost).latest() == peer_latest
        })
        .await;
        // It is one of the majority now: stop another replica and keep writing.
        cl.stop(2).await;
        let ck = cl.clerk_for(&[0, lost]);
        ck.join(900, servers(900)).await.unwrap();
        let latest = cl
            .clerk_for(&[lost])
            .query(ConfigNum::Latest)
            .await
            .unwrap();
        assert!(latest.groups.contains_key(&900), "{latest:?}");
        cl.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_majority_lost_their_disks_halts_instead_of_starting_empty() {
    within(TEST_LIMIT, "majority lost", async {
        let mut cl = Cluster::start(ClusterOptions::default()).await;
        churn(&cl, 100).await;
        for i in [1, 2] {
            cl.stop(i).await;
            wipe(&cl, i);
        }
        for i in [1, 2] {
            cl.restart(i).await;
        }
        wait_until(STEP, "both recovering replicas halt", || {
            cl.server(1).is_halted() && cl.server(2).is_halted()
        })
        .await;
        for i in [1, 2] {
            // Never admitted: no reincarnation can be decided without a majority of
            // the old membership. (It may have learned decided instances from the
            // leader's catch-up before it halted: a learner never votes, so that is
            // harmless, and it depends only on timing.)
            assert_eq!(
                cl.server(i).incarnation(),
                None,
                "replica {i} was admitted empty"
            );
            assert!(!cl.server(i).votes_now());
        }
        cl.shutdown().await;
    })
    .await;
}
