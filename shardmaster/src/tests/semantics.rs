//! One test per semantic decision of [`crate::state`].

use super::{apply_ok, check, join, servers, store};
use crate::{Config, ConfigNum, ConfigStore, Op, OpResult, ShardmasterError, MAX_SHARDS};

fn join_with(gid: u64, addrs: &[&str]) -> Op {
    Op::Join {
        gid,
        servers: addrs.iter().map(|s| s.to_string()).collect(),
    }
}

/// Applies `op`, asserts it fails with `want`, and that the store did not change.
fn assert_refused(s: &mut ConfigStore, op: Op, want: ShardmasterError) {
    let before = s.clone();
    assert_eq!(s.apply(&op), Err(want), "{op:?}");
    assert_eq!(*s, before, "{op:?} changed the store");
}

#[test]
fn new_store_holds_config_0_only() {
    let s = store(10);
    assert_eq!(s.nshards(), 10);
    assert_eq!(*s.latest(), Config::initial(10));
    assert_eq!(*s.query(ConfigNum::Latest), Config::initial(10));
    assert_eq!(*s.query(ConfigNum::Num(0)), Config::initial(10));
    assert_eq!(*s.query(ConfigNum::Num(5)), Config::initial(10));
}

#[test]
fn shard_count_must_be_between_1_and_max() {
    for n in [0, MAX_SHARDS + 1, usize::MAX] {
        assert_eq!(
            ConfigStore::new(n),
            Err(ShardmasterError::BadShardCount { nshards: n })
        );
    }
    assert!(ConfigStore::new(1).is_ok());
    assert!(ConfigStore::new(MAX_SHARDS).is_ok());
}

#[test]
fn join_makes_one_config_and_balances() {
    let mut s = store(10);
    assert_eq!(s.apply(&join(1)), Ok(OpResult::Changed { num: 1 }));
    assert_eq!(s.apply(&join(2)), Ok(OpResult::Changed { num: 2 }));
    check(s.latest(), &[1, 2]);
    assert_eq!(s.latest().servers(2), Some(&servers(2)[..]));
}

#[test]
fn repeated_identical_join_is_a_no_op_success() {
    let mut s = store(10);
    apply_ok(&mut s, join(1));
    let before = s.clone();
    assert_eq!(s.apply(&join(1)), Ok(OpResult::Unchanged { num: 1 }));
    assert_eq!(s, before);
}

#[test]
fn join_of_a_joined_gid_with_other_servers_is_refused() {
    let mut s = store(10);
    apply_ok(&mut s, join(1));
    assert_refused(
        &mut s,
        join_with(1, &["other:1"]),
        ShardmasterError::GidInUse {
            gid: 1,
            servers: servers(1),
        },
    );
    // Same addresses in another order is another replica numbering: also refused.
    let mut reordered = servers(1);
    reordered.reverse();
    assert!(matches!(
        s.apply(&Op::Join {
            gid: 1,
            servers: reordered
        }),
        Err(ShardmasterError::GidInUse { gid: 1, .. })
    ));
}

#[test]
fn join_after_leave_rejoins_with_any_servers() {
    let mut s = store(4);
    apply_ok(&mut s, join(1));
    apply_ok(&mut s, Op::Leave { gid: 1 });
    assert_eq!(
        s.apply(&join_with(1, &["new-home:9000"])),
        Ok(OpResult::Changed { num: 3 })
    );
    check(s.latest(), &[1]);
}

#[test]
fn join_with_an_address_of_another_group_is_refused() {
    let mut s = store(10);
    apply_ok(&mut s, join(1));
    let stolen = servers(1)[1].clone();
    assert_refused(
        &mut s,
        join_with(2, &["fresh:1", &stolen]),
        ShardmasterError::AddressInUse {
            gid: 2,
            addr: stolen.clone(),
            owner: 1,
        },
    );
    // Once group 1 has left, its addresses are free again.
    apply_ok(&mut s, Op::Leave { gid: 1 });
    apply_ok(&mut s, join_with(2, &["fresh:1", &stolen]));
}

#[test]
fn invalid_joins_make_no_config() {
    let mut s = store(10);
    apply_ok(&mut s, join(1));
    assert_refused(
        &mut s,
        join_with(0, &["a:1"]),
        ShardmasterError::ReservedGid,
    );
    assert_refused(
        &mut s,
        join_with(2, &[]),
        ShardmasterError::EmptyServerList { gid: 2 },
    );
    assert_refused(
        &mut s,
        join_with(2, &["a:1", "a:1"]),
        ShardmasterError::DuplicateAddress {
            gid: 2,
            addr: "a:1".into(),
        },
    );
    let before = s.clone();
    let err = s.apply(&join_with(2, &["nocolon"])).unwrap_err();
    assert!(matches!(
        err,
        ShardmasterError::MalformedAddress { gid: 2, .. }
    ));
    assert_eq!(s, before);
}

