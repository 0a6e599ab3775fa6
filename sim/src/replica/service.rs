//! What differs between the services a simulated replica can run — the KV group
//! ([`super::kv::Kv`]) and the shardmaster ([`super::master::Shardmaster`]).
//!
//! Everything else — probing, opening and quarantining the directory, the Paxos
//! driver and its durability, the apply loop, checkpoint jobs, disk-loss
//! recovery, snapshot transfer — is one code path ([`super::Machine`],
//! [`super::Running`]) over this trait. Implementations call the product crates'
//! own functions (`diskv::disk`, `shardmaster::recovery`, the state machines'
//! `snapshot` / `replace_with` / `digest`), never a copy of them.

use super::{Io, Running};
use crate::clock::Time;
use crate::packet::{ClientRequest, Packet, Snapshot};
use paxos::core::{Membership, Replica};
use paxos::fs::{FileSystem, SharedFs};
use paxos::rsm::StateMachine;
use paxos::{NodeId, Slot};
use std::fmt::Debug;
use std::path::Path;

/// The command type of a service's state machine.
pub type Command<S> = <<S as Service>::State as StateMachine>::Command;
/// The output type of a service's state machine.
pub type Output<S> = <<S as Service>::State as StateMachine>::Output;

/// A directory opened: its record, the state machine and the first instance the
/// state does not cover.
pub struct Opened<S: Service> {
    /// The identity (KV) or cluster record (shardmaster).
    pub record: S::Record,
    /// The state machine, loaded from its checkpoint.
    pub state: S::State,
    /// Every instance below this is in `state`.
    pub applied: Slot,
}

/// Why a directory could not be opened.
#[derive(Debug)]
pub enum Refused {
    /// Damaged state: quarantine it and recover like a lost disk.
    Damaged(String),
    /// Anything else (an I/O error, a full disk).
    Failed(String),
}

/// What a replica does with a client request.
pub enum Admit<S: Service> {
    /// Answer at once (not the leader, an invalid request).
    Answer(S::Response),
    /// A linearizable read: serve it once a read index is applied.
    Read,
    /// Propose this command and answer with its output.
    Propose(Command<S>),
}

/// One service a replica group can run.
pub trait Service: Sized + 'static {
    /// The replicated state machine.
    type State: StateMachine;
    /// The directory's record of who the replica is (and whether it recovers).
    type Record: Clone + Debug;
    /// A whole state handed to a peer that needs it.
    type Snapshot: Clone + Debug;
    /// A client request as it arrives.
    type Request: Clone + Debug;
    /// The answer to a client.
    type Response: Debug;
    /// Per-process state of the request path (the KV log clock).
    type Front: Default;

    /// How long a request may wait for its instance or read index.
    const REQUEST_TIMEOUT: Time;
    /// Files quarantine leaves in place.
    const KEEP: &'static [&'static str];

    // ---- the directory ----

    /// The directory of a replica that ran: `None` if it holds nothing (new, or
    /// lost).
    fn inspect(&self, fs: &SharedFs, dir: &Path) -> Result<Option<Opened<Self>>, Refused>;

    /// Makes `dir` a new replica's directory, marked `recovering` with that nonce
    /// if it replaces a lost one.
    fn create(
        &self,
        fs: &SharedFs,
        dir: &Path,
        recovering: Option<u64>,
    ) -> Result<Opened<Self>, String>;

    /// The recovery nonce the record carries, while it recovers.
    fn recovering(record: &Self::Record) -> Option<u64>;

    /// Recovery is over: the replica votes at `incarnation`; the record says so.
    fn recovered(
        &self,
        fs: &dyn FileSystem,
        dir: &Path,
        record: &mut Self::Record,
        incarnation: u64,
    ) -> Result<(), String>;

    // ---- the state machine ----

    /// A digest of the replicated state (equal for equal applied prefixes).
    fn digest(state: &Self::State) -> u64;

    /// Reports what the checks follow of the state besides its digest (the
    /// shardmaster's configurations), each time it moves.
    fn observe(state: &Self::State, io: &mut Io<'_>) {
        let _ = (state, io);
    }

    /// The state for a peer, covering every instance below `applied`.
    fn snapshot(state: &Self::State, applied: Slot, membership: Membership) -> Self::Snapshot;

    /// The instance a snapshot covers and the membership it carries.
    fn covers(snap: &Self::Snapshot) -> (Slot, &Membership);

    /// Replaces the state with a peer's, durably (all or nothing).
    fn install(state: &mut Self::State, snap: &Self::Snapshot) -> Result<(), String>;

    // ---- the service ----

    /// What to do with a client request at this replica now.
    fn admit(
        &self,
        front: &mut Self::Front,
        core: &Replica,
        state: &Self::State,
        req: &Self::Request,
        monotonic_ms: u64,
    ) -> Admit<Self>;

    /// Serves a read once its index is applied.
    fn read(state: &Self::State, req: &Self::Request) -> Self::Response;

    /// The answer carrying a proposed command's output.
    fn answer(output: Output<Self>) -> Self::Response;

    /// The answer to a read admitted while this replica led, which it no longer
    /// does.
    fn not_leader(leader: Option<NodeId>) -> Self::Response;

    /// The answer to a request that waited too long.
    fn timed_out() -> Self::Response;

    /// The answer of a replica whose storage failed.
    fn unavailable(why: String) -> Self::Response;

    /// The reply packet to `req`.
    fn reply(from: NodeId, req: &Self::Request, response: Self::Response) -> Packet;

    /// The request a client packet carries, if it is for this service.
    fn request_of(req: ClientRequest) -> Option<Self::Request>;

    /// Wraps a snapshot for the network.
    fn wrap(snap: Self::Snapshot) -> Snapshot;

    /// Unwraps a snapshot from the network, if it is this service's.
    fn unwrap(snap: Snapshot) -> Option<Self::Snapshot>;

    /// The service's own duties on each tick of a running replica (the KV
    /// leader's reconfiguration).
    fn duties(&mut self, io: &mut Io<'_>, running: &mut Running<Self>) {
        let _ = (io, running);
    }
}
