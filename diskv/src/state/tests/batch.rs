//! Batches ([`crate::batch`]): applied in order as one, each shard's part
//! exactly once, also when a retry finds some of its shards moved to another
//! group and is split by owner with the same number.

use super::*;
use crate::batch::Batch;
use crate::state::KvOutput;
use proptest::prelude::*;

fn shard(key: &str) -> usize {
    shardmaster::shard_of(key.as_bytes(), NSHARDS)
}

fn batch(client: u64, seq: u64, ops: Vec<Op>) -> Batch {
    batch_of(client, seq, ops)
}

fn run(st: &mut KvState, slot: u64, b: &Batch) -> KvOutput {
    st.apply(
        slot,
        KvCommand::Batch {
            batch: b.clone(),
            at_ms: 1,
        },
    )
}

fn incr(key: &str) -> Op {
    Op::Incr {
        key: key.into(),
        by: 1,
    }
}

#[test]
fn a_batch_applies_in_order_and_a_retry_changes_nothing() {
    let mut st = started(1);
    let b = batch(
        9,
        1,
        vec![
            incr("a"),
            Op::Get { key: "a".into() },
            incr("a"),
            Op::Put {
                key: "b".into(),
                value: "x".into(),
            },
            Op::Take { key: "b".into() },
        ],
    );
    let first = run(&mut st, 1, &b).unwrap();
    assert_eq!(
        first,
        Reply::Batch(vec![
            Reply::Counter(Ok(1)),
            Reply::Value(Some("1".into())),
            Reply::Counter(Ok(2)),
            Reply::Existed(false),
            Reply::Value(Some("x".into())),
        ])
    );
    assert_eq!(
        run(&mut st, 2, &b),
        Ok(first),
        "a retry is answered the same"
    );
    assert_eq!(get(&st, "a").as_deref(), Some("2"), "applied once");
    assert_eq!(get(&st, "b"), None);
    let later = batch(9, 2, vec![incr("a"), incr("z")]);
    run(&mut st, 3, &later).unwrap();
    assert_eq!(
        run(&mut st, 4, &b),
        Err(KvError::Timeout),
        "stale: not applied"
    );
    assert_eq!(get(&st, "a").as_deref(), Some("3"));
}

#[test]
fn a_batch_with_a_shard_not_served_applies_nothing() {
    let mut st = started(1);
    let mut config = config_of(2, 1);
    let theirs = shard("b");
    config.shards[theirs] = 2;
    st.apply(1, KvCommand::Reconfigure { config }).unwrap();
    let b = batch(9, 1, vec![incr("a"), incr("b")]);
    assert!(shard("a") != theirs);
    assert!(matches!(
        run(&mut st, 2, &b),
        Err(KvError::WrongGroup { shard, .. }) if shard == theirs
    ));
    assert_eq!(get(&st, "a"), None, "nothing applied");
}

/// Moves the shards `config` gives group 2 from `from` to `to`.
fn move_shards(from: &mut KvState, to: &mut KvState, config: &Config, slot: u64) {
    for st in [&mut *from, &mut *to] {
        st.apply(
            slot,
            KvCommand::Reconfigure {
                config: config.clone(),
            },
        )
        .unwrap();
    }
    let gid = to.gid();
    for s in (0..NSHARDS).filter(|&s| config.shards[s] == gid) {
        let moving = from.shard(s).unwrap();
        let install = KvCommand::InstallShard {
            config: config.num,
            shard: s,
            data: moving
                .data
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            dups: moving.dups.clone(),
        };
        to.apply(slot + 1, install).unwrap();
        from.apply(
            slot + 2,
            KvCommand::DeleteShard {
                config: config.num,
                shard: s,
            },
        )
        .unwrap();
    }
}

/// Runs `b` on the owners `groups` as a Clerk would after a move: split by
/// owner, each part with the batch's number, replies put back in order.
fn run_split(groups: &mut [KvState; 2], slot: u64, b: &Batch) -> Vec<Reply> {
    let mut replies: Vec<Option<Reply>> = vec![None; b.ops.len()];
    for st in groups.iter_mut() {
        let mine: Vec<usize> = (0..b.ops.len())
            .filter(|&i| st.config().shards[b.ops[i].0] == st.gid())
            .collect();
        if mine.is_empty() {
            continue;
        }
        let part = Batch {
            ops: mine.iter().map(|&i| b.ops[i].clone()).collect(),
            ..b.clone()
        };
        let Ok(Reply::Batch(got)) = run(st, slot, &part) else {
            panic!("part refused");
        };
        for (i, r) in mine.into_iter().zip(got) {
            replies[i] = Some(r);
        }
    }
    replies.into_iter().map(Option::unwrap).collect()
}

/// The operations the property draws: writes and reads on a few keys.
fn op_strategy() -> impl Strategy<Value = Op> {
    let key = prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]);
    (key, 0..5u8, "[xy]").prop_map(|(k, kind, v)| {
        let key = k.to_string();
        match kind {
            0 => incr(k),
            1 => Op::Put { key, value: v },
            2 => Op::AppendLen { key, value: v },
            3 => Op::Take { key },
            _ => Op::Get { key },
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Batches, each retried or not at random (its reply lost), with half the
    /// shards moving to group 2 at a random point: every batch takes effect
    /// once, every retry gets the first answer, and the groups end with the
    /// data of each batch applied once in order.
    #[test]
    fn every_batch_applies_once_across_retries_and_a_move(
        batches in prop::collection::vec(prop::collection::vec(op_strategy(), 1..6), 1..12),
        retried in prop::collection::vec(any::<bool>(), 12),
        move_at in 0..12usize,
    ) {
        let mut groups = [started(1), started(2)];
        let mut model: BTreeMap<String, crate::state::value::Value> = BTreeMap::new();
        let mut moved = false;
        let mut slot = 1;
        for (i, ops) in batches.into_iter().enumerate() {
            let b = batch(9, i as u64 + 1, ops);
            let expected: Vec<Reply> = b.ops.iter().map(|(_, op)| {
                let mut s = crate::state::shard::Shard::new(crate::state::shard::ShardMode::Serving);
                s.data = std::mem::take(&mut model);
                let r = s.apply(op, |_| {});
                model = s.data;
                r
            }).collect();
            let first = run_split(&mut groups, slot, &b);
            prop_assert_eq!(&first, &expected);
            slot += 1;
            if i == move_at && !moved {
                let mut config = config_of(2, 1);
                for s in NSHARDS / 2..NSHARDS {
                    config.shards[s] = 2;
                }
                let [g1, g2] = &mut groups;
                move_shards(g1, g2, &config, slot);
                slot += 3;
                moved = true;
            }
            if retried[i] {
                prop_assert_eq!(run_split(&mut groups, slot, &b), first, "retry of batch {}", i);
                slot += 1;
            }
        }
        let mut held = BTreeMap::new();
        for st in &groups {
            for s in 0..NSHARDS {
                if st.config().shards[s] == st.gid() {
                    if let Some(shard) = st.shard(s) {
                        held.extend(shard.data.clone());
                    }
                }
            }
        }
        prop_assert_eq!(held, model);
    }
}