#[test]
fn leave_of_an_unknown_gid_is_refused_without_a_new_config() {
    let mut s = store(10);
    assert_refused(
        &mut s,
        Op::Leave { gid: 3 },
        ShardmasterError::UnknownGroup { gid: 3 },
    );
    apply_ok(&mut s, join(1));
    assert_refused(
        &mut s,
        Op::Leave { gid: 3 },
        ShardmasterError::UnknownGroup { gid: 3 },
    );
    assert_refused(&mut s, Op::Leave { gid: 0 }, ShardmasterError::ReservedGid);
    apply_ok(&mut s, Op::Leave { gid: 1 });
    assert_refused(
        &mut s,
        Op::Leave { gid: 1 },
        ShardmasterError::UnknownGroup { gid: 1 },
    );
}

#[test]
fn last_leave_returns_every_shard_to_gid_0() {
    let mut s = store(5);
    apply_ok(&mut s, join(1));
    apply_ok(&mut s, join(2));
    apply_ok(&mut s, Op::Leave { gid: 2 });
    assert_eq!(s.latest().shards, vec![1; 5]);
    apply_ok(&mut s, Op::Leave { gid: 1 });
    assert_eq!(s.latest().shards, vec![0; 5]);
    assert!(s.latest().groups.is_empty());
    assert_eq!(s.latest().num, 4);
}

#[test]
fn move_is_honoured_exactly_and_not_undone_by_itself() {
    let mut s = store(10);
    apply_ok(&mut s, join(1));
    apply_ok(&mut s, join(2));
    let before = s.latest().clone();
    let shard = before.shards_of(2)[0];
    assert_eq!(
        s.apply(&Op::Move { shard, gid: 1 }),
        Ok(OpResult::Changed { num: 3 })
    );
    let after = s.latest();
    assert_eq!(after.owner(shard), 1);
    assert_eq!(after.groups, before.groups);
    for i in (0..10).filter(|&i| i != shard) {
        assert_eq!(after.owner(i), before.owner(i));
    }
    // 6 vs 4 is unbalanced, and stays so: a Move does not trigger a rebalance.
    assert_eq!(after.shards_of(1).len(), 6);
    // A Query does not rebalance either.
    s.apply(&Op::query(ConfigNum::Latest)).unwrap();
    assert_eq!(s.latest().shards_of(1).len(), 6);
}

#[test]
fn later_join_rebalances_over_a_move() {
    let mut s = store(6);
    apply_ok(&mut s, join(1));
    apply_ok(&mut s, join(2));
    for shard in 0..6 {
        s.apply(&Op::Move { shard, gid: 1 }).unwrap();
    }
    assert_eq!(s.latest().shards, vec![1; 6]);
    apply_ok(&mut s, join(3));
    check(s.latest(), &[1, 2, 3]);
    assert_eq!(s.latest().shards_of(1).len(), 2);
}

#[test]
fn move_to_the_current_owner_is_a_no_op_success() {
    let mut s = store(4);
    apply_ok(&mut s, join(1));
    let before = s.clone();
    assert_eq!(
        s.apply(&Op::Move { shard: 2, gid: 1 }),
        Ok(OpResult::Unchanged { num: 1 })
    );
    assert_eq!(s, before);
}

#[test]
fn invalid_moves_make_no_config() {
    let mut s = store(4);
    assert_refused(
        &mut s,
        Op::Move { shard: 0, gid: 1 },
        ShardmasterError::MoveToUnknownGroup { shard: 0, gid: 1 },
    );
    apply_ok(&mut s, join(1));
    assert_refused(
        &mut s,
        Op::Move { shard: 0, gid: 2 },
        ShardmasterError::MoveToUnknownGroup { shard: 0, gid: 2 },
    );
    assert_refused(
        &mut s,
        Op::Move { shard: 4, gid: 1 },
        ShardmasterError::ShardOutOfRange {
            shard: 4,
            nshards: 4,
        },
    );
    assert_refused(
        &mut s,
        Op::Move {
            shard: usize::MAX,
            gid: 1,
        },
        ShardmasterError::ShardOutOfRange {
            shard: usize::MAX,
            nshards: 4,
        },
    );
    assert_refused(
        &mut s,
        Op::Move { shard: 0, gid: 0 },
        ShardmasterError::ReservedGid,
    );
}

