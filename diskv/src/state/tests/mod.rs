//! Tests of the state machine and its checkpoints, by topic; the helpers they
//! share are here.

mod batch;
mod batch_replies;
mod checkpoints;
mod expiry;
mod ops;
mod snapshots;

use super::{KvCommand, KvState, Value};
use crate::op::{CounterError, KvError, Op, Reply, Request};
use crate::state::checkpoint::{CheckpointRecord, DiskStore};
use paxos::rsm::StateMachine;
use shardmaster::Config;
use std::collections::BTreeMap;

const NSHARDS: usize = 4;

fn owning_config(gid: u64, num: u64) -> Config {
    let mut c = Config::initial(NSHARDS);
    c.num = num;
    c.shards = vec![gid; NSHARDS];
    c.groups.insert(gid, vec!["127.0.0.1:1".into()]);
    c
}

fn req(client: u64, seq: u64, key: &str, op: Op) -> KvCommand {
    KvCommand::Op {
        req: Request {
            client,
            seq,
            shard: shardmaster::shard_of(key.as_bytes(), NSHARDS),
            op,
        },
        at_ms: 1,
    }
}

fn append(client: u64, seq: u64, key: &str, v: &str) -> KvCommand {
    req(
        client,
        seq,
        key,
        Op::Append {
            key: key.into(),
            value: v.into(),
        },
    )
}

fn get(st: &KvState, key: &str) -> Option<String> {
    let r = Request {
        client: 0,
        seq: 0,
        shard: shardmaster::shard_of(key.as_bytes(), NSHARDS),
        op: Op::Get { key: key.into() },
    };
    match st.read(&r) {
        Ok(Reply::Value(v)) => v,
        other => panic!("get {key}: {other:?}"),
    }
}

fn config_of(num: u64, owner: u64) -> Config {
    let mut c = owning_config(owner, num);
    c.groups.insert(1, vec!["127.0.0.1:1".into()]);
    c.groups.insert(2, vec!["127.0.0.1:2".into()]);
    c
}

/// A batch of `ops` from `client`, each with its key's shard.
fn batch_of(client: u64, seq: u64, ops: Vec<Op>) -> crate::batch::Batch {
    crate::batch::Batch {
        client,
        seq,
        ops: ops
            .into_iter()
            .map(|op| {
                (
                    shardmaster::shard_of(op.key().unwrap_or_default().as_bytes(), NSHARDS),
                    op,
                )
            })
            .collect(),
    }
}

/// An in-memory state of group `gid` that applied configuration 1 (group 1
/// owns every shard).
fn started(gid: u64) -> KvState {
    let mut st = KvState::in_memory(gid, NSHARDS);
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: config_of(1, 1),
        },
    )
    .unwrap();
    st
}
