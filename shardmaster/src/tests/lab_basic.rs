//! The 6.824 lab 4 shardmaster `TestBasic` checks, on a [`ConfigStore`] instead of a
//! cluster. The lab's placeholder server names ("x", "y", ...) become real addresses,
//! and its concurrent clients become one interleaving, since what they check is the
//! state machine, not the network.

use super::{apply_ok, check, join, store};
use crate::{Config, ConfigNum, Gid, Op, OpResult};

const NSHARDS: usize = 10;

fn join_named(gid: Gid, names: [&str; 3]) -> Op {
    Op::Join {
        gid,
        servers: names.iter().map(|n| format!("{n}:7000")).collect(),
    }
}

#[test]
fn basic_leave_join_and_historical_queries() {
    let mut s = store(NSHARDS);
    let mut cfa: Vec<Config> = Vec::new();
    cfa.push(s.latest().clone());
    check(s.latest(), &[]);

    let (gid1, gid2) = (1, 2);
    apply_ok(&mut s, join_named(gid1, ["x", "y", "z"]));
    check(s.latest(), &[gid1]);
    cfa.push(s.latest().clone());

    apply_ok(&mut s, join_named(gid2, ["a", "b", "c"]));
    check(s.latest(), &[gid1, gid2]);
    cfa.push(s.latest().clone());

    // The lab joins gid2 a second time.
    apply_ok(&mut s, join_named(gid2, ["a", "b", "c"]));
    check(s.latest(), &[gid1, gid2]);
    cfa.push(s.latest().clone());

    let sa1 = s.latest().servers(gid1).unwrap();
    assert_eq!(sa1, ["x:7000", "y:7000", "z:7000"]);
    let sa2 = s.latest().servers(gid2).unwrap();
    assert_eq!(sa2, ["a:7000", "b:7000", "c:7000"]);

    apply_ok(&mut s, Op::Leave { gid: gid1 });
    check(s.latest(), &[gid2]);
    cfa.push(s.latest().clone());

    // The lab leaves gid1 a second time; here that is refused and changes nothing.
    assert!(s.apply(&Op::Leave { gid: gid1 }).is_err());
    check(s.latest(), &[gid2]);
    cfa.push(s.latest().clone());

    // Historical queries.
    for c in &cfa {
        assert_eq!(s.query(ConfigNum::Num(c.num)), c);
    }
}

#[test]
fn basic_move() {
    let mut s = store(NSHARDS);
    apply_ok(&mut s, join(2));
    let (gid3, gid4) = (503, 504);
    apply_ok(&mut s, join_named(gid3, ["3a", "3b", "3c"]));
    apply_ok(&mut s, join_named(gid4, ["4a", "4b", "4c"]));
    for i in 0..NSHARDS {
        let cf = s.latest().clone();
        let gid = if i < NSHARDS / 2 { gid3 } else { gid4 };
        let result = s.apply(&Op::Move { shard: i, gid }).unwrap();
        if cf.shards[i] != gid {
            assert_eq!(result, OpResult::Changed { num: cf.num + 1 });
            assert!(s.latest().num > cf.num, "Move should increase Config.Num");
        } else {
            assert_eq!(result, OpResult::Unchanged { num: cf.num });
            assert_eq!(
                s.latest().num,
                cf.num,
                "Move should not increase Config.Num"
            );
        }
    }
    let cf2 = s.latest();
    for i in 0..NSHARDS {
        let want = if i < NSHARDS / 2 { gid3 } else { gid4 };
        assert_eq!(cf2.shards[i], want, "shard {i} wrong after Move()");
    }
    apply_ok(&mut s, Op::Leave { gid: gid3 });
    apply_ok(&mut s, Op::Leave { gid: gid4 });
    check(s.latest(), &[2]);
}

/// The lab's "Concurrent leave/join" and "Minimal transfers" tests, in sequence.
#[test]
fn concurrent_leave_join_then_minimal_transfers() {
    const NPARA: Gid = 10;
    let mut s = store(NSHARDS);
    let gids: Vec<Gid> = (1..=NPARA).collect();
    // One interleaving of the lab's ten clients: all first Joins, then the rest.
    for &gid in &gids {
        apply_ok(&mut s, join(gid + 1000));
    }
    for &gid in &gids {
        apply_ok(&mut s, join(gid));
        apply_ok(&mut s, Op::Leave { gid: gid + 1000 });
    }
    check(s.latest(), &gids);

    // Minimal transfers after joins: no shard moves between the old groups.
    let cf1 = s.latest().clone();
    for i in 0..5 {
        apply_ok(&mut s, join(NPARA + 1 + i));
    }
    let cf2 = s.latest().clone();
    for i in 1..=NPARA {
        for j in 0..cf1.shards.len() {
            if cf2.shards[j] == i {
                assert_eq!(cf1.shards[j], i, "non-minimal transfer after Join()s");
            }
        }
    }

    // Minimal transfers after leaves: the old groups keep what they had.
    for i in 0..5 {
        apply_ok(&mut s, Op::Leave { gid: NPARA + 1 + i });
    }
    let cf3 = s.latest().clone();
    for i in 1..=NPARA {
        for j in 0..cf1.shards.len() {
            if cf2.shards[j] == i {
                assert_eq!(cf3.shards[j], i, "non-minimal transfer after Leave()s");
            }
        }
    }
}

/// The lab's check that more groups than shards still balances and allocates all.
#[test]
fn more_groups_than_shards() {
    let mut s = store(NSHARDS);
    let gids: Vec<Gid> = (1..=(NSHARDS as Gid + 5)).collect();
    for &gid in &gids {
        apply_ok(&mut s, join(gid));
        check(s.latest(), &gids[..gid as usize]);
    }
    let empty = gids.iter().filter(|&&g| s.latest().shards_of(g).is_empty());
    assert_eq!(empty.count(), 5);
    for &gid in &gids[..gids.len() - 1] {
        apply_ok(&mut s, Op::Leave { gid });
    }
    check(s.latest(), &gids[gids.len() - 1..]);
    assert_eq!(s.latest().shards, vec![*gids.last().unwrap(); NSHARDS]);
}
