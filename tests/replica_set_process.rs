//! `diskv admin replica add|promote|remove|replace` against real processes
//! (issue #15, item 1): a group grows by a learner that is then promoted,
//! replaces a replica by a process at another address, and removes one; the
//! shardmaster records the group's servers after each change, and a Clerk
//! started before any of it keeps working — at the end only the two new
//! processes and one founder are left, so the new ones must vote.

mod support;

use std::time::Duration;
use support::cluster::ShardCluster;
use support::process::{reserve_addrs, wait_until, Output};

const NSHARDS: usize = 4;

fn servers(c: &ShardCluster) -> Vec<String> {
    c.query().expect("a configuration").groups[&1].clone()
}

fn refused(out: &Output, says: &str) {
    assert!(!out.success(), "the change was not refused: {}", out.stdout);
    assert!(out.stderr.contains(says), "no {says:?} in: {}", out.stderr);
}

#[test]
fn a_group_adds_promotes_replaces_and_removes_replicas_while_a_client_works() {
    let (mut c, mut client) = ShardCluster::serving_group_1(NSHARDS, 3, "before");
    let founders = c.peers(1);
    for i in 0..10 {
        assert_eq!(
            client.req(&format!("PUT k{i} v{i}")),
            format!("PUT k{i} not_found")
        );
    }

    // Bad requests: refused with the reason, nothing changed.
    refused(
        &c.admin(&["replica", "promote", "1", "9"]),
        "replica 9 is not in the group",
    );
    refused(
        &c.admin(&["replica", "add", "7", "127.0.0.1:1"]),
        "group 7 is not in the latest configuration",
    );
    refused(
        &c.admin(&["replica", "add", "0", "127.0.0.1:1"]),
        "gid 0 is reserved",
    );

    // Add: a learner at a new address, recorded with the shardmaster at once.
    let new = reserve_addrs(2);
    let out = c.admin_out(&["replica", "add", "1", &new[0]]);
    assert!(out.contains("replica 3 is a learner"), "{out}");
    assert!(out.contains("diskv server --gid 1 --me 3"), "{out}");
    assert_eq!(servers(&c), [&founders[..], &new[..1]].concat());
    // The same command again changes nothing.
    let again = c.admin_out(&["replica", "add", "1", &new[0]]);
    assert!(again.contains("already so"), "{again}");
    // A learner no process holds cannot be promoted.
    refused(
        &c.admin(&["replica", "promote", "1", "3"]),
        "not a learner whose process has joined",
    );
    c.start_seat(1, 3, &new[0]);
    c.wait_claimed(1, 3);
    // A learner is not a problem: the cluster is healthy, and says who learns.
    wait_until(
        Duration::from_secs(30),
        "admin status: healthy, with a learner",
        || {
            let out = c.admin(&["status", "--json", "--wait", "1"]);
            out.status.and_then(|s| s.code()) == Some(0)
                && out.stdout.contains(r#""role":"learner""#)
        },
    );
    c.admin_out(&["replica", "promote", "1", "3"]);
    assert!(c
        .seats(1)
        .lines()
        .any(|l| l.starts_with("3\t") && l.contains("Voter")));

    // A seat cannot move onto another seat's address.
    refused(
        &c.admin(&["replica", "replace", "1", "0", &founders[1]]),
        "is replica 1 of group 1 already",
    );
    // Replace replica 0 by a process at another address; the old one stops.
    c.admin_out(&["replica", "replace", "1", "0", &new[1]]);
    c.kill9(1, 0);
    c.start_seat(1, 0, &new[1]);
    c.wait_claimed(1, 0);
    assert_eq!(
        servers(&c),
        vec![
            new[1].clone(),
            founders[1].clone(),
            founders[2].clone(),
            new[0].clone()
        ]
    );

    // Remove replica 1: the list leaves it out.
    c.admin_out(&["replica", "remove", "1", "1"]);
    c.kill9(1, 1);
    assert_eq!(
        servers(&c),
        vec![new[1].clone(), founders[2].clone(), new[0].clone()]
    );

    // With founder 2 down too, the group decides only through the two new
    // processes; a second founder down is refused, as it would stall.
    c.kill9(1, 2);
    // Once the leader has missed founder 2 for an election timeout, it refuses
    // a removal that would leave the group stalled.
    wait_until(
        Duration::from_secs(30),
        "the leader misses replica 2",
        || {
            c.seats(1)
                .lines()
                .any(|l| l.starts_with("2\t") && l.contains("not heard"))
        },
    );
    refused(
        &c.admin(&["replica", "remove", "1", "3"]),
        "fewer than a majority",
    );
    for i in 0..10 {
        assert_eq!(client.req(&format!("GET k{i}")), format!("GET k{i} v{i}"));
        assert_eq!(
            client.req(&format!("PUT k{i} w{i}")),
            format!("PUT k{i} found")
        );
    }
    let mut later = c.client("after");
    for i in 0..10 {
        assert_eq!(later.req(&format!("GET k{i}")), format!("GET k{i} w{i}"));
    }
}
