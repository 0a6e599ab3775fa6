//! Attack on `diskv admin replica ...` (commit e334d82), real processes: the
//! operator layer's interplay with shard migration.

mod support;

use std::time::Duration;
use support::cluster::ShardCluster;
use support::process::reserve_addrs;

const NSHARDS: usize = 4;

/// Attack finding 1. A shard moves from group 1 to group 2 while group 2 is
/// stopped (down, partitioned, slow: the shard stays `Leaving` in group 1).
/// Meanwhile the operator does routine maintenance on group 1 with `admin
/// replica`: a new machine is added and promoted, the three old ones are
/// removed and stopped. Every command succeeds and the shardmaster records
/// group 1's new servers. When group 2 comes back it pulls the shard from the
/// servers group 1 had in the configuration *before* the move
/// (`reconfig::pull` → `servers_of(config - 1, from)`), which are exactly the
/// removed, stopped machines: the pull never succeeds, the shard is never
/// served again, and every Clerk asking for a key of it waits forever.
/// (`reconfig::release` has the mirror problem with the new owner's list in
/// `config`.)
#[test]
fn a_shard_moving_while_its_old_owner_changes_every_replica_still_arrives() {
    let (mut c, mut client) = ShardCluster::serving_group_1(NSHARDS, 3, "w");
    c.start_group(2, 1, false);
    c.wait_started(2);
    c.wait_groups(&[1, 2]);
    let config = c.wait_settled(Duration::from_secs(60));
    // A shard group 1 still owns, and a key in it.
    let shard = (0..NSHARDS)
        .find(|&s| config.shards[s] == 1)
        .expect("group 1 owns a shard");
    let key = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| c.shard_of(k) == shard)
        .expect("a key of the shard");
    assert_eq!(
        client.req(&format!("PUT {key} v")),
        format!("PUT {key} not_found")
    );

    // Group 2 stops; the shard is moved to it: group 1 holds it as Leaving.
    c.sigstop(2, 0);
    c.move_shard(shard, 2);

    // Routine maintenance on group 1, every command succeeding.
    let new = reserve_addrs(1);
    c.admin_out(&["replica", "add", "1", &new[0]]);
    c.start_seat(1, 3, &new[0]);
    c.wait_claimed(1, 3);
    c.admin_out(&["replica", "promote", "1", "3"]);
    for old in 0..3 {
        c.admin_out(&["replica", "remove", "1", &old.to_string()]);
        c.kill9(1, old);
    }
    assert_eq!(c.query().unwrap().groups[&1], new, "recorded");

    // Group 2 comes back and should get the shard from group 1's replica.
    c.sigcont(2, 0);
    client.set_reply_limit(Duration::from_secs(60));
    client.send(&format!("GET {key}"));
    let got = client.try_recv(Duration::from_secs(60));
    assert_eq!(
        got.as_deref(),
        Some(format!("GET {key} v").as_str()),
        "the shard never arrived: group 2 pulls from group 1's removed replicas"
    );
}

/// Attack finding 3. `admin replica add|replace` checks the new address against
/// the other groups but not for being an address at all: the group decides the
/// change through its log (a seat index burned for good — at most 64 — or, for
/// `replace`, a voter's seat moved to nowhere, vacant until someone notices),
/// and only then does the shardmaster refuse to record the list
/// (`Op::Servers` validates it). The command ends with "the change is in
/// force, but the shardmaster did not record ...; run the same command again to
/// record them", which can never succeed. It should be refused up front, with
/// nothing changed, like every other bad request.
#[test]
fn a_malformed_address_is_refused_before_the_group_changes() {
    let (c, _client) = ShardCluster::serving_group_1(NSHARDS, 3, "w");
    let before = c.admin_out(&["replica", "list", "1"]);
    for args in [
        &["replica", "add", "1", "no-port-here"][..],
        &["replica", "replace", "1", "0", "bad host:1"][..],
    ] {
        let out = c.admin(args);
        assert!(!out.success(), "{args:?} was not refused: {}", out.stdout);
        assert!(
            out.stderr.contains("refused, nothing changed") && !out.stderr.contains("in force"),
            "{args:?} changed the group before the address was checked: {}",
            out.stderr
        );
        let after = c.admin_out(&["replica", "list", "1"]);
        assert_eq!(after, before, "{args:?} changed the group's seats");
    }
}
