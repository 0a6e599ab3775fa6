//! The command inside a decided entry, as the state machines read it from the log
//! or from a peer: `paxos::rsm::decode` into a `diskv::KvCommand` (mode byte even)
//! or a `shardmaster::OpRequest` (odd). One that decodes must re-encode to the
//! same bytes.

use crate::targets::{mode, reencodes, with_mode};
use diskv::KvCommand;
use paxos::rsm::{decode, encode, Origin};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decodes `data` as the command type its mode byte picks.
pub fn target(data: &[u8]) {
    let (m, rest) = mode(data);
    if m % 2 == 0 {
        check::<KvCommand>(rest);
    } else {
        check::<shardmaster::OpRequest>(rest);
    }
}

fn check<C: Serialize + DeserializeOwned>(bytes: &[u8]) {
    if let Ok((origin, cmd)) = decode::<C>(bytes) {
        reencodes(&cmd);
        let again = encode(origin, &cmd).expect("a decoded command encodes");
        let (o2, c2) = decode::<C>(&again).expect("a re-encoded command decodes");
        assert_eq!(o2, origin);
        assert_eq!(encode(o2, &c2).ok(), Some(again), "encode(decode(x)) != x");
    }
}

/// Commands of every kind, tagged as the log holds them.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let origin = Origin {
        replica: 1,
        nonce: 0xdead_beef,
        id: 42,
    };
    let mut config = shardmaster::Config::initial(10);
    config.num = 3;
    config.shards = vec![100, 100, 101, 0, 0, 0, 0, 0, 0, 101];
    config.groups.insert(100, vec!["127.0.0.1:7001".into()]);
    config.groups.insert(101, vec!["127.0.0.1:7101".into()]);
    let mut dups = diskv::dedup::DupTable::default();
    dups.record(7, 3, diskv::Reply::Value(Some("old".into())), 1000);
    let kv = [
        KvCommand::Op {
            req: diskv::Request {
                client: 7,
                seq: 3,
                shard: 2,
                op: diskv::Op::Append {
                    key: "k".into(),
                    value: "tail".into(),
                },
            },
            at_ms: 12345,
        },
        KvCommand::Reconfigure { config },
        KvCommand::InstallShard {
            config: 3,
            shard: 2,
            data: [("a".to_string(), "1".to_string())].into(),
            dups,
        },
        KvCommand::DeleteShard {
            config: 4,
            shard: 2,
        },
    ];
    let sm = [
        shardmaster::OpRequest {
            client: 1,
            seq: 1,
            op: shardmaster::Op::Join {
                gid: 100,
                servers: vec!["a:1".into(), "b:2".into()],
            },
        },
        shardmaster::OpRequest {
            client: 1,
            seq: 2,
            op: shardmaster::Op::Move { shard: 3, gid: 100 },
        },
        shardmaster::OpRequest {
            client: 1,
            seq: 3,
            op: shardmaster::Op::Leave { gid: 100 },
        },
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = kv
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                format!("kv-{i}"),
                with_mode(0, &encode(origin, c).expect("encodes")),
            )
        })
        .collect();
    seeds.extend(sm.iter().enumerate().map(|(i, c)| {
        (
            format!("sm-{i}"),
            with_mode(1, &encode(origin, c).expect("encodes")),
        )
    }));
    seeds
}
