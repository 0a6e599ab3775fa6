//! A configuration: which replica group owns each shard, and where each group lives.
//!
//! Also the key → shard map ([`shard_of`]), because it is the other half of routing:
//! a client hashes the key to a shard, then looks the shard's owner up in a [`Config`].

use crate::error::ShardmasterError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A replica group id. [`NO_GROUP`] (0) means "no group": shards of config 0, and of
/// any config after the last group has left, are owned by it.
pub type Gid = u64;

/// The reserved gid that owns shards no group serves.
pub const NO_GROUP: Gid = 0;

/// Number of shards when `--shards` is not given (docs/REFERENCE.md §2).
pub const DEFAULT_SHARDS: usize = 10;

/// Upper bound on the number of shards of a cluster. Every configuration ever made is
/// kept, each with one gid per shard, so the shard count bounds the store's memory.
pub const MAX_SHARDS: usize = 1 << 16;

/// One numbered configuration of the cluster.
///
/// Invariants of every config a [`ConfigStore`](crate::ConfigStore) makes:
/// `shards.len()` is the cluster's shard count; if `groups` is empty every shard is on
/// [`NO_GROUP`], otherwise every shard is on a gid of `groups`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    /// The configuration number: 0 for the initial one, then +1 per change.
    pub num: u64,
    /// `shards[s]` is the gid that owns shard `s`.
    pub shards: Vec<Gid>,
    /// Each joined group's replica addresses (`host:port`), in replica order.
    pub groups: BTreeMap<Gid, Vec<String>>,
}

impl Config {
    /// Config 0: every shard on [`NO_GROUP`], no groups.
    pub fn initial(nshards: usize) -> Self {
        Config {
            num: 0,
            shards: vec![NO_GROUP; nshards],
            groups: BTreeMap::new(),
        }
    }

    /// The gid that owns `shard`; [`NO_GROUP`] when `shard` is out of range.
    pub fn owner(&self, shard: usize) -> Gid {
        self.shards.get(shard).copied().unwrap_or(NO_GROUP)
    }

    /// The shards owned by `gid`, in increasing order.
    pub fn shards_of(&self, gid: Gid) -> Vec<usize> {
        self.shards
            .iter()
            .enumerate()
            .filter(|&(_, &g)| g == gid)
            .map(|(s, _)| s)
            .collect()
    }

    /// The gid that owns `key`'s shard.
    pub fn owner_of_key(&self, key: &[u8]) -> Gid {
        self.owner(shard_of(key, self.shards.len()))
    }

    /// The servers of `gid`, if it is joined in this config.
    pub fn servers(&self, gid: Gid) -> Option<&[String]> {
        self.groups.get(&gid).map(Vec::as_slice)
    }

    /// The one-line JSON form printed by `diskv admin query` (docs/REFERENCE.md §3):
    /// `{"num":N,"shards":[G,...],"groups":{"G":["addr",...],...}}`, groups sorted by
    /// gid, gids as object keys written as strings, no spaces, no trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing field order follows the declaration order (num, shards, groups)
        // and a BTreeMap iterates in gid order, which is exactly the contract's form.
        serde_json::to_string(self).expect("a Config always serializes: its keys are integers")
    }

    /// Parses the form written by [`Config::to_json`].
    pub fn from_json(text: &str) -> Result<Config, ShardmasterError> {
        serde_json::from_str(text).map_err(|e| ShardmasterError::MalformedConfig {
            reason: e.to_string(),
        })
    }
}

