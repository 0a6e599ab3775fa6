//! Invariant (f), the shardmaster's: the configurations are exactly the clients'
//! writes, each applied once, in an order real time allows, and every answer
//! names one of them.
//!
//! - **One history.** Every configuration any replica ever held is recorded
//!   ([`ConfigLog::saw`]) as its state moves (apply, snapshot, restart); a replica
//!   holding a different configuration under a number already seen is caught at
//!   once. (The digests, invariant (b), also cover the duplicate table.)
//! - **Each write once.** At the end ([`check`]), the history is replayed from
//!   config 0 on a fresh `ConfigStore`: config `k` must be what the write that
//!   reported `Changed { num: k }` makes of config `k - 1` — or, if no completed
//!   write did, what one still pending makes of it. A configuration no write
//!   accounts for (a write applied twice, a retry answered differently from its
//!   first application, a phantom) is a violation, as are two writes claiming
//!   one configuration.
//! - **Real time.** An answer that names configuration `m` (`Changed`,
//!   `Unchanged`, a Query's config) may not name one older than a configuration
//!   some answer named before the operation was invoked (a write must make a newer
//!   one), nor one whose making write was invoked only after the answer arrived.
//!   A Query's config must be the history's configuration of that number.
//! - **Shape.** Every configuration obeys the rebalancing rules
//!   ([`super::balance`]).

use super::balance;
use crate::clock::{Time, MS};
use crate::master_client::{MasterHistory, MasterOp};
use paxos::NodeId;
use shardmaster::{Config, ConfigNum, ConfigStore, OpResult};
use std::collections::BTreeMap;

/// Every configuration any shardmaster replica held, by number.
#[derive(Default)]
pub struct ConfigLog {
    configs: BTreeMap<u64, (Config, NodeId)>,
}

impl ConfigLog {
    /// Replica `node` holds `store`: records the configurations not seen yet and
    /// checks its latest against the one recorded.
    pub fn saw(&mut self, node: NodeId, store: &ConfigStore) -> Result<(), String> {
        let latest = store.latest();
        let from = self.configs.len() as u64;
        for num in from..=latest.num {
            self.configs
                .insert(num, (store.query(ConfigNum::Num(num)).clone(), node));
        }
        match self.configs.get(&latest.num) {
            Some((c, first)) if c != latest => Err(format!(
                "shardmaster replicas {first} and {node} hold different configurations {}: \
                 {c:?} and {latest:?}",
                latest.num
            )),
            _ => Ok(()),
        }
    }

    /// The configurations recorded, in order.
    pub fn configs(&self) -> impl Iterator<Item = &Config> {
        self.configs.values().map(|(c, _)| c)
    }

    /// The number of the latest configuration recorded.
    pub fn latest(&self) -> u64 {
        self.configs.len().saturating_sub(1) as u64
    }
}

/// The configuration number an answer names, if any.
fn named(op: &MasterOp) -> Option<(Time, u64)> {
    match &op.returned {
        Some((t, Ok(OpResult::Changed { num } | OpResult::Unchanged { num }))) => Some((*t, *num)),
        Some((t, Ok(OpResult::Config(c)))) => Some((*t, c.num)),
        _ => None,
    }
}

