//! The KV group's service: its directory is opened by `diskv::disk` (identity,
//! checkpoint and key files), requests are handled as `KvService` does (leader
//! only; reads by read index, writes stamped with the log clock), and its leader
//! moves the group to its configuration.

use super::service::{Admit, Opened, Output, Refused, Service};
use super::{Io, Running};
use crate::clock::{Time, MS};
use crate::packet::{ClientReply, ClientRequest, KvCall, Packet, Snapshot};
use diskv::identity::Identity;
use diskv::logclock::LogClock;
use diskv::rpc::GroupSnapshot;
use diskv::{KvCommand, KvError, KvState, ServerOptions, StateError};
use paxos::core::{Membership, Replica};
use paxos::fs::{FileSystem, SharedFs};
use paxos::{NodeId, Slot};
use shardmaster::Config;
use std::path::Path;

/// The shardmaster addresses a simulated KV replica's identity names.
const MASTERS: &str = "sim:master";

/// One replica of a KV group.
pub struct Kv {
    /// The replica's options, as `diskv server` would get them.
    opts: ServerOptions,
    /// Shards in the cluster.
    nshards: usize,
    /// How long the group keeps a silent client's duplicate entry (log time).
    client_ttl_ms: u64,
    /// When the leader may propose the configuration again.
    next_reconfig: Time,
}

impl Kv {
    /// Replica `me` of group `gid` (of `peers`) in a cluster of `nshards` shards,
    /// keeping a silent client's duplicate entry for `client_ttl_ms` of log time.
    pub fn new(gid: u64, me: NodeId, peers: usize, nshards: usize, client_ttl_ms: u64) -> Self {
        Kv {
            opts: ServerOptions {
                gid,
                masters: vec![MASTERS.into()],
                peers: (0..peers).map(|i| format!("sim:g{gid}r{i}")).collect(),
                me,
                dir: super::DATA.into(),
                restart: false,
                join: false,
                unreliable: false,
                nshards: Some(nshards),
            },
            nshards,
            client_ttl_ms,
            next_reconfig: 0,
        }
    }

    fn opened(&self, id: Identity, mut state: KvState, applied: Slot) -> Opened<Self> {
        state.set_client_ttl(self.client_ttl_ms);
        Opened {
            record: id,
            state,
            applied,
        }
    }
}

impl Service for Kv {
    type State = KvState;
    type Record = Identity;
    type Snapshot = GroupSnapshot;
    type Request = KvCall;
    type Response = Result<diskv::Reply, KvError>;
    type Front = LogClock;

