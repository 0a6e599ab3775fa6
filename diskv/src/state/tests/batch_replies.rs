//! Attack on batches (branch simb): the size of a batch's replies. A part of
//! a batch that writes is recorded in its shard's duplicate table with every
//! reply of the part, Gets' values included; a batch of one small write and
//! many Gets of a large value kept all those copies in every replica's
//! memory, checkpoint and snapshots (and a read batch built them all in one
//! reply), with no bound but the 1,024 operations of a batch. A batch whose
//! replies could carry more than one largest value is now refused before
//! anything is applied, and the refusal is what its duplicate entry records.

use super::*;
use crate::batch::{Batch, MAX_BATCH_REPLY_BYTES};

fn batch(client: u64, seq: u64, ops: Vec<Op>) -> Batch {
    batch_of(client, seq, ops)
}

fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

/// A state whose key "big" holds a value of more than half the reply limit.
fn with_big() -> KvState {
    let mut st = started(1);
    let big = "x".repeat(MAX_BATCH_REPLY_BYTES / 2 + 1);
    let put = Op::Put {
        key: "big".into(),
        value: big,
    };
    st.apply(1, req(7, 1, "big", put)).unwrap();
    st
}

/// An outcome, without the values (they are megabytes).
fn describe(out: &crate::state::KvOutput) -> String {
    match out {
        Ok(Reply::Batch(r)) => format!("{} replies", r.len()),
        Ok(_) => "another reply".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_writing_batch_whose_replies_are_too_large_is_refused_once_and_for_all() {
    let mut st = with_big();
    let b = batch(
        9,
        1,
        vec![
            Op::Append {
                key: "big".into(),
                value: String::new(),
            },
            get("big"),
            get("big"),
        ],
    );
    let cmd = KvCommand::Batch {
        batch: b.clone(),
        at_ms: 1,
    };
    let first = st.apply(2, cmd.clone());
    assert!(
        matches!(&first, Err(KvError::RepliesTooLarge { .. })),
        "a batch answering with two copies of a large value must be refused, got {}",
        describe(&first)
    );
    // Nothing of it is kept: the duplicate table holds the refusal only.
    let snap = st.snapshot(3, paxos::core::Membership::initial(3));
    let bytes = postcard::to_allocvec(&snap).unwrap().len();
    assert!(
        bytes < MAX_BATCH_REPLY_BYTES,
        "the group's snapshot holds {bytes} bytes for one value of {}",
        MAX_BATCH_REPLY_BYTES / 2 + 1
    );
    // A later attempt of the same batch, once it would fit, is refused as
    // the first was: the Clerk has run the operations one at a time by then.
    st.apply(4, req(7, 2, "big", Op::Delete { key: "big".into() }))
        .unwrap();
    let again = st.apply(5, cmd);
    assert!(
        matches!(&again, Err(KvError::RepliesTooLarge { .. })),
        "{}",
        describe(&again)
    );
    assert_eq!(super::get(&st, "big"), None, "the refused Append never ran");
}

#[test]
fn a_read_batch_whose_replies_are_too_large_is_refused() {
    let st = with_big();
    let out = st.read_batch(&batch(9, 1, vec![get("big"), get("big")]));
    assert!(matches!(&out, Err(KvError::RepliesTooLarge { .. })));
    let one = st.read_batch(&batch(9, 1, vec![get("big"), get("small")]));
    assert!(matches!(one, Ok(Reply::Batch(r)) if r.len() == 2));
}

#[test]
fn the_bound_counts_what_the_batch_wrote_before_a_read() {
    let mut st = started(1);
    let half = "y".repeat(MAX_BATCH_REPLY_BYTES / 2 + 1);
    let b = batch(
        9,
        1,
        vec![
            Op::Put {
                key: "k".into(),
                value: half.clone(),
            },
            Op::Swap {
                key: "k".into(),
                value: "z".into(),
            },
            Op::Append {
                key: "k".into(),
                value: half,
            },
            Op::Take { key: "k".into() },
        ],
    );
    let out = st.apply(1, KvCommand::Batch { batch: b, at_ms: 1 });
    assert!(
        matches!(&out, Err(KvError::RepliesTooLarge { .. })),
        "the Swap and the Take answer with the Put's and the Append's bytes: {}",
        describe(&out)
    );
    assert_eq!(super::get(&st, "k"), None);
}

/// A batch of reads may hold one Scan or Keys per shard (a Clerk's scan over
/// a group's shards): each answers as the shard's own read would, in order.
#[test]
fn a_read_batch_of_scans_answers_each_shard_as_its_own_read() {
    let mut st = started(1);
    for (i, key) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
        let put = Op::Put {
            key: (*key).into(),
            value: format!("v{i}"),
        };
        st.apply(1 + i as u64, req(7, 1 + i as u64, key, put))
            .unwrap();
    }
    let scan = Op::Scan {
        start: "b".into(),
        end: "g".into(),
    };
    let keys = Op::Keys {
        start: "c".into(),
        limit: 2,
    };
    let ops: Vec<(usize, Op)> = (0..NSHARDS)
        .map(|s| (s, scan.clone()))
        .chain((0..NSHARDS).map(|s| (s, keys.clone())))
        .collect();
    let b = Batch {
        client: 9,
        seq: 1,
        ops: ops.clone(),
    };
    b.check().unwrap();
    let Ok(Reply::Batch(replies)) = st.read_batch(&b) else {
        panic!("a read batch of scans is served");
    };
    let alone: Vec<Reply> = ops
        .iter()
        .map(|(shard, op)| st.read_op(*shard, op).unwrap())
        .collect();
    assert_eq!(replies, alone);
    let found: usize = replies[..NSHARDS]
        .iter()
        .map(|r| match r {
            Reply::Pairs(p) => p.len(),
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(found, 6, "b..=g over every shard");
}

/// Scans are not in the bound taken before a batch runs, so a read batch
/// counts what its replies carry as it builds them.
#[test]
fn a_read_batch_of_scans_whose_replies_are_too_large_is_refused() {
    let st = with_big();
    let scan = Op::Scan {
        start: "b".into(),
        end: "c".into(),
    };
    let shard = shardmaster::shard_of(b"big", NSHARDS);
    let twice = Batch {
        client: 9,
        seq: 1,
        ops: vec![(shard, scan.clone()), (shard, scan.clone())],
    };
    let out = st.read_batch(&twice);
    assert!(
        matches!(&out, Err(KvError::RepliesTooLarge { .. })),
        "{}",
        describe(&out)
    );
    let once = Batch {
        ops: vec![(shard, scan)],
        ..twice
    };
    assert!(matches!(st.read_batch(&once), Ok(Reply::Batch(r)) if r.len() == 1));
}