/// Checks the clients' operations against the configurations (see the module
/// docs); returns the violations found.
pub fn check(history: &MasterHistory, log: &ConfigLog, nshards: usize) -> Vec<String> {
    let mut out = Vec::new();
    let configs: Vec<&Config> = log.configs().collect();
    for pair in configs.windows(2) {
        if let Err(e) = balance::check_step(pair[0], pair[1]) {
            out.push(e);
        }
    }
    if let Some(first) = configs.first() {
        if let Err(e) = balance::placed_on_joined_groups(first) {
            out.push(e);
        }
    }
    // Answers, by the time they arrived: what was known when an op was invoked.
    let mut answers: Vec<(Time, u64)> = history.ops.iter().filter_map(named).collect();
    answers.sort_unstable();
    let known_before = |t: Time| {
        answers
            .iter()
            .take_while(|(at, _)| *at < t)
            .map(|(_, n)| *n)
            .max()
    };
    let maker = replay(history, &configs, nshards, &mut out);
    // Latest invocation among the makers of configs 1..=m.
    let mut invoked_by = vec![0; configs.len()];
    for k in 1..configs.len() {
        let mine = maker[k].map_or(0, |i| history.ops[i].invoked);
        invoked_by[k] = invoked_by[k - 1].max(mine);
    }
    for (k, i) in maker.iter().enumerate() {
        let Some(op) = i.map(|i| &history.ops[i]) else {
            continue;
        };
        if op.returned.is_none() && known_before(op.invoked).is_some_and(|f| f >= k as u64) {
            out.push(format!(
                "config {k} was made by client {} seq {} {:?}, invoked after an answer named a \
                 config as new",
                op.client, op.seq, op.op
            ));
        }
    }
    for op in &history.ops {
        let Some((at, num)) = named(op) else {
            continue;
        };
        let who = format!(
            "client {} {:?} (seq {}, invoked at {} ms, answered at {} ms)",
            op.client,
            op.op,
            op.seq,
            op.invoked / MS,
            at / MS
        );
        let Some(config) = configs.get(num as usize) else {
            out.push(format!(
                "{who} was answered with config {num}, which no replica ever held"
            ));
            continue;
        };
        if let Some((_, Ok(OpResult::Config(c)))) = &op.returned {
            if c != *config {
                out.push(format!(
                    "{who} was answered {c:?}, but config {num} is {config:?}"
                ));
            }
        }
        if invoked_by[num as usize] > at {
            out.push(format!(
                "{who} named config {num}, whose making write was invoked only after the answer"
            ));
        }
        let floor = known_before(op.invoked);
        let asked_old = op.op == shardmaster::Op::query(ConfigNum::Num(num));
        let changed = matches!(op.returned, Some((_, Ok(OpResult::Changed { .. }))));
        let stale = match floor {
            Some(f) if changed => num <= f,
            Some(f) => num < f && !asked_old,
            None => false,
        };
        if stale {
            out.push(format!(
                "{who} named config {num}, older than config {} an answer named before it was \
                 invoked",
                floor.unwrap_or(0)
            ));
        }
    }
    out
}

