//! What travels on the simulated network.

use diskv::rpc::GroupSnapshot;
use diskv::{KvError, Reply, Request};
use paxos::probe::Answer;
use paxos::{Envelope, Slot};

/// One message between endpoints.
#[derive(Clone, Debug)]
pub enum Packet {
    /// Paxos traffic within a group.
    Paxos(Envelope),
    /// A client's request to a replica.
    Request {
        /// The request.
        req: Request,
    },
    /// A replica's answer to a client.
    Reply {
        /// The answering replica.
        from: usize,
        /// The request's sequence number.
        seq: u64,
        /// The shard it was addressed to.
        shard: usize,
        /// The result.
        result: Result<Reply, KvError>,
    },
    /// "Has this group a history?" from a replica with an empty disk or one that
    /// recovers (see `paxos::probe`).
    Probe {
        /// The asking replica.
        from: usize,
        /// Its round of questions.
        round: u64,
    },
    /// The answer to a [`Packet::Probe`].
    ProbeAnswer {
        /// The answering replica.
        from: usize,
        /// The round asked.
        round: u64,
        /// The answer.
        answer: Answer,
    },
    /// A recovering replica asks a voting peer for a snapshot covering `floor`.
    SnapshotAsk {
        /// The asking replica.
        from: usize,
        /// The instance the snapshot must cover.
        floor: Slot,
    },
    /// A snapshot (linearizable: taken after a read index), or why not.
    SnapshotGive {
        /// The giving replica.
        from: usize,
        /// The snapshot.
        snap: Result<Box<GroupSnapshot>, KvError>,
    },
}

impl Packet {
    /// A short name, for traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::Paxos(env) => env.msg.kind(),
            Packet::Request { .. } => "request",
            Packet::Reply { .. } => "reply",
            Packet::Probe { .. } => "probe",
            Packet::ProbeAnswer { .. } => "probe_answer",
            Packet::SnapshotAsk { .. } => "snapshot_ask",
            Packet::SnapshotGive { .. } => "snapshot_give",
        }
    }
}
