//! Property tests: random Join / Leave / Move / Query / Servers sequences (gids 1..=20, plus
//! gid 0 and out-of-range shards to exercise refusals) on 1..=64 shards.

use super::{check_invariants, is_balanced, load, min_moves, moved, servers};
use crate::rebalance::rebalance;
use crate::{Config, ConfigNum, ConfigStore, Gid, Op, OpResult, ShardmasterError};
use proptest::prelude::*;
use std::collections::BTreeSet;

const MAX_GID: Gid = 20;

/// An op; `shard` is drawn up to `nshards + 1` so some Moves are out of range, and a
/// few Joins use another server list for a gid to exercise `GidInUse`.
fn op(nshards: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..=MAX_GID, 0..8u8).prop_map(|(gid, alt)| Op::Join {
            gid,
            servers: if alt == 0 { vec![format!("alt{gid}:1")] } else { servers(gid) },
        }),
        3 => (0..=MAX_GID).prop_map(|gid| Op::Leave { gid }),
        3 => (0..=nshards + 1, 0..=MAX_GID).prop_map(|(shard, gid)| Op::Move { shard, gid }),
        1 => (-3i64..70).prop_map(|num| Op::Query { num }),
        // A new replica list: its own new address, its Join list again, or the
        // new address another gid may have taken (AddressInUse).
        2 => (0..=MAX_GID, 0..3u8).prop_map(|(gid, alt)| Op::Servers {
            gid,
            servers: match alt {
                0 => vec![format!("new{gid}:1")],
                1 => servers(gid),
                _ => vec![format!("new{}:1", gid % MAX_GID + 1)],
            },
        }),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (1usize..=64).prop_flat_map(|n| (Just(n), prop::collection::vec(op(n), 0..60)))
}

/// What applying `op` to a store whose latest config is `c` must return, modulo the
/// new config number. A model of the semantics written separately from `apply`.
fn expected(c: &Config, op: &Op) -> Result<OpResult, ShardmasterError> {
    let changed = Ok(OpResult::Changed { num: c.num + 1 });
    let unchanged = Ok(OpResult::Unchanged { num: c.num });
    match op {
        Op::Join { gid: 0, .. } | Op::Leave { gid: 0 } | Op::Servers { gid: 0, .. } => {
            Err(ShardmasterError::ReservedGid)
        }
        Op::Servers { gid, servers } => match c.groups.get(gid) {
            None => Err(ShardmasterError::UnknownGroup { gid: *gid }),
            Some(have) if have == servers => unchanged,
            Some(_) => {
                let taken = c.groups.iter().find_map(|(&owner, theirs)| {
                    let addr = servers.iter().find(|a| theirs.contains(a))?;
                    (owner != *gid).then(|| (owner, addr.clone()))
                });
                match taken {
                    Some((owner, addr)) => Err(ShardmasterError::AddressInUse {
                        gid: *gid,
                        addr,
                        owner,
                    }),
                    None => changed,
                }
            }
        },
        Op::Join { gid, servers } => match c.groups.get(gid) {
            Some(have) if have == servers => unchanged,
            Some(have) => Err(ShardmasterError::GidInUse {
                gid: *gid,
                servers: have.clone(),
            }),
            None => changed,
        },
        Op::Leave { gid } if c.groups.contains_key(gid) => changed,
        Op::Leave { gid } => Err(ShardmasterError::UnknownGroup { gid: *gid }),
        Op::Move { shard, .. } if *shard >= c.shards.len() => {
            Err(ShardmasterError::ShardOutOfRange {
                shard: *shard,
                nshards: c.shards.len(),
            })
        }
        Op::Move { gid: 0, .. } => Err(ShardmasterError::ReservedGid),
        Op::Move { shard, gid } if !c.groups.contains_key(gid) => {
            Err(ShardmasterError::MoveToUnknownGroup {
                shard: *shard,
                gid: *gid,
            })
        }
        Op::Move { shard, gid } if c.shards[*shard] == *gid => unchanged,
        Op::Move { .. } => changed,
        Op::Query { num } if *num < -1 => Err(ShardmasterError::BadConfigNum { num: *num }),
        Op::Query { .. } => Ok(OpResult::Config(c.clone())), // replaced by the caller
    }
}

