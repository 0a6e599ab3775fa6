//! One peer message as the network delivers it: the transport's postcard
//! deserializer (`paxos::transport::Postcard`, which also refuses trailing bytes)
//! into an [`Envelope`], which must round-trip; then, as the driver does,
//! `core::Replica::handle` of a replica addressed by it, and `take_ready`.

use crate::targets::{frame, round_trips};
use bytes::BytesMut;
use paxos::core::{CoreConfig, Membership, Replica};
use paxos::transport::Postcard;
use paxos::{Ballot, Entry, Envelope, Message, PromisedSlot};
use std::pin::Pin;
use tokio_serde::{Deserializer, Serializer};

/// Decodes `data` as an envelope; one that decodes must round-trip.
pub fn target(data: &[u8]) {
    let decoded: std::io::Result<Envelope> =
        Pin::new(&mut Postcard).deserialize(&BytesMut::from(data));
    if let Ok(env) = decoded {
        round_trips(&env);
        let mut replica = Replica::new(CoreConfig::new(env.to % 3, 3));
        replica.handle(env);
        let _ = replica.take_ready();
    }
}

/// Every message kind.
pub(crate) fn messages() -> Vec<Message> {
    let b = Ballot::of(5, 1, 2);
    let entry = Entry::batch([b"put a 1".to_vec(), b"append a 2".to_vec()]);
    let membership = match frame::records().pop() {
        Some(paxos::Record::Membership(m)) => m,
        _ => Membership::initial(3),
    };
    vec![
        Message::Prepare {
            ballot: b,
            from_slot: 10,
        },
        Message::Promise {
            ballot: b,
            accepted: vec![PromisedSlot {
                slot: 10,
                ballot: Ballot::new(4, 0),
                entry: entry.clone(),
                decided: true,
            }],
            floor: 3,
            incarnation: 1,
        },
        Message::Accept {
            ballot: b,
            slot: 11,
            entry: entry.clone(),
            commit: 10,
        },
        Message::Accepted {
            ballot: b,
            slot: 11,
            incarnation: 0,
        },
        Message::Reject {
            ballot: b,
            promised: Ballot::new(9, 0),
        },
        Message::Heartbeat {
            ballot: b,
            commit: 12,
            round: 99,
            done: vec![1, 2, 3],
        },
        Message::HeartbeatAck {
            ballot: b,
            round: 99,
            commit: 12,
            done: 2,
            incarnation: Some(1),
        },
        Message::Decided {
            entries: vec![(1, Entry::Noop), (2, entry.clone())],
            floor: 1,
        },
        Message::Forward {
            commands: vec![paxos::Command::from_static(b"x"), paxos::Command::new()],
        },
        Message::Reincarnate {
            nonce: 4,
            replaces: 0,
        },
        Message::ForwardStart { slot: 20, entry },
        Message::Membership {
            membership,
            commit: 40,
        },
        Message::MembershipAsk,
        Message::PreVote { attempt: 310 },
        Message::PreVoteGrant { attempt: 310 },
    ]
}

/// The envelopes of [`messages`].
pub(crate) fn envelopes() -> Vec<Envelope> {
    messages()
        .into_iter()
        .enumerate()
        .map(|(i, msg)| Envelope {
            from: i % 3,
            to: (i + 1) % 3,
            msg,
        })
        .collect()
}

/// One envelope of each message kind, encoded by the transport's serializer.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    envelopes()
        .iter()
        .map(|env| {
            let bytes = Pin::new(&mut Postcard)
                .serialize(env)
                .expect("seed envelopes encode");
            (env.msg.kind().to_string(), bytes.to_vec())
        })
        .collect()
}
