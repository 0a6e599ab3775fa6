//! Attack on the operations added for the Redis front door (review branch
//! attack-ops): Op::PutIf, Op::Take, Op::AppendLen and Op::Keys.

mod common;

use common::{masters, Group};
use diskv::op::{Presence, MAX_VALUE_BYTES};
use diskv::shard::{Shard, ShardMode};
use diskv::{Clerk, Op, Reply};
use serde::{Deserialize, Serialize};
use shardmaster::{Clerk as MasterClerk, ConfigNum};
use std::time::Duration;

/// The store's own promise: "Largest value stored: 16 MiB" (op.rs,
/// MAX_VALUE_BYTES). Each AppendLen/Append passes `check_size` (only the
/// appended part is checked), so a few of them store a value of any size; Redis
/// refuses an APPEND past its limit ("string exceeds maximum allowed size").
#[test]
fn attack_append_len_grows_a_value_past_max_value_bytes() {
    let mut s = Shard::new(ShardMode::Serving);
    let chunk = "x".repeat(MAX_VALUE_BYTES);
    let op = Op::AppendLen {
        key: "k".into(),
        value: chunk,
    };
    for _ in 0..3 {
        op.check_size().expect("each piece is within the limit");
        s.apply(&op, |_| {});
    }
    let stored = s.data["k"].len();
    assert!(
        stored <= MAX_VALUE_BYTES,
        "AppendLen stored a value of {stored} bytes, over MAX_VALUE_BYTES ({MAX_VALUE_BYTES})"
    );
}

/// Same with the old Append (for comparison: it does no better).
#[test]
fn attack_append_grows_a_value_past_max_value_bytes() {
    let mut s = Shard::new(ShardMode::Serving);
    let op = Op::Append {
        key: "k".into(),
        value: "x".repeat(MAX_VALUE_BYTES),
    };
    for _ in 0..2 {
        op.check_size().expect("each piece is within the limit");
        s.apply(&op, |_| {});
    }
    let stored = s.data["k"].len();
    assert!(
        stored <= MAX_VALUE_BYTES,
        "Append stored a value of {stored} bytes, over MAX_VALUE_BYTES ({MAX_VALUE_BYTES})"
    );
}

/// `touched` marks exactly the keys whose value changed, for the new ops: a
/// PutIf that does not write and a Take of a missing key touch nothing; an
/// AppendLen of "" to a missing key creates it (and is touched).
#[test]
fn attack_new_ops_touch_exactly_what_they_change() {
    let mut s = Shard::new(ShardMode::Serving);
    let mut t = Vec::new();
    let mut run = |s: &mut Shard, op: Op| {
        let mut mine = Vec::new();
        let r = s.apply(&op, |k| mine.push(k.to_string()));
        t.push(mine.clone());
        (r, mine)
    };
    let put_if = |v: &str, when| Op::PutIf {
        key: "k".into(),
        value: v.into(),
        when,
    };
    assert_eq!(
        run(&mut s, put_if("1", Presence::Present)),
        (Reply::Value(None), vec![])
    );
    assert!(s.data.is_empty(), "XX on a missing key wrote");
    assert_eq!(
        run(&mut s, put_if("1", Presence::Absent)),
        (Reply::Value(None), vec!["k".into()])
    );
    assert_eq!(
        run(&mut s, put_if("2", Presence::Absent)),
        (Reply::Value(Some("1".into())), vec![])
    );
    assert_eq!(s.data["k"], "1");
    assert_eq!(
        run(&mut s, Op::Take { key: "k".into() }),
        (Reply::Value(Some("1".into())), vec!["k".into()])
    );
    assert_eq!(
        run(&mut s, Op::Take { key: "k".into() }),
        (Reply::Value(None), vec![])
    );
    assert!(s.data.is_empty());
    let (r, touched) = run(
        &mut s,
        Op::AppendLen {
            key: "k".into(),
            value: String::new(),
        },
    );
    assert_eq!(r, Reply::Length(0));
    assert_eq!(s.data.get("k").map(|v| v.as_str()), Some(""));
    assert_eq!(touched, vec!["k".to_string()]);
}