/// Replays the configurations from config 0, attributing each to one write;
/// returns the maker (index into the history) of each configuration.
fn replay(
    history: &MasterHistory,
    configs: &[&Config],
    nshards: usize,
    out: &mut Vec<String>,
) -> Vec<Option<usize>> {
    let mut maker = vec![None; configs.len()];
    let Ok(mut store) = ConfigStore::new(nshards) else {
        out.push(format!("no store of {nshards} shards"));
        return maker;
    };
    if configs.first().is_some_and(|c| *c != store.latest()) {
        out.push(format!("config 0 is {:?}", configs[0]));
        return maker;
    }
    let mut pinned: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        if let Some((_, Ok(OpResult::Changed { num }))) = &op.returned {
            if let Some(other) = pinned.insert(*num, i) {
                out.push(format!(
                    "two writes were told they made config {num}: client {} seq {} and client \
                     {} seq {}",
                    history.ops[other].client, history.ops[other].seq, op.client, op.seq
                ));
            }
        }
    }
    let mut unused: Vec<usize> = (0..history.ops.len())
        .filter(|&i| history.ops[i].returned.is_none() && history.ops[i].op.is_write())
        .collect();
    for k in 1..configs.len() {
        // Whether op `i` makes config `k` of `store` (which it changes).
        let makes = |store: &mut ConfigStore, i: usize| {
            let made = store.apply(&history.ops[i].op);
            made == Ok(OpResult::Changed { num: k as u64 }) && store.latest() == configs[k]
        };
        let found = match pinned.get(&(k as u64)) {
            Some(&i) if makes(&mut store, i) => Some(i),
            Some(&i) => {
                let op = &history.ops[i];
                out.push(format!(
                    "client {} seq {} {:?} was told it made config {k}, but config {k} is {:?} \
                     after {:?}",
                    op.client,
                    op.seq,
                    op.op,
                    configs[k],
                    configs[k - 1]
                ));
                return maker;
            }
            None => {
                let at = unused.iter().position(|&i| makes(&mut store.clone(), i));
                at.map(|at| unused.remove(at)).inspect(|&i| {
                    makes(&mut store, i);
                })
            }
        };
        let Some(i) = found else {
            out.push(format!(
                "config {k} ({:?} after {:?}) was made by no client's write, or by one applied \
                 more than once",
                configs[k],
                configs[k - 1]
            ));
            return maker;
        };
        maker[k] = Some(i);
    }
    maker
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmaster::{Op, ShardmasterError};

    fn join(gid: u64) -> Op {
        Op::Join {
            gid,
            servers: vec![format!("g{gid}:1")],
        }
    }

    fn op(client: u64, seq: u64, op: Op, t: (Time, Option<Time>), r: OpResult) -> MasterOp {
        MasterOp {
            client,
            seq,
            op,
            invoked: t.0,
            returned: t.1.map(|at| (at, Ok(r))),
        }
    }

    /// The configurations a store makes of `ops`, as replicas would report them.
    fn log_of(ops: &[Op]) -> ConfigLog {
        let mut store = ConfigStore::new(4).unwrap();
        let mut log = ConfigLog::default();
        for o in ops {
            store.apply(o).unwrap();
            log.saw(0, &store).unwrap();
        }
        log
    }

    #[test]
    fn writes_each_applied_once_pass() {
        let log = log_of(&[join(2), join(3), Op::Leave { gid: 2 }]);
        let history = MasterHistory {
            ops: vec![
                op(1, 1, join(2), (0, Some(10)), OpResult::Changed { num: 1 }),
                op(2, 1, join(3), (5, Some(20)), OpResult::Changed { num: 2 }),
                // Still pending at the end, yet applied.
                op(
                    1,
                    2,
                    Op::Leave { gid: 2 },
                    (30, None),
                    OpResult::Unchanged { num: 0 },
                ),
                op(
                    2,
                    2,
                    join(3),
                    (40, Some(50)),
                    OpResult::Unchanged { num: 3 },
                ),
            ],
        };
        assert_eq!(check(&history, &log, 4), Vec::<String>::new());
    }

    #[test]
    fn a_write_applied_twice_is_caught() {
        // Join 2, Leave 2, and the Join applied again (a lost duplicate entry).
        let log = log_of(&[join(2), Op::Leave { gid: 2 }, join(2)]);
        let history = MasterHistory {
            ops: vec![
                op(1, 1, join(2), (0, Some(10)), OpResult::Changed { num: 1 }),
                op(
                    2,
                    1,
                    Op::Leave { gid: 2 },
                    (20, Some(30)),
                    OpResult::Changed { num: 2 },
                ),
            ],
        };
        let v = check(&history, &log, 4);
        assert!(v.iter().any(|e| e.contains("config 3")), "{v:?}");
    }

    #[test]
    fn a_stale_or_invented_query_answer_is_caught() {
        let log = log_of(&[join(2), join(3)]);
        let c1 = log.configs().nth(1).unwrap().clone();
        let mut forged = c1.clone();
        forged.shards[0] = 3;
        let history = MasterHistory {
            ops: vec![
                op(1, 1, join(2), (0, Some(10)), OpResult::Changed { num: 1 }),
                op(1, 2, join(3), (20, Some(30)), OpResult::Changed { num: 2 }),
                // Invoked after config 2 was answered, answered config 1.
                op(
                    2,
                    0,
                    Op::query(ConfigNum::Latest),
                    (40, Some(50)),
                    OpResult::Config(c1.clone()),
                ),
                // Asking for config 1 by number is fine.
                op(
                    2,
                    0,
                    Op::query(ConfigNum::Num(1)),
                    (60, Some(70)),
                    OpResult::Config(c1),
                ),
                op(
                    3,
                    0,
                    Op::query(ConfigNum::Num(1)),
                    (60, Some(70)),
                    OpResult::Config(forged),
                ),
            ],
        };
        let v = check(&history, &log, 4);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("older than config 2"), "{v:?}");
        assert!(v[1].contains("but config 1 is"), "{v:?}");
    }

    #[test]
    fn a_retry_answered_differently_from_its_first_application_is_caught() {
        let log = log_of(&[join(2), Op::Leave { gid: 2 }]);
        let mut leave = op(
            1,
            2,
            Op::Leave { gid: 2 },
            (20, Some(30)),
            OpResult::Changed { num: 0 },
        );
        leave.returned = Some((30, Err(ShardmasterError::UnknownGroup { gid: 2 })));
        let history = MasterHistory {
            ops: vec![
                op(1, 1, join(2), (0, Some(10)), OpResult::Changed { num: 1 }),
                leave,
            ],
        };
        let v = check(&history, &log, 4);
        assert!(
            v.iter().any(|e| e.contains("made by no client's write")),
            "{v:?}"
        );
    }

    #[test]
    fn replicas_disagreeing_on_a_config_are_caught() {
        let mut a = ConfigStore::new(4).unwrap();
        let mut b = a.clone();
        a.apply(&join(2)).unwrap();
        b.apply(&join(3)).unwrap();
        let mut log = ConfigLog::default();
        log.saw(0, &a).unwrap();
        assert!(log.saw(1, &b).is_err());
    }
}
