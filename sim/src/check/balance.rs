//! The shape of each configuration the shardmaster makes, checked against its
//! predecessor from the documented rules of `shardmaster::rebalance` (written
//! again here from the spec, not calling the code under test):
//!
//! - every shard is on a joined group, or every shard on gid 0 when none is;
//! - a Join (one group more) or Leave (one group fewer) leaves every group within
//!   one shard of every other and moves exactly the minimum number of shards,
//!   `n − Σ_g min(c_g, q) − min(r, |{g : c_g > q}|)` for `k` groups, `q = n / k`,
//!   `r = n % k`, `c_g` the shards group `g` owned before;
//! - a Move (same groups) changes exactly one shard;
//! - nothing else makes a configuration.

use shardmaster::{Config, Gid, NO_GROUP};
use std::collections::{BTreeMap, BTreeSet};

/// Checks that `next` is a configuration the rules allow after `prev`.
pub fn check_step(prev: &Config, next: &Config) -> Result<(), String> {
    let n = next.shards.len();
    if n != prev.shards.len() || next.num != prev.num + 1 {
        return Err(format!(
            "config {} ({} shards) cannot follow config {} ({} shards)",
            next.num,
            n,
            prev.num,
            prev.shards.len()
        ));
    }
    placed_on_joined_groups(next)?;
    let before: BTreeSet<Gid> = prev.groups.keys().copied().collect();
    let after: BTreeSet<Gid> = next.groups.keys().copied().collect();
    let moved = (0..n).filter(|&s| prev.shards[s] != next.shards[s]).count();
    let added = after.difference(&before).count();
    let removed = before.difference(&after).count();
    let kept_same = after
        .intersection(&before)
        .all(|g| prev.groups[g] == next.groups[g]);
    match (added, removed) {
        _ if !kept_same => Err(format!(
            "config {}: a group that stayed joined changed its servers",
            next.num
        )),
        (0, 0) => match moved {
            1 => Ok(()),
            m => Err(format!(
                "config {}: same groups as config {} (a Move) but {m} shards changed, not 1",
                next.num, prev.num
            )),
        },
        (1, 0) | (0, 1) => {
            balanced(next)?;
            let least = fewest_moves(prev, &after);
            if moved == least {
                Ok(())
            } else {
                Err(format!(
                    "config {}: a {} moved {moved} shards, but {least} suffice \
                     ({:?} -> {:?})",
                    next.num,
                    if added == 1 { "Join" } else { "Leave" },
                    prev.shards,
                    next.shards
                ))
            }
        }
        _ => Err(format!(
            "config {}: {added} groups joined and {removed} left at once",
            next.num
        )),
    }
}

/// Every shard on a joined group; with no group, every shard on gid 0.
pub fn placed_on_joined_groups(c: &Config) -> Result<(), String> {
    let stray = c.shards.iter().enumerate().find(|(_, g)| {
        if c.groups.is_empty() {
            **g != NO_GROUP
        } else {
            !c.groups.contains_key(g)
        }
    });
    match stray {
        Some((s, g)) => Err(format!(
            "config {}: shard {s} is on gid {g}, which is not joined ({:?})",
            c.num,
            c.groups.keys().collect::<Vec<_>>()
        )),
        None => Ok(()),
    }
}

/// Every joined group within one shard of every other.
fn balanced(c: &Config) -> Result<(), String> {
    if c.groups.is_empty() {
        return Ok(());
    }
    let mut load: BTreeMap<Gid, usize> = c.groups.keys().map(|&g| (g, 0)).collect();
    for g in &c.shards {
        *load.entry(*g).or_default() += 1;
    }
    let (lo, hi) = (
        load.values().min().copied().unwrap_or(0),
        load.values().max().copied().unwrap_or(0),
    );
    if hi - lo > 1 {
        return Err(format!(
            "config {}: groups are not within one shard of each other: {load:?}",
            c.num
        ));
    }
    Ok(())
}

/// The fewest shards that must change owner to balance `prev` over `groups`.
fn fewest_moves(prev: &Config, groups: &BTreeSet<Gid>) -> usize {
    let n = prev.shards.len();
    let k = groups.len();
    if k == 0 {
        return prev.shards.iter().filter(|&&g| g != NO_GROUP).count();
    }
    let (q, r) = (n / k, n % k);
    let owned = |g: &Gid| prev.shards.iter().filter(|&s| s == g).count();
    let kept: usize = groups.iter().map(|g| owned(g).min(q)).sum();
    let above = groups.iter().filter(|g| owned(g) > q).count();
    n - kept - r.min(above)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(num: u64, shards: &[Gid], groups: &[Gid]) -> Config {
        Config {
            num,
            shards: shards.to_vec(),
            groups: groups
                .iter()
                .map(|&g| (g, vec![format!("g{g}:1")]))
                .collect(),
        }
    }

    #[test]
    fn the_rebalancers_joins_and_leaves_pass() {
        let mut store = shardmaster::ConfigStore::new(5).unwrap();
        let ops = [
            shardmaster::Op::Join {
                gid: 1,
                servers: vec!["a:1".into()],
            },
            shardmaster::Op::Join {
                gid: 2,
                servers: vec!["b:1".into()],
            },
            shardmaster::Op::Move { shard: 0, gid: 2 },
            shardmaster::Op::Join {
                gid: 3,
                servers: vec!["c:1".into()],
            },
            shardmaster::Op::Leave { gid: 1 },
            shardmaster::Op::Leave { gid: 2 },
            shardmaster::Op::Leave { gid: 3 },
        ];
        for op in ops {
            let prev = store.latest().clone();
            store.apply(&op).unwrap();
            check_step(&prev, store.latest()).unwrap();
        }
    }

    #[test]
    fn an_unbalanced_or_wasteful_join_is_caught() {
        let prev = config(1, &[1, 1, 1, 1], &[1]);
        check_step(&prev, &config(2, &[1, 1, 2, 2], &[1, 2])).unwrap();
        let lopsided = check_step(&prev, &config(2, &[1, 1, 1, 2], &[1, 2])).unwrap_err();
        assert!(lopsided.contains("within one shard"), "{lopsided}");
        // Balanced, but three shards moved where two suffice.
        let prev = config(1, &[1, 1, 2, 2], &[1, 2]);
        let wasteful = check_step(&prev, &config(2, &[2, 3, 1, 1], &[1, 2, 3])).unwrap_err();
        assert!(
            wasteful.contains("moved 4 shards, but 1 suffice"),
            "{wasteful}"
        );
    }

    #[test]
    fn a_move_changes_one_shard_and_strays_are_caught() {
        let prev = config(1, &[1, 1, 2, 2], &[1, 2]);
        check_step(&prev, &config(2, &[2, 1, 2, 2], &[1, 2])).unwrap();
        assert!(check_step(&prev, &config(2, &[2, 2, 2, 2], &[1, 2])).is_err());
        assert!(check_step(&prev, &config(2, &[1, 1, 2, 2], &[1, 2])).is_err());
        let stray = check_step(&prev, &config(2, &[1, 1, 2, 7], &[1, 2])).unwrap_err();
        assert!(stray.contains("gid 7"), "{stray}");
        assert!(check_step(&prev, &config(3, &[2, 1, 2, 2], &[1, 2])).is_err());
    }
}
