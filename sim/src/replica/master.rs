//! The shardmaster's service: its directory is opened by `shardmaster::recovery`
//! and `shardmaster::server::open_machine` (cluster record, checkpoint), and every
//! request — Query included — goes through the log from whichever replica
//! received it, as the shardmaster's RPC handler does (a follower forwards the
//! command to the leader).

use super::service::{Admit, Opened, Output, Refused, Service};
use super::Io;
use crate::clock::{Time, MS};
use crate::packet::{ClientReply, ClientRequest, MasterCall, Packet, Snapshot};
use paxos::core::{Membership, Replica};
use paxos::fs::{FileSystem, SharedFs};
use paxos::{NodeId, Slot};
use shardmaster::persist::{ClusterRecord, LOCK_FILE};
use shardmaster::recovery;
use shardmaster::rpc::MachineSnapshot;
use shardmaster::server::open_machine;
use shardmaster::{OpResult, ServerOptions, ShardmasterError, ShardmasterMachine};
use std::path::Path;

/// One replica of the shardmaster.
pub struct Shardmaster {
    /// The replica's options, as `diskv shardmaster` would get them (`--shards`
    /// given, so a lost replica need not ask its peers for the count).
    opts: ServerOptions,
    /// Shards in the cluster.
    nshards: usize,
}

impl Shardmaster {
    /// Replica `me` of `peers` in a cluster of `nshards` shards, checkpointing at
    /// the latest every `checkpoint_every` instances.
    pub fn new(me: NodeId, peers: usize, nshards: usize, checkpoint_every: u64) -> Self {
        let addrs = (0..peers).map(|i| format!("sim:g0r{i}")).collect();
        let mut opts = ServerOptions::new(super::DATA, me, addrs);
        opts.nshards = Some(nshards);
        opts.checkpoint_every = checkpoint_every;
        Shardmaster { opts, nshards }
    }

    fn machine(&self, fs: &SharedFs, opened: recovery::Opened) -> Result<Opened<Self>, Refused> {
        let record = opened.cluster;
        let (state, applied) = open_machine(fs.clone(), &self.opts, opened).map_err(refused)?;
        Ok(Opened {
            record,
            state,
            applied,
        })
    }
}

fn refused(e: ShardmasterError) -> Refused {
    match e {
        ShardmasterError::CorruptFile { .. } => Refused::Damaged(e.to_string()),
        other => Refused::Failed(other.to_string()),
    }
}

impl Service for Shardmaster {
    type State = ShardmasterMachine;
    type Record = ClusterRecord;
    type Snapshot = MachineSnapshot;
    type Request = MasterCall;
    type Response = Result<OpResult, ShardmasterError>;
    type Front = ();

    /// `ServerOptions::op_timeout`'s default.
    const REQUEST_TIMEOUT: Time = 1_000 * MS;
    const KEEP: &'static [&'static str] = &[LOCK_FILE];

    fn inspect(&self, fs: &SharedFs, dir: &Path) -> Result<Option<Opened<Self>>, Refused> {
        debug_assert_eq!(dir, self.opts.dir);
        match recovery::open_known(fs, &self.opts).map_err(refused)? {
            Some(opened) => self.machine(fs, opened).map(Some),
            None => Ok(None),
        }
    }

    fn create(
        &self,
        fs: &SharedFs,
        dir: &Path,
        recovering: Option<u64>,
    ) -> Result<Opened<Self>, String> {
        debug_assert_eq!(dir, self.opts.dir);
        let opened = match recovering {
            Some(nonce) => recovery::create_lost(fs, &self.opts, self.nshards, nonce),
            None => recovery::create_fresh(fs, &self.opts),
        }
        .map_err(|e| e.to_string())?;
        self.machine(fs, opened).map_err(|e| format!("{e:?}"))
    }

    fn recovering(record: &ClusterRecord) -> Option<u64> {
        record.recovering
    }

    fn recovered(
        &self,
        fs: &dyn FileSystem,
        dir: &Path,
        record: &mut ClusterRecord,
        _incarnation: u64,
    ) -> Result<(), String> {
        *record = recovery::finish_recovery(fs, dir, record).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn digest(state: &ShardmasterMachine) -> u64 {
        state.digest()
    }

    fn observe(state: &ShardmasterMachine, io: &mut Io<'_>) {
        if let Err(e) = io.configs.saw(io.node, state.store()) {
            io.violation(e);
        }
    }

    fn snapshot(
        state: &ShardmasterMachine,
        applied: Slot,
        membership: Membership,
    ) -> MachineSnapshot {
        state.snapshot(applied, membership)
    }

    fn covers(snap: &MachineSnapshot) -> (Slot, &Membership) {
        (snap.applied, &snap.membership)
    }

    fn install(state: &mut ShardmasterMachine, snap: &MachineSnapshot) -> Result<(), String> {
        state.replace_with(snap).map_err(|e| e.to_string())
    }

    /// As the RPC handler: refuse what no state can make valid, propose the rest
    /// (from any replica).
    fn admit(
        &self,
        _front: &mut (),
        _core: &Replica,
        _state: &ShardmasterMachine,
        call: &MasterCall,
        _monotonic_ms: u64,
    ) -> Admit<Self> {
        match call.req.check(self.nshards) {
            Ok(()) => Admit::Propose(call.req.clone()),
            Err(e) => Admit::Answer(Err(e)),
        }
    }

    fn read(_state: &ShardmasterMachine, _call: &MasterCall) -> Self::Response {
        Err(ShardmasterError::Unavailable {
            reason: "the shardmaster serves no read outside the log".into(),
        })
    }

    fn answer(output: Output<Self>) -> Self::Response {
        output
    }

    fn not_leader(_leader: Option<NodeId>) -> Self::Response {
        Self::unavailable("not the leader".into())
    }

    fn timed_out() -> Self::Response {
        Self::unavailable(format!(
            "not decided within {} ms: no leader, or no majority reachable",
            Self::REQUEST_TIMEOUT / MS
        ))
    }

    fn unavailable(reason: String) -> Self::Response {
        Err(ShardmasterError::Unavailable { reason })
    }

    fn reply(from: NodeId, call: &MasterCall, result: Self::Response) -> Packet {
        Packet::Reply {
            from,
            reply: ClientReply::Master {
                tag: call.tag,
                result,
            },
        }
    }

    fn request_of(req: ClientRequest) -> Option<MasterCall> {
        match req {
            ClientRequest::Master(call) => Some(call),
            ClientRequest::Kv(_) => None,
        }
    }

    fn wrap(snap: MachineSnapshot) -> Snapshot {
        Snapshot::Master(Box::new(snap))
    }

    fn unwrap(snap: Snapshot) -> Option<MachineSnapshot> {
        match snap {
            Snapshot::Master(s) => Some(*s),
            Snapshot::Kv(_) => None,
        }
    }
}
