//! Applying operations: a shard's requests only once its configuration
//! arrives, configurations in order, and every operation — read-modify-writes
//! included — applied once however often it is retried.

use super::*;

#[test]
fn requests_for_unowned_shards_are_refused_until_the_config_arrives() {
    let mut st = KvState::in_memory(1, NSHARDS);
    let out = st.apply(0, append(9, 1, "k", "x"));
    assert!(matches!(out, Err(KvError::WrongGroup { .. })), "{out:?}");
    st.apply(
        1,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    assert_eq!(
        st.apply(2, append(9, 1, "k", "x")),
        Ok(Reply::Existed(false))
    );
}

fn incr(client: u64, seq: u64, key: &str, by: i64) -> KvCommand {
    req(
        client,
        seq,
        key,
        Op::Incr {
            key: key.into(),
            by,
        },
    )
}

/// Redis INCR as one replicated step: a retry gets the first answer from the
/// duplicate table (not a second increment), a refusal changes nothing, and an
/// overflow is refused.
#[test]
fn a_retried_incr_is_applied_once_and_answered_the_same() {
    let mut st = KvState::in_memory(1, NSHARDS);
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    assert_eq!(st.apply(1, incr(9, 1, "n", 5)), Ok(Reply::Counter(Ok(5))));
    assert_eq!(st.apply(2, incr(9, 1, "n", 5)), Ok(Reply::Counter(Ok(5))));
    assert_eq!(st.apply(3, incr(7, 1, "n", -2)), Ok(Reply::Counter(Ok(3))));
    assert_eq!(get(&st, "n").as_deref(), Some("3"));
    st.apply(4, append(9, 2, "n", "x")).unwrap();
    assert_eq!(
        st.apply(5, incr(9, 3, "n", 1)),
        Ok(Reply::Counter(Err(CounterError::NotAnInteger)))
    );
    assert_eq!(
        get(&st, "n").as_deref(),
        Some("3x"),
        "a refusal changes nothing"
    );
    st.apply(
        6,
        req(
            9,
            4,
            "m",
            Op::Put {
                key: "m".into(),
                value: i64::MAX.to_string(),
            },
        ),
    )
    .unwrap();
    assert_eq!(
        st.apply(7, incr(9, 5, "m", 1)),
        Ok(Reply::Counter(Err(CounterError::Overflow)))
    );
}

#[test]
fn a_retried_append_is_applied_once_and_answered_the_same() {
    let mut st = KvState::in_memory(1, NSHARDS);
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    assert_eq!(
        st.apply(1, append(9, 1, "k", "x")),
        Ok(Reply::Existed(false))
    );
    assert_eq!(
        st.apply(2, append(9, 1, "k", "x")),
        Ok(Reply::Existed(false))
    );
    assert_eq!(
        st.apply(3, append(9, 2, "k", "y")),
        Ok(Reply::Existed(true))
    );
    assert_eq!(
        st.apply(4, append(9, 1, "k", "x")),
        Err(KvError::Timeout),
        "a stale retry must not apply"
    );
    assert_eq!(get(&st, "k").as_deref(), Some("xy"));
}

#[test]
fn configs_apply_in_order_only() {
    let mut st = KvState::in_memory(1, NSHARDS);
    assert!(st
        .apply(
            0,
            KvCommand::Reconfigure {
                config: owning_config(1, 2)
            }
        )
        .is_err());
    assert_eq!(st.config().num, 0);
    st.apply(
        1,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    assert_eq!(st.config().num, 1);
}

/// SETNX / SET NX|XX, GETDEL and APPEND's length are single replicated steps: a
/// retry (same client and seq) is answered from the duplicate table with the
/// first application's reply, and the second application changes nothing.
#[test]
fn conditional_puts_takes_and_counted_appends_apply_once() {
    let mut st = KvState::in_memory(1, NSHARDS);
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    let put_if = |seq, value: &str, when| {
        req(
            9,
            seq,
            "k",
            Op::PutIf {
                key: "k".into(),
                value: value.into(),
                when,
            },
        )
    };
    use crate::op::Presence::{Absent, Present};
    assert_eq!(st.apply(1, put_if(1, "a", Present)), Ok(Reply::Value(None)));
    assert_eq!(get(&st, "k"), None, "XX on a missing key writes nothing");
    assert_eq!(st.apply(2, put_if(2, "a", Absent)), Ok(Reply::Value(None)));
    assert_eq!(
        st.apply(3, put_if(2, "a", Absent)),
        Ok(Reply::Value(None)),
        "retry"
    );
    assert_eq!(
        st.apply(4, put_if(3, "b", Absent)),
        Ok(Reply::Value(Some("a".into())))
    );
    assert_eq!(
        get(&st, "k").as_deref(),
        Some("a"),
        "NX on an existing key writes nothing"
    );
    let append = |seq| {
        req(
            9,
            seq,
            "k",
            Op::AppendLen {
                key: "k".into(),
                value: "xy".into(),
            },
        )
    };
    assert_eq!(st.apply(5, append(4)), Ok(Reply::Length(3)));
    assert_eq!(st.apply(6, append(4)), Ok(Reply::Length(3)), "retry");
    assert_eq!(get(&st, "k").as_deref(), Some("axy"));
    let take = |seq| req(9, seq, "k", Op::Take { key: "k".into() });
    assert_eq!(st.apply(7, take(5)), Ok(Reply::Value(Some("axy".into()))));
    assert_eq!(
        st.apply(8, take(5)),
        Ok(Reply::Value(Some("axy".into()))),
        "retry"
    );
    assert_eq!(get(&st, "k"), None);
    assert_eq!(st.apply(9, take(6)), Ok(Reply::Value(None)));
}

/// A backup reads a shard only from a group at exactly the backup's
/// configuration: behind it, the group says to wait; past it, it names its
/// newer configuration, so the backup starts again there.
#[test]
fn a_shard_is_read_for_a_backup_only_at_its_configuration() {
    let mut st = KvState::in_memory(1, NSHARDS);
    let shard = shardmaster::shard_of(b"k", NSHARDS);
    assert_eq!(
        st.shard_at(1, shard),
        Err(KvError::ShardMoving { shard }),
        "not at configuration 1 yet"
    );
    for num in 1..=2 {
        let config = owning_config(1, num);
        st.apply(num, KvCommand::Reconfigure { config }).unwrap();
        if num == 1 {
            st.apply(10, append(9, 1, "k", "x")).unwrap();
            let data = st.shard_at(1, shard).unwrap();
            assert_eq!(data.get("k").map(Value::as_str), Some("x"));
        }
    }
    assert_eq!(
        st.shard_at(1, shard),
        Err(KvError::WrongGroup { shard, config: 2 })
    );
    assert!(st.shard_at(2, shard).is_ok());
    assert!(matches!(st.shard_at(2, NSHARDS), Err(KvError::Invalid(_))));
}
