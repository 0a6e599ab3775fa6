//! The replicated state machine: every configuration ever made, and how ops change them.
//!
//! Each shardmaster replica applies the ops Paxos decided, in log order, to its own
//! [`ConfigStore`]. [`ConfigStore::apply`] is a pure function of the store and the op
//! (no clocks, no randomness, no hash-map iteration order), so replicas that applied the
//! same sequence hold equal stores, and a snapshot of one can replace another.
//!
//! # Semantics
//!
//! - **Every op is checked before it changes anything.** A refused op (an `Err`) makes
//!   no configuration and leaves the store exactly as it was. Ops are re-validated at
//!   apply time, so replicas never rely on the proposer having done it.
//! - **A state-changing op makes exactly one configuration,** numbered one above the
//!   latest; old configurations are never modified.
//! - **Join of a new gid** adds the group and rebalances (see [`crate::rebalance`]).
//!   Refused when an address is malformed, repeated, or already used by another joined
//!   group (a server belongs to one group).
//! - **Join of a joined gid with the same server list** (same addresses, same order) is
//!   a successful no-op: [`OpResult::Unchanged`]. Clients retry Joins, and the
//!   `--join` start-up path may race with an admin, so a repeated Join must succeed.
//! - **Join of a joined gid with a different server list is refused** (`GidInUse`). A
//!   group's replicas change only through its own log (`diskv admin replica ...`), so a
//!   Join with a different list is either a gid collision between two groups or a
//!   typo; silently rewriting the addresses would route the group's shards to servers
//!   that do not hold them. A replica set the group changed is recorded with Servers.
//! - **Leave of a gid that is not joined is refused** (`UnknownGroup`), no new config.
//!   Otherwise the group is removed and only its shards move (plus whatever is needed
//!   to re-level a load that Moves had skewed). When the last group leaves, every
//!   shard returns to gid 0.
//! - **Move(shard, gid)** to a joined gid gives that shard to that gid exactly, with no
//!   rebalancing; the imbalance stays until a later Join or Leave rebalances. Refused
//!   for gid 0, a gid not joined, or a shard out of range. A Move to the shard's
//!   current owner is a successful no-op (`Unchanged`), like a repeated Join.
//! - **Servers(gid, servers)** records a joined group's new server list (after the
//!   group changed its replica set through its own log) in a new configuration that
//!   moves no shard. The same list again is `Unchanged`; a gid not joined is refused
//!   (`UnknownGroup`), and so is an address malformed, repeated or used by another
//!   group, as for Join.
//! - **Query(num)** never changes the store: -1 ([`ConfigNum::Latest`] on the wire) or
//!   a number past the latest reads the latest; other negative numbers are refused by
//!   [`Op::validate`].

use crate::config::{Config, Gid, MAX_SHARDS, NO_GROUP};
use crate::error::ShardmasterError;
use crate::op::{ConfigNum, Op, OpResult};
use crate::rebalance::rebalance;
use serde::{Deserialize, Serialize};

/// Every configuration of the cluster, from config 0 to the latest.
///
/// Serializable, so it can be snapshotted; a snapshot that breaks the store's
/// invariants is refused when it is read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoreSnapshot")]
pub struct ConfigStore {
    /// `configs[i].num == i`; never empty; only ever appended to.
    configs: Vec<Config>,
    /// The cluster's shard count, fixed at creation.
    nshards: usize,
}

impl ConfigStore {
    /// A store holding only config 0, for a cluster of `nshards` shards
    /// (1..=[`MAX_SHARDS`]).
    pub fn new(nshards: usize) -> Result<Self, ShardmasterError> {
        if nshards == 0 || nshards > MAX_SHARDS {
            return Err(ShardmasterError::BadShardCount { nshards });
        }
        Ok(ConfigStore {
            configs: vec![Config::initial(nshards)],
            nshards,
        })
    }

    /// The cluster's shard count.
    pub fn nshards(&self) -> usize {
        self.nshards
    }

    /// The latest configuration.
    pub fn latest(&self) -> &Config {
        // The store always holds config 0 (checked by `new` and on deserialization).
        &self.configs[self.configs.len() - 1]
    }

    /// Configuration `which`; a number past the latest reads the latest.
    pub fn query(&self, which: ConfigNum) -> &Config {
        match which {
            ConfigNum::Latest => self.latest(),
            ConfigNum::Num(n) => usize::try_from(n)
                .ok()
                .and_then(|i| self.configs.get(i))
                .unwrap_or_else(|| self.latest()),
        }
    }