    const REQUEST_TIMEOUT: Time = 2_000 * MS;
    const KEEP: &'static [&'static str] = &[];

    fn inspect(&self, fs: &SharedFs, dir: &Path) -> Result<Option<Opened<Self>>, Refused> {
        debug_assert_eq!(dir, self.opts.dir);
        match diskv::disk::inspect(fs, &self.opts) {
            Ok(Some((id, state, applied))) => Ok(Some(self.opened(id, state, applied))),
            Ok(None) => Ok(None),
            Err(e @ StateError::Corrupt { .. }) => Err(Refused::Damaged(e.to_string())),
            Err(e) => Err(Refused::Failed(e.to_string())),
        }
    }

    fn create(
        &self,
        fs: &SharedFs,
        dir: &Path,
        recovering: Option<u64>,
    ) -> Result<Opened<Self>, String> {
        debug_assert_eq!(dir, self.opts.dir);
        let id = Identity {
            cluster: Identity::cluster_of(&self.opts.masters),
            gid: self.opts.gid,
            me: self.opts.me,
            nshards: self.nshards,
            incarnation: 0,
            recovering,
        };
        let (state, applied) =
            diskv::disk::create(fs, &self.opts, &id).map_err(|e| e.to_string())?;
        Ok(self.opened(id, state, applied))
    }

    fn recovering(record: &Identity) -> Option<u64> {
        record.recovering
    }

    fn recovered(
        &self,
        fs: &dyn FileSystem,
        dir: &Path,
        record: &mut Identity,
        incarnation: u64,
    ) -> Result<(), String> {
        record.incarnation = incarnation;
        record.recovering = None;
        record.store(fs, dir).map_err(|e| e.to_string())
    }

    fn digest(state: &KvState) -> u64 {
        state.digest()
    }

    fn snapshot(state: &KvState, applied: Slot, membership: Membership) -> GroupSnapshot {
        state.snapshot(applied, membership)
    }

    fn covers(snap: &GroupSnapshot) -> (Slot, &Membership) {
        (snap.applied, &snap.membership)
    }

    fn install(state: &mut KvState, snap: &GroupSnapshot) -> Result<(), String> {
        state.replace_with(snap).map_err(|e| e.to_string())
    }

    /// As `KvService::execute_request` and `KvService::run_batch`: followers
    /// redirect to the leader; reads (a batch of reads too, under one index) go
    /// by read index; writes carry the proposer's log time stamp, a batch with a
    /// write is one command.
    fn admit(
        &self,
        clock: &mut LogClock,
        core: &Replica,
        state: &KvState,
        call: &KvCall,
        monotonic_ms: u64,
    ) -> Admit<Self> {
        if let KvCall::Many { batch, .. } = call {
            if let Err(e) = batch.check() {
                return Admit::Answer(Err(e));
            }
        }
        if !core.is_leader() {
            let leader = core.leader();
            return Admit::Answer(Err(KvError::NotLeader { leader }));
        }
        let read = match call {
            KvCall::One(req) => req.op.is_read(),
            KvCall::Many { batch, .. } => batch.is_read(),
        };
        if read {
            return Admit::Read;
        }
        let at_ms = clock.stamp(state.now_ms(), monotonic_ms);
        Admit::Propose(match call {
            KvCall::One(req) => KvCommand::Op {
                req: req.clone(),
                at_ms,
            },
            KvCall::Many { batch, .. } => KvCommand::Batch {
                batch: batch.clone(),
                at_ms,
            },
        })
    }

    fn read(state: &KvState, call: &KvCall) -> Self::Response {
        match call {
            KvCall::One(req) => state.read(req),
            KvCall::Many { batch, .. } => state.read_batch(batch),
        }
    }

    fn answer(output: Output<Self>) -> Self::Response {
        output
    }

    fn not_leader(leader: Option<NodeId>) -> Self::Response {
        Err(KvError::NotLeader { leader })
    }

    fn timed_out() -> Self::Response {
        Err(KvError::Timeout)
    }

    fn unavailable(why: String) -> Self::Response {
        Err(KvError::Unavailable(why))
    }

    fn reply(from: NodeId, call: &KvCall, result: Self::Response) -> Packet {
        Packet::Reply {
            from,
            reply: ClientReply::Kv {
                seq: call.seq(),
                shard: call.shard(),
                part: call.part(),
                result,
            },
        }
    }

    fn request_of(req: ClientRequest) -> Option<KvCall> {
        match req {
            ClientRequest::Kv(r) => Some(r),
            ClientRequest::Master(_) => None,
        }
    }

    fn wrap(snap: GroupSnapshot) -> Snapshot {
        Snapshot::Kv(Box::new(snap))
    }

    fn unwrap(snap: Snapshot) -> Option<GroupSnapshot> {
        match snap {
            Snapshot::Kv(s) => Some(*s),
            Snapshot::Master(_) => None,
        }
    }

    /// The leader proposes the group's configuration (every shard to this group)
    /// until it is applied: the reconfiguration loop's first step.
    fn duties(&mut self, io: &mut Io<'_>, r: &mut Running<Self>) {
        let applied = r.applier.state().config().num;
        if !r.core.is_leader() || applied > 0 || io.now < self.next_reconfig {
            return;
        }
        self.next_reconfig = io.now + 200 * MS;
        let gid = self.opts.gid;
        let mut config = Config::initial(self.nshards);
        config.num = 1;
        config.shards = vec![gid; self.nshards];
        config.groups.insert(gid, self.opts.peers.clone());
        r.propose_unwaited(io, &KvCommand::Reconfigure { config });
    }
}
