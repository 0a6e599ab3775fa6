//! What travels on the simulated network.

use diskv::rpc::GroupSnapshot;
use diskv::{Batch, KvError, Reply, Request};
use paxos::probe::Answer;
use paxos::{Envelope, Slot};
use shardmaster::rpc::MachineSnapshot;
use shardmaster::{OpRequest, OpResult, ShardmasterError};

/// A client's request, to the service it is for.
#[derive(Clone, Debug)]
pub enum ClientRequest {
    /// To a KV replica.
    Kv(KvCall),
    /// To a shardmaster replica.
    Master(MasterCall),
}

/// One attempt of a KV client: one operation, or a batch of them (as
/// `Clerk::execute_batch` sends through `KvRpc::execute_batch`).
#[derive(Clone, Debug)]
pub enum KvCall {
    /// One operation.
    One(Request),
    /// A batch, or one part of a batch split on a retry (same sequence
    /// number). `part` numbers the parts of one batch from 1 and comes back
    /// in the reply, as an RPC's request id would: a late answer to another
    /// part carries the same sequence number.
    Many {
        /// The batch (or part).
        batch: Batch,
        /// Which part of the client's batch it is.
        part: u32,
    },
}

impl KvCall {
    /// The client's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            KvCall::One(req) => req.seq,
            KvCall::Many { batch, .. } => batch.seq,
        }
    }

    /// The shard it is addressed to (a batch's first operation's).
    pub fn shard(&self) -> usize {
        match self {
            KvCall::One(req) => req.shard,
            KvCall::Many { batch, .. } => batch.ops.first().map_or(0, |(shard, _)| *shard),
        }
    }

    /// The part tag: 0 for one operation.
    pub fn part(&self) -> u32 {
        match self {
            KvCall::One(_) => 0,
            KvCall::Many { part, .. } => *part,
        }
    }
}

/// One attempt of a shardmaster client's operation.
#[derive(Clone, Debug)]
pub struct MasterCall {
    /// The request (the same for every attempt of one operation).
    pub req: OpRequest,
    /// The client's number for the operation, echoed in the reply (an RPC's
    /// request id: Queries all carry seq 0).
    pub tag: u64,
}

/// A replica's answer to a client.
#[derive(Clone, Debug)]
pub enum ClientReply {
    /// From a KV replica.
    Kv {
        /// The request's sequence number.
        seq: u64,
        /// The shard it was addressed to.
        shard: usize,
        /// The batch part it answers ([`KvCall::part`]; 0 for one operation).
        part: u32,
        /// The result.
        result: Result<Reply, KvError>,
    },
    /// From a shardmaster replica.
    Master {
        /// The operation's tag ([`MasterCall::tag`]).
        tag: u64,
        /// The result.
        result: Result<OpResult, ShardmasterError>,
    },
}

/// A whole state for a peer, of either service.
#[derive(Clone, Debug)]
pub enum Snapshot {
    /// A KV group's.
    Kv(Box<GroupSnapshot>),
    /// The shardmaster's.
    Master(Box<MachineSnapshot>),
}

/// One message between endpoints.
#[derive(Clone, Debug)]
pub enum Packet {
    /// Paxos traffic within a group.
    Paxos(Envelope),
    /// A client's request to a replica.
    Request(ClientRequest),
    /// A replica's answer to a client.
    Reply {
        /// The answering replica.
        from: usize,
        /// The answer.
        reply: ClientReply,
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
    /// A snapshot (linearizable: taken after a read index), or `None` if the
    /// peer cannot give one (not the leader).
    SnapshotGive {
        /// The giving replica.
        from: usize,
        /// The snapshot.
        snap: Option<Snapshot>,
    },
}

impl Packet {
    /// A short name, for traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::Paxos(env) => env.msg.kind(),
            Packet::Request(_) => "request",
            Packet::Reply { .. } => "reply",
            Packet::Probe { .. } => "probe",
            Packet::ProbeAnswer { .. } => "probe_answer",
            Packet::SnapshotAsk { .. } => "snapshot_ask",
            Packet::SnapshotGive { .. } => "snapshot_give",
        }
    }
}