#[test]
fn query_never_changes_state_and_reads_latest_past_the_end() {
    let mut s = store(4);
    apply_ok(&mut s, join(1));
    apply_ok(&mut s, join(2));
    let before = s.clone();
    for num in [-1, 0, 1, 2, 3, 1000, i64::MAX] {
        let want = before.query(ConfigNum::from_wire(num).unwrap()).clone();
        assert_eq!(s.apply(&Op::Query { num }), Ok(OpResult::Config(want)));
    }
    assert_eq!(s.query(ConfigNum::Latest).num, 2);
    assert_eq!(s.query(ConfigNum::Num(i64::MAX as u64)).num, 2);
    assert_eq!(s.query(ConfigNum::Num(u64::MAX)).num, 2);
    assert_eq!(s.query(ConfigNum::Num(1)).num, 1);
    for num in [-2, i64::MIN] {
        assert_refused(
            &mut s,
            Op::Query { num },
            ShardmasterError::BadConfigNum { num },
        );
    }
    assert_eq!(s, before);
}

#[test]
fn snapshot_round_trips() {
    let mut s = store(7);
    for op in [
        join(1),
        join(2),
        Op::Move { shard: 0, gid: 2 },
        Op::Leave { gid: 1 },
    ] {
        apply_ok(&mut s, op);
    }
    let bytes = postcard::to_stdvec(&s).unwrap();
    assert_eq!(postcard::from_bytes::<ConfigStore>(&bytes).unwrap(), s);
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<ConfigStore>(&json).unwrap(), s);
}

#[test]
fn corrupt_snapshots_are_refused() {
    let good = r#"{"configs":[{"num":0,"shards":[0,0],"groups":{}}],"nshards":2}"#;
    assert!(serde_json::from_str::<ConfigStore>(good).is_ok());
    for bad in [
        r#"{"configs":[],"nshards":2}"#,
        r#"{"configs":[{"num":0,"shards":[0,0],"groups":{}}],"nshards":0}"#,
        r#"{"configs":[{"num":1,"shards":[0,0],"groups":{}}],"nshards":2}"#,
        r#"{"configs":[{"num":0,"shards":[0],"groups":{}}],"nshards":2}"#,
        r#"{"configs":[{"num":0,"shards":[0,3],"groups":{}}],"nshards":2}"#,
        r#"{"configs":[{"num":0,"shards":[0,3],"groups":{"3":["a:1"]}}],"nshards":2}"#,
    ] {
        let err = serde_json::from_str::<ConfigStore>(bad).unwrap_err();
        assert!(
            err.to_string().contains("snapshot is corrupt"),
            "{bad}: {err}"
        );
    }
}

fn servers_op(gid: u64, addrs: &[&str]) -> Op {
    Op::Servers {
        gid,
        servers: addrs.iter().map(|s| s.to_string()).collect(),
    }
}

/// A group that changed its replica set through its own log records the new
/// list: one configuration, the same shards, only that group's servers new.
#[test]
fn servers_records_a_new_replica_list_and_moves_no_shard() {
    let mut s = store(10);
    apply_ok(&mut s, join_with(1, &["a:1", "b:1", "c:1"]));
    apply_ok(&mut s, join_with(2, &["d:1", "e:1", "f:1"]));
    let before = s.latest().clone();
    assert_eq!(
        s.apply(&servers_op(1, &["a:1", "c:1", "g:1"])),
        Ok(OpResult::Changed { num: 3 })
    );
    let after = s.latest();
    assert_eq!(after.shards, before.shards, "a Servers op moved a shard");
    assert_eq!(
        after.servers(1),
        Some(&["a:1".to_string(), "c:1".into(), "g:1".into()][..])
    );
    assert_eq!(after.servers(2), before.servers(2));
    // The same list again changes nothing.
    assert_eq!(
        s.apply(&servers_op(1, &["a:1", "c:1", "g:1"])),
        Ok(OpResult::Unchanged { num: 3 })
    );
}

#[test]
fn servers_is_refused_for_unknown_groups_and_bad_or_taken_addresses() {
    let mut s = store(10);
    apply_ok(&mut s, join_with(1, &["a:1", "b:1", "c:1"]));
    apply_ok(&mut s, join_with(2, &["d:1", "e:1", "f:1"]));
    assert_refused(
        &mut s,
        servers_op(3, &["x:1"]),
        ShardmasterError::UnknownGroup { gid: 3 },
    );
    assert_refused(
        &mut s,
        servers_op(1, &[]),
        ShardmasterError::EmptyServerList { gid: 1 },
    );
    assert_refused(
        &mut s,
        servers_op(1, &["a:1", "a:1"]),
        ShardmasterError::DuplicateAddress {
            gid: 1,
            addr: "a:1".into(),
        },
    );
    assert_refused(
        &mut s,
        servers_op(1, &["a:1", "d:1"]),
        ShardmasterError::AddressInUse {
            gid: 1,
            addr: "d:1".into(),
            owner: 2,
        },
    );
    assert!(matches!(
        s.apply(&servers_op(1, &["a:1", "no port"])),
        Err(ShardmasterError::MalformedAddress { .. })
    ));
}
