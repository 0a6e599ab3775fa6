//! Tests of the state machine as a whole, and the helpers they share.
//!
//! - `semantics`: one test per semantic decision documented in [`crate::state`].
//! - `lab_basic`: the 6.824 lab 4 shardmaster "Basic" checks that need no network.
//! - `properties`: proptest over random Join / Leave / Move sequences.

mod lab_basic;
mod properties;
mod semantics;

use crate::{Config, ConfigStore, Gid, Op, NO_GROUP};
use std::collections::BTreeSet;

/// A Join of `gid` with three addresses derived from it, unique per gid.
fn join(gid: Gid) -> Op {
    Op::Join {
        gid,
        servers: servers(gid),
    }
}

/// The addresses [`join`] uses for `gid`.
fn servers(gid: Gid) -> Vec<String> {
    (0..3)
        .map(|i| format!("g{gid}-r{i}:{}", 7000 + i))
        .collect()
}

/// A store of `nshards` shards; panics on a bad count (test helper).
fn store(nshards: usize) -> ConfigStore {
    ConfigStore::new(nshards).expect("valid shard count")
}

/// Applies `op`, which the test expects to succeed.
fn apply_ok(store: &mut ConfigStore, op: Op) {
    if let Err(e) = store.apply(&op) {
        panic!("{op:?} refused: {e}");
    }
}

/// Number of shards `gid` owns in `c`.
fn load(c: &Config, gid: Gid) -> usize {
    c.shards.iter().filter(|&&g| g == gid).count()
}

/// The 6.824 `check`: exactly `groups` are joined, no shard is unallocated while
/// there are groups, and every group is within one shard of every other.
fn check(c: &Config, groups: &[Gid]) {
    let want: BTreeSet<Gid> = groups.iter().copied().collect();
    let have: BTreeSet<Gid> = c.groups.keys().copied().collect();
    assert_eq!(have, want, "wrong groups in config {}", c.num);
    check_invariants(c);
    assert!(
        is_balanced(c),
        "config {} unbalanced: {:?}",
        c.num,
        c.shards
    );
}

/// Invariants every config holds: shards on joined gids, or all on gid 0 if none.
fn check_invariants(c: &Config) {
    for (s, g) in c.shards.iter().enumerate() {
        if c.groups.is_empty() {
            assert_eq!(
                *g, NO_GROUP,
                "config {}: shard {s} on {g} with no groups",
                c.num
            );
        } else {
            assert!(
                c.groups.contains_key(g),
                "config {}: shard {s} on unjoined gid {g}",
                c.num
            );
        }
    }
}

/// Max − min load over the joined groups is at most 1 (trivially true with none).
fn is_balanced(c: &Config) -> bool {
    let loads: Vec<usize> = c.groups.keys().map(|&g| load(c, g)).collect();
    match (loads.iter().min(), loads.iter().max()) {
        (Some(min), Some(max)) => max - min <= 1,
        _ => true,
    }
}

/// Number of shards whose owner differs between `a` and `b`.
fn moved(a: &Config, b: &Config) -> usize {
    a.shards
        .iter()
        .zip(&b.shards)
        .filter(|(x, y)| x != y)
        .count()
}

/// The fewest shards that must change owner to balance `before` over `groups`,
/// computed from the formula of [`crate::rebalance`] independently of its code:
/// `n − Σ_g min(c_g, q) − min(r, |{g : c_g > q}|)`, and `n` minus the shards already
/// on gid 0 when there are no groups.
fn min_moves(before: &[Gid], groups: &BTreeSet<Gid>) -> usize {
    let n = before.len();
    if groups.is_empty() {
        return before.iter().filter(|&&g| g != NO_GROUP).count();
    }
    let (q, r) = (n / groups.len(), n % groups.len());
    let counts: Vec<usize> = groups
        .iter()
        .map(|g| before.iter().filter(|&x| x == g).count())
        .collect();
    let kept_base: usize = counts.iter().map(|&c| c.min(q)).sum();
    let above = counts.iter().filter(|&&c| c > q).count();
    n - kept_base - r.min(above)
}