/// The shard that holds `key` in a cluster of `nshards` shards (0 is treated as 1).
///
/// **Part of the on-disk and wire contract.** Every client and server of a cluster must
/// agree on it, and data on disk is filed under it, so it can never change once a
/// cluster exists. It is defined, independently of Rust's (unstable) `DefaultHasher`, as
///
/// ```text
/// h = FNV-1a-64(key)                         offset basis 0xcbf29ce484222325,
///                                            prime 0x00000100000001b3
/// h = fmix64(h)                              MurmurHash3's 64-bit finalizer
/// shard = h mod nshards
/// ```
///
/// The finalizer spreads every input bit over the low bits, which FNV-1a alone leaves
/// poorly mixed (its lowest bit is the parity of the keys' low bits), so that shard
/// counts that are powers of two also balance.
pub fn shard_of(key: &[u8], nshards: usize) -> usize {
    let n = nshards.max(1) as u64;
    (fmix64(fnv1a64(key)) % n) as usize
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// MurmurHash3's `fmix64` finalizer.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_config_has_no_groups_and_every_shard_on_gid_0() {
        let c = Config::initial(10);
        assert_eq!(c.num, 0);
        assert_eq!(c.shards, vec![0; 10]);
        assert!(c.groups.is_empty());
        assert_eq!(c.shards_of(NO_GROUP), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn owner_out_of_range_is_no_group() {
        let mut c = Config::initial(3);
        c.shards = vec![1, 2, 1];
        assert_eq!(c.owner(2), 1);
        assert_eq!(c.owner(3), NO_GROUP);
        assert_eq!(c.owner(usize::MAX), NO_GROUP);
        assert_eq!(c.shards_of(1), vec![0, 2]);
        assert_eq!(c.shards_of(7), Vec::<usize>::new());
    }

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    /// Pins the key → shard map (values cross-checked with an independent Python
    /// implementation). If this test fails, the map changed and every existing cluster
    /// would lose track of its data: restore the old function.
    #[test]
    fn shard_of_never_changes() {
        assert_eq!(fmix64(fnv1a64(b"foobar")), 0x2c22194922d1672b);
        let keys: [&[u8]; 6] = [b"", b"a", b"foobar", b"k1", b"k2", b"user:42"];
        let shards: Vec<usize> = keys.iter().map(|k| shard_of(k, 10)).collect();
        assert_eq!(shards, [2, 5, 5, 3, 2, 2]);
        assert_eq!(shard_of(b"foobar", 1 << 16), 26411);
    }

    #[test]
    fn shard_of_is_in_range_and_tolerates_zero_shards() {
        for n in 1..=64 {
            for i in 0..100u32 {
                assert!(shard_of(&i.to_le_bytes(), n) < n);
            }
        }
        assert_eq!(shard_of(b"anything", 0), 0);
    }

    #[test]
    fn shard_of_spreads_sequential_keys_over_power_of_two_shard_counts() {
        for n in [2usize, 4, 8, 16, 10] {
            let mut counts = vec![0usize; n];
            for i in 0..10_000 {
                counts[shard_of(format!("key{i}").as_bytes(), n)] += 1;
            }
            let expected = 10_000 / n;
            for &c in &counts {
                assert!(
                    c > expected * 8 / 10 && c < expected * 12 / 10,
                    "n={n}: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn json_form_matches_the_admin_contract_exactly() {
        let mut c = Config::initial(4);
        c.num = 7;
        c.shards = vec![12, 3, 3, 12];
        c.groups
            .insert(12, vec!["10.0.0.1:7000".into(), "h-2:7001".into()]);
        c.groups.insert(3, vec!["localhost:6000".into()]);
        assert_eq!(
            c.to_json(),
            r#"{"num":7,"shards":[12,3,3,12],"groups":{"3":["localhost:6000"],"12":["10.0.0.1:7000","h-2:7001"]}}"#
        );
        assert_eq!(
            Config::initial(3).to_json(),
            r#"{"num":0,"shards":[0,0,0],"groups":{}}"#
        );
    }

    #[test]
    fn json_round_trips_and_rejects_garbage() {
        let mut c = Config::initial(3);
        c.num = 2;
        c.shards = vec![5, 5, 9];
        c.groups.insert(5, vec!["a:1".into()]);
        c.groups.insert(9, vec!["b:2".into(), "c:3".into()]);
        assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
        assert_eq!(Config::from_json(&(c.to_json() + "\n")).unwrap(), c);
        for bad in [
            "",
            "{",
            "{\"num\":1}",
            "[1,2]",
            r#"{"num":-1,"shards":[],"groups":{}}"#,
        ] {
            let err = Config::from_json(bad).unwrap_err();
            assert!(
                matches!(err, ShardmasterError::MalformedConfig { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_escapes_odd_addresses() {
        let mut c = Config::initial(1);
        c.groups.insert(1, vec!["a\"b\\c".into()]);
        c.shards = vec![1];
        assert_eq!(
            c.to_json(),
            r#"{"num":0,"shards":[1],"groups":{"1":["a\"b\\c"]}}"#
        );
        assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
    }
}
