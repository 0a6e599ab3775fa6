//! Rebalancing: spread the shards evenly over the groups, moving as few as possible.
//!
//! Let `n` be the number of shards, `k ≥ 1` the number of groups, `q = n / k` and
//! `r = n % k`. A balanced assignment gives `r` groups `q + 1` shards and the others
//! `q` (with `k > n`, `q = 0`: `n` groups get one shard, the rest none). Any two
//! groups then differ by at most one shard.
//!
//! **Fewest moves.** Let `c_g` be the number of shards group `g` already owns. A group
//! can keep at most `min(c_g, t_g)` of them, where `t_g` is its target; shards on gid 0
//! or on a gid that is no longer joined must all move. Giving the `+1` targets to the
//! `r` groups that own the most shards maximises what is kept, so the minimum number of
//! shards that change owner is
//!
//! ```text
//! moves = n − Σ_g min(c_g, q) − min(r, |{g : c_g > q}|)
//! ```
//!
//! and [`rebalance`] moves exactly that many: a group above its target gives up only the
//! excess, a group at or below it keeps everything. After a Join into a balanced
//! config this means shards move only to the new group; after a Leave, only the
//! leaving group's shards move.
//!
//! **Determinism.** Every replica must compute the same assignment, so ties are broken
//! by fixed rules and nothing depends on hash-map order or randomness:
//! the `+1` targets go to the groups owning the most shards, ties to the lower gid;
//! a group above target gives up its highest-numbered shards; freed shards are handed
//! out in increasing shard order to the groups below target in increasing gid order.

use crate::config::{Gid, NO_GROUP};
use std::collections::BTreeMap;

/// Reassigns `shards` (one gid per shard) over `groups` so that every group is within
/// one shard of every other, changing the fewest entries (see the module docs).
/// Shards on a gid not in `groups` (including [`NO_GROUP`]) are always reassigned.
/// With no groups, every shard goes to [`NO_GROUP`].
pub fn rebalance<'a>(shards: &mut [Gid], groups: impl IntoIterator<Item = &'a Gid>) {
    // gid → shards it owns now; a BTreeMap, so iteration is in gid order.
    let mut owned: BTreeMap<Gid, Vec<usize>> = groups
        .into_iter()
        .filter(|&&g| g != NO_GROUP)
        .map(|&g| (g, Vec::new()))
        .collect();
    if owned.is_empty() {
        shards.fill(NO_GROUP);
        return;
    }
    let mut freed = Vec::new();
    for (s, g) in shards.iter().enumerate() {
        match owned.get_mut(g) {
            Some(list) => list.push(s),
            None => freed.push(s),
        }
    }

    let k = owned.len();
    let (q, r) = (shards.len() / k, shards.len() % k);
    let targets = targets(&owned, q, r);

    // Groups above target give up their highest-numbered shards.
    for (g, list) in &owned {
        let target = targets[g];
        if list.len() > target {
            freed.extend_from_slice(&list[target..]);
        }
    }
    freed.sort_unstable();

    // Freed shards, lowest first, fill the groups below target, lowest gid first.
    let mut freed = freed.into_iter();
    for (g, list) in &owned {
        for _ in list.len()..targets[g] {
            match freed.next() {
                Some(s) => shards[s] = *g,
                None => return, // unreachable: Σ targets = n
            }
        }
    }
}

/// Each group's target: `q + 1` for the `r` groups owning the most shards (ties to the
/// lower gid), `q` for the rest.
fn targets(owned: &BTreeMap<Gid, Vec<usize>>, q: usize, r: usize) -> BTreeMap<Gid, usize> {
    let mut by_load: Vec<(Gid, usize)> = owned.iter().map(|(&g, l)| (g, l.len())).collect();
    by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by_load
        .iter()
        .enumerate()
        .map(|(i, &(g, _))| (g, if i < r { q + 1 } else { q }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(shards: &[Gid], groups: &[Gid]) -> Vec<Gid> {
        let mut s = shards.to_vec();
        rebalance(&mut s, groups);
        s
    }

    #[test]
    fn first_join_takes_every_shard() {
        assert_eq!(run(&[0; 5], &[7]), vec![7; 5]);
    }

    #[test]
    fn no_groups_sends_every_shard_to_gid_0() {
        assert_eq!(run(&[1, 2, 1], &[]), vec![0, 0, 0]);
        assert_eq!(run(&[1, 2, 1], &[0]), vec![0, 0, 0]);
    }

    #[test]
    fn second_join_takes_the_highest_shards_of_the_first() {
        assert_eq!(run(&[1; 10], &[1, 2]), vec![1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    }

    #[test]
    fn extra_shard_goes_to_the_lower_gid_on_a_tie() {
        assert_eq!(run(&[0; 3], &[5, 2]), vec![2, 2, 5]);
    }

    #[test]
    fn extra_shard_stays_with_the_group_that_has_it() {
        // 3 shards over {1, 2}: group 2 already has 2, so it keeps them.
        assert_eq!(run(&[2, 2, 0], &[1, 2]), vec![2, 2, 1]);
    }

    #[test]
    fn more_groups_than_shards_leaves_some_groups_empty() {
        // The new groups 3 and 4 get nothing: moving a shard would not improve balance.
        assert_eq!(run(&[1, 2], &[1, 2, 3, 4]), vec![1, 2]);
        assert_eq!(run(&[0, 0], &[1, 2, 3, 4]), vec![1, 2]);
    }

    #[test]
    fn leave_moves_only_the_leaving_groups_shards() {
        let before = [1, 1, 2, 2, 3, 3];
        let after = run(&before, &[1, 3]);
        assert_eq!(after, vec![1, 1, 1, 3, 3, 3]);
    }

    #[test]
    fn unbalanced_input_from_moves_is_levelled_with_the_fewest_moves() {
        // Moves piled all 6 shards on group 1; joining 3 must take 2 from it for each
        // of the others, and nothing else.
        let after = run(&[1; 6], &[1, 2, 3]);
        assert_eq!(after, vec![1, 1, 2, 2, 3, 3]);
    }
}