/// Checks what one op did to the latest config.
fn check_step(prev: &Config, next: &Config, op: &Op) -> Result<(), TestCaseError> {
    let groups: BTreeSet<Gid> = next.groups.keys().copied().collect();
    match op {
        Op::Join { gid, .. } | Op::Leave { gid } => {
            prop_assert!(
                is_balanced(next),
                "unbalanced after {:?}: {:?}",
                op,
                next.shards
            );
            prop_assert_eq!(moved(prev, next), min_moves(&prev.shards, &groups));
            if is_balanced(prev) {
                let joined = matches!(op, Op::Join { .. });
                for s in 0..prev.shards.len() {
                    if prev.shards[s] != next.shards[s] {
                        if joined {
                            prop_assert_eq!(
                                next.shards[s],
                                *gid,
                                "shard {} not to the new group",
                                s
                            );
                        } else {
                            prop_assert_eq!(
                                prev.shards[s],
                                *gid,
                                "shard {} not from the leaver",
                                s
                            );
                        }
                    }
                }
                if joined {
                    let (n, k) = (next.shards.len(), next.groups.len());
                    let got = load(next, *gid);
                    prop_assert_eq!(moved(prev, next), got);
                    prop_assert!(got == n / k || got == n.div_ceil(k));
                } else {
                    prop_assert_eq!(moved(prev, next), load(prev, *gid));
                }
            }
        }
        Op::Move { shard, gid } => {
            prop_assert_eq!(next.shards[*shard], *gid);
            prop_assert_eq!(moved(prev, next), 1);
            prop_assert_eq!(&next.groups, &prev.groups);
        }
        Op::Servers { gid, servers } => {
            prop_assert_eq!(&next.shards, &prev.shards, "Servers moved a shard");
            prop_assert_eq!(next.groups.get(gid), Some(servers));
            let mut rest = next.groups.clone();
            rest.insert(*gid, prev.groups[gid].clone());
            prop_assert_eq!(&rest, &prev.groups, "Servers changed another group");
        }
        Op::Query { .. } => prop_assert!(false, "a Query made a config"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_sequences_keep_every_invariant((nshards, ops) in scenario()) {
        let mut store = ConfigStore::new(nshards).unwrap();
        let mut history = vec![store.latest().clone()];
        for op in &ops {
            let before = store.clone();
            let prev = before.latest();
            let mut want = expected(prev, op);
            if let (Op::Query { num }, Ok(_)) = (op, &want) {
                want = Ok(OpResult::Config(before.query(ConfigNum::from_wire(*num).expect("a Query that applied")).clone()));
            }
            let got = store.apply(op);
            prop_assert_eq!(&got, &want, "{:?}", op);
            match got {
                Ok(OpResult::Changed { num }) => {
                    prop_assert_eq!(num, prev.num + 1);
                    prop_assert_eq!(store.latest().num, num);
                    check_step(prev, store.latest(), op)?;
                    history.push(store.latest().clone());
                }
                _ => prop_assert_eq!(&store, &before, "{:?} changed the store", op),
            }
            check_invariants(store.latest());
            prop_assert_eq!(store.latest().shards.len(), nshards);
            for (i, c) in history.iter().enumerate() {
                prop_assert_eq!(store.query(ConfigNum::Num(i as u64)), c, "config {} changed", i);
            }
        }

        // Determinism: another replica applying the same ops ends in the same state,
        // and a snapshot restores it exactly.
        let mut replica = ConfigStore::new(nshards).unwrap();
        for op in &ops {
            let _ = replica.apply(op);
        }
        prop_assert_eq!(&replica, &store);
        let bytes = postcard::to_stdvec(&store).unwrap();
        prop_assert_eq!(postcard::from_bytes::<ConfigStore>(&bytes).unwrap(), store);
    }

    /// `rebalance` from any starting assignment (as Moves can leave behind): balanced,
    /// every shard on a group, and exactly the minimum number of shards moved.
    #[test]
    fn rebalance_is_balanced_and_minimal_from_any_state(
        before in prop::collection::vec(0..=8 as Gid, 1..=64),
        groups in prop::collection::btree_set(1..=8 as Gid, 0..=8),
    ) {
        let mut after = before.clone();
        rebalance(&mut after, &groups);
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        prop_assert_eq!(changed, min_moves(&before, &groups));
        let mut c = Config::initial(after.len());
        c.shards = after.clone();
        c.groups = groups.iter().map(|&g| (g, vec![format!("h{g}:1")])).collect();
        check_invariants(&c);
        prop_assert!(is_balanced(&c), "{:?} over {:?} gave {:?}", before, groups, after);
        // No group that receives a shard also gives one away.
        for s in 0..before.len() {
            if before[s] != after[s] {
                let to = after[s];
                prop_assert!(
                    (0..before.len()).all(|t| before[t] != to || after[t] == to),
                    "group {} both gains and loses", to
                );
            }
        }
        // Same input, same output.
        let mut again = before.clone();
        rebalance(&mut again, groups.iter().rev());
        prop_assert_eq!(again, after);
    }
}