    /// Applies one decided op. See the module docs for the semantics of each op.
    pub fn apply(&mut self, op: &Op) -> Result<OpResult, ShardmasterError> {
        op.validate(self.nshards)?;
        let latest = self.latest();
        let next = match op {
            Op::Query { num } => {
                let which = ConfigNum::from_wire(*num)?;
                return Ok(OpResult::Config(self.query(which).clone()));
            }
            Op::Join { gid, servers } => {
                if let Some(existing) = latest.groups.get(gid) {
                    return if existing == servers {
                        Ok(OpResult::Unchanged { num: latest.num })
                    } else {
                        Err(ShardmasterError::GidInUse {
                            gid: *gid,
                            servers: existing.clone(),
                        })
                    };
                }
                check_addresses_free(latest, *gid, servers)?;
                let mut next = successor(latest);
                next.groups.insert(*gid, servers.clone());
                rebalance(&mut next.shards, next.groups.keys());
                next
            }
            Op::Leave { gid } => {
                if !latest.groups.contains_key(gid) {
                    return Err(ShardmasterError::UnknownGroup { gid: *gid });
                }
                let mut next = successor(latest);
                next.groups.remove(gid);
                rebalance(&mut next.shards, next.groups.keys());
                next
            }
            Op::Move { shard, gid } => {
                if !latest.groups.contains_key(gid) {
                    return Err(ShardmasterError::MoveToUnknownGroup {
                        shard: *shard,
                        gid: *gid,
                    });
                }
                if latest.owner(*shard) == *gid {
                    return Ok(OpResult::Unchanged { num: latest.num });
                }
                let mut next = successor(latest);
                // In range: `validate` checked `shard < nshards`, every config's length.
                if let Some(owner) = next.shards.get_mut(*shard) {
                    *owner = *gid;
                }
                next
            }
            Op::Servers { gid, servers } => {
                match latest.groups.get(gid) {
                    None => return Err(ShardmasterError::UnknownGroup { gid: *gid }),
                    Some(now) if now == servers => {
                        return Ok(OpResult::Unchanged { num: latest.num })
                    }
                    Some(_) => {}
                }
                let mut others = latest.clone();
                others.groups.remove(gid);
                check_addresses_free(&others, *gid, servers)?;
                let mut next = successor(latest);
                next.groups.insert(*gid, servers.clone());
                next
            }
        };
        let num = next.num;
        tracing::debug!(num, ?op, "shardmaster: new configuration");
        self.configs.push(next);
        Ok(OpResult::Changed { num })
    }
}

/// A copy of `latest` numbered one above it.
fn successor(latest: &Config) -> Config {
    let mut next = latest.clone();
    next.num += 1;
    next
}

/// Refuses a Join whose addresses another joined group already uses.
fn check_addresses_free(
    latest: &Config,
    gid: Gid,
    servers: &[String],
) -> Result<(), ShardmasterError> {
    for (&owner, theirs) in &latest.groups {
        if let Some(addr) = servers.iter().find(|a| theirs.contains(a)) {
            return Err(ShardmasterError::AddressInUse {
                gid,
                addr: addr.clone(),
                owner,
            });
        }
    }
    Ok(())
}

/// The serialized form of a [`ConfigStore`], checked before it becomes one.
#[derive(Deserialize)]
struct StoreSnapshot {
    configs: Vec<Config>,
    nshards: usize,
}

impl TryFrom<StoreSnapshot> for ConfigStore {
    type Error = ShardmasterError;

    fn try_from(s: StoreSnapshot) -> Result<Self, Self::Error> {
        let corrupt = |reason: String| Err(ShardmasterError::CorruptSnapshot { reason });
        if s.nshards == 0 || s.nshards > MAX_SHARDS {
            return corrupt(format!("shard count {} out of range", s.nshards));
        }
        if s.configs.is_empty() {
            return corrupt("no configurations".into());
        }
        for (i, c) in s.configs.iter().enumerate() {
            if c.num != i as u64 {
                return corrupt(format!("configuration {i} is numbered {}", c.num));
            }
            if c.shards.len() != s.nshards {
                return corrupt(format!(
                    "configuration {i} has {} shards, not {}",
                    c.shards.len(),
                    s.nshards
                ));
            }
            let stray = c.shards.iter().find(|g| {
                if c.groups.is_empty() {
                    **g != NO_GROUP
                } else {
                    !c.groups.contains_key(g)
                }
            });
            if let Some(g) = stray {
                return corrupt(format!(
                    "configuration {i} gives a shard to unjoined gid {g}"
                ));
            }
        }
        Ok(ConfigStore {
            configs: s.configs,
            nshards: s.nshards,
        })
    }
}