// The enums as they were before PutIf/Take/AppendLen/Keys (commit c8ca496).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum OldOp {
    Get { key: String },
    Put { key: String, value: String },
    Append { key: String, value: String },
    Swap { key: String, value: String },
    Delete { key: String },
    Scan { start: String, end: String },
    Clear,
    Incr { key: String, by: i64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum OldReply {
    Value(Option<String>),
    Existed(bool),
    Pairs(Vec<(String, String)>),
    Cleared,
    Counter(Result<i64, diskv::op::CounterError>),
}

/// Records written before the new variants decode as the same values now, and
/// a new record never decodes as an old variant.
#[test]
fn attack_old_postcard_records_decode_with_the_new_enums() {
    let olds = vec![
        (OldOp::Get { key: "a".into() }, Op::Get { key: "a".into() }),
        (
            OldOp::Put {
                key: "a".into(),
                value: "b".into(),
            },
            Op::Put {
                key: "a".into(),
                value: "b".into(),
            },
        ),
        (
            OldOp::Append {
                key: "a".into(),
                value: "b".into(),
            },
            Op::Append {
                key: "a".into(),
                value: "b".into(),
            },
        ),
        (
            OldOp::Swap {
                key: "a".into(),
                value: "b".into(),
            },
            Op::Swap {
                key: "a".into(),
                value: "b".into(),
            },
        ),
        (
            OldOp::Delete { key: "a".into() },
            Op::Delete { key: "a".into() },
        ),
        (
            OldOp::Scan {
                start: "a".into(),
                end: "z".into(),
            },
            Op::Scan {
                start: "a".into(),
                end: "z".into(),
            },
        ),
        (OldOp::Clear, Op::Clear),
        (
            OldOp::Incr {
                key: "a".into(),
                by: -3,
            },
            Op::Incr {
                key: "a".into(),
                by: -3,
            },
        ),
    ];
    for (old, new) in olds {
        let bytes = postcard::to_allocvec(&old).unwrap();
        assert_eq!(postcard::from_bytes::<Op>(&bytes).unwrap(), new);
        assert_eq!(postcard::to_allocvec(&new).unwrap(), bytes);
    }
    let replies = vec![
        (
            OldReply::Value(Some("v".into())),
            Reply::Value(Some("v".into())),
        ),
        (OldReply::Value(None), Reply::Value(None)),
        (OldReply::Existed(true), Reply::Existed(true)),
        (
            OldReply::Pairs(vec![("a".into(), "b".into())]),
            Reply::Pairs(vec![("a".into(), "b".into())]),
        ),
        (OldReply::Cleared, Reply::Cleared),
        (OldReply::Counter(Ok(5)), Reply::Counter(Ok(5))),
        (
            OldReply::Counter(Err(diskv::op::CounterError::Overflow)),
            Reply::Counter(Err(diskv::op::CounterError::Overflow)),
        ),
    ];
    for (old, new) in replies {
        let bytes = postcard::to_allocvec(&old).unwrap();
        assert_eq!(postcard::from_bytes::<Reply>(&bytes).unwrap(), new);
        assert_eq!(postcard::to_allocvec(&new).unwrap(), bytes);
    }
    // New variants are unknown to old decoders (an old replica refuses them
    // instead of misreading them).
    for new in [
        Op::PutIf {
            key: "a".into(),
            value: "b".into(),
            when: Presence::Absent,
        },
        Op::Take { key: "a".into() },
        Op::AppendLen {
            key: "a".into(),
            value: "b".into(),
        },
        Op::Keys {
            start: "a".into(),
            limit: 3,
        },
    ] {
        let bytes = postcard::to_allocvec(&new).unwrap();
        assert!(postcard::from_bytes::<OldOp>(&bytes).is_err(), "{new:?}");
    }
}

/// A shard holding more than the log's command limit (32 MiB, paxos
/// MAX_COMMAND_BYTES) cannot move: the new owner's InstallShard carries the
/// whole shard in one log command, the proposal is refused (CommandTooLarge)
/// and retried forever, and the shard stays "Pulling": every operation on it
/// answers ShardMoving for good. The attack built such a shard with APPENDs
/// growing one value to 36 MiB, which is refused now (values stay within 16
/// MiB); three 12 MiB values in one shard still do it. (Takes about 70 s.)
#[ignore = "open (docs/attacks/new-ops.md finding 1, second half): shards are installed in one log command; moving them in chunks is not done"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_appended_value_past_the_command_limit_wedges_shard_migration() {
    diskv_testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (_m, maddrs) = masters(dir.path(), 1, 10).await;
    let _g1 = Group::start(dir.path(), 1, 1, &maddrs, true).await;
    let mut ck = Clerk::new(maddrs.clone()).await;
    // Three values of 12 MiB in one shard: 36 MiB, each request within every limit.
    let shard = shardmaster::shard_of(b"big", 10);
    let keys: Vec<String> = (0..)
        .map(|i| format!("big{i}"))
        .filter(|k| shardmaster::shard_of(k.as_bytes(), 10) == shard)
        .take(3)
        .collect();
    let piece = "y".repeat(12 << 20);
    for key in &keys {
        ck.execute(Op::Put {
            key: key.clone(),
            value: piece.clone(),
        })
        .await
        .expect("put");
    }
    let _g2 = Group::start(dir.path(), 2, 1, &maddrs, true).await;
    let admin = MasterClerk::new(maddrs.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    admin.move_shard(shard, 2).await.expect("move");
    let cfg = admin.query(ConfigNum::Latest).await.expect("config");
    assert_eq!(cfg.shards[shard], 2, "the move took");
    // Give group 1 time to apply the move (it then answers WrongGroup) and
    // group 2 time to pull the shard.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut ck = Clerk::new(maddrs.clone()).await;
    let got = tokio::time::timeout(
        Duration::from_secs(60),
        ck.execute(Op::Get {
            key: keys[0].clone(),
        }),
    )
    .await;
    match got {
        Ok(Ok(Reply::Value(Some(v)))) => assert_eq!(v.len(), 12 << 20),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(_) => panic!(
            "the shard holding 36 MiB (three values of 12 MiB) never reached its new owner: a Get \
             of it did not finish within 60 s of the move"
        ),
    }
}
