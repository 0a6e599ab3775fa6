//! A running replica process: the real Paxos core driven as the tokio driver
//! drives it (its durability decisions carried out against the real segment log
//! on the simulated disk), the real apply side ([`Applier`]) over the service's
//! real state machine with its checkpoints, and the service's request handling
//! (see [`Service`]). One code path for every service.

use super::service::{Admit, Command, Service};
use super::{Io, Timer};
use crate::clock::{Time, MS};
use crate::net::Addr;
use crate::packet::Packet;
use paxos::core::{Event, ReadOutcome, Replica};
use paxos::rsm::{encode, Applier, CheckpointJob, CheckpointStep, Origin};
use paxos::storage::{SegmentLog, Storage};
use paxos::{Decision, Envelope, Slot};
use rand::Rng;
use std::collections::{BTreeMap, VecDeque};

/// Who waits for a read index or a command's output.
#[derive(Clone, Debug)]
pub(crate) enum Waiter<R> {
    /// A client request.
    Client { client: u64, req: R, since: Time },
    /// A peer's snapshot request.
    Snapshot { peer: usize, since: Time },
}

impl<R> Waiter<R> {
    fn since(&self) -> Time {
        match self {
            Waiter::Client { since, .. } | Waiter::Snapshot { since, .. } => *since,
        }
    }
}

/// A replica process that runs service `S`.
pub struct Running<S: Service> {
    pub(crate) core: Replica,
    log: SegmentLog,
    /// Position of the last record appended (see `Replica::on_durable`).
    appended: u64,
    /// Appended records not yet synced.
    pub(crate) unsynced: bool,
    /// When the next sync completes, if one is due.
    sync_due: Option<Time>,
    /// Messages waiting for a sync: each leaves once records up to its position
    /// are durable.
    gated: VecDeque<(u64, Envelope)>,
    pub(crate) applier: Applier<S::State>,
    /// Decisions not yet applied (the apply loop runs a little behind the core).
    decisions: VecDeque<Decision>,
    apply_due: bool,
    /// Bumped by each apply; an idle timer of an older generation is stale.
    applies: u64,
    /// How long without decisions counts as idle (checkpoint).
    idle_after: Time,
    /// The checkpoint being written "in the background".
    job: Option<(CheckpointJob, Slot)>,
    /// Commands proposed here, by origin id.
    waiters: BTreeMap<u64, Waiter<S::Request>>,
    /// Reads waiting for their read index, by read id.
    reads: BTreeMap<u64, Waiter<S::Request>>,
    /// Reads whose index is known, waiting for the state to cover it.
    ready_reads: Vec<(Slot, Waiter<S::Request>)>,
    /// The request path's own state in this process (the KV log clock).
    front: S::Front,
    /// This process's origin nonce and next ids.
    nonce: u64,
    next_id: u64,
    /// The directory's record (its `recovering` nonce while recovering).
    pub(crate) record: S::Record,
    /// The instance a snapshot must cover, while the group forgot what this
    /// replica still needs.
    pub(crate) snapshot_wanted: Option<Slot>,
    /// Failed storage: the replica stopped voting (as the tokio driver's
    /// persister would).
    pub(crate) failed: Option<String>,
    /// The failure was a failed append, not a failed sync: the log may be opened
    /// again in place (see `paxos::node::failure`).
    pub(crate) revivable: bool,
    /// Every decided instance below this went to `decisions` (or is covered by
    /// an installed snapshot): where a revived core replays from.
    handed_out: Slot,
    /// The state machine's durable state covers every instance below this (its
    /// checkpoint, snapshots it installed): what a revived core is restored for.
    durable_applied: Slot,
}

impl<S: Service> Running<S> {
    /// Starts the replica on its log and state.
    pub(crate) fn start(
        io: &mut Io<'_>,
        core: Replica,
        replay: Vec<Decision>,
        log: SegmentLog,
        applier: Applier<S::State>,
        record: S::Record,
    ) -> Self {
        let idle_after = io.rng.gen_range(20..600) * MS;
        let nonce = applier.origin_tag().1;
        let applied = applier.applied();
        let mut r = Running {
            core,
            log,
            appended: 0,
            unsynced: false,
            sync_due: None,
            gated: VecDeque::new(),
            applier,
            decisions: VecDeque::new(),
            apply_due: false,
            applies: 0,
            idle_after,
            job: None,
            waiters: BTreeMap::new(),
            reads: BTreeMap::new(),
            ready_reads: Vec::new(),
            front: S::Front::default(),
            nonce,
            next_id: 1,
            record,
            snapshot_wanted: None,
            failed: None,
            revivable: false,
            handed_out: applied,
            durable_applied: applied,
        };
        r.hand_out(replay);
        r.schedule_apply(io);
        r
    }

    /// Queues decisions for the apply loop and remembers how far they go.
    fn hand_out(&mut self, decisions: Vec<Decision>) {
        for d in decisions {
            if let Decision::Entry(slot, _) = &d {
                self.handed_out = self.handed_out.max(slot + 1);
            }
            self.decisions.push_back(d);
        }
    }

    /// The storage works again after a failed append: as the tokio driver does
    /// (`PaxosNode::start_reviving`), opens the log again and restarts the core
    /// from it, keeping the state machine and the decisions it has not applied.
    pub(crate) fn revive(&mut self, io: &mut Io<'_>) -> Result<(), String> {
        if self.failed.is_none() || !self.revivable {
            return Err("not a revivable failure".into());
        }
        let mut log = self.log.reopen().map_err(|e| e.to_string())?;
        let cfg = self.core.config().clone();
        let handed_out = self.handed_out;
        let (core, replay) =
            paxos::node::restore_in_place(&cfg, &mut log, self.durable_applied, handed_out)
                .map_err(|e| e.to_string())?;
        io.note(|| {
            format!(
                "revived in place: commit {}, floor {}, handed out {handed_out}",
                core.commit_index(),
                core.floor()
            )
        });
        self.core = core;
        self.log = log;
        self.appended = 0;
        self.unsynced = false;
        self.sync_due = None;
        self.gated.clear();
        self.failed = None;
        self.revivable = false;
        self.hand_out(replay);
        self.schedule_apply(io);
        self.drive(io);
        Ok(())
    }

    /// Storage failed: the replica stops (its votes would not be durable).
    fn fail(&mut self, io: &mut Io<'_>, what: &str, e: impl std::fmt::Display) {
        if self.failed.is_none() {
            let why = format!("{what}: {e}");
            io.note(|| format!("storage failed, stops voting: {why}"));
            self.failed = Some(why);
            self.revivable = !self.log.sync_failed();
        }
    }

    // ---- the driver: Ready in, I/O out ----

    /// Carries out what the core asks, as the tokio driver does.
    pub(crate) fn drive(&mut self, io: &mut Io<'_>) {
        if self.failed.is_some() {
            return;
        }
        let ready = self.core.take_ready();
        for env in ready.messages {
            io.send_paxos(env);
        }
        if io.trace.on() {
            for rec in &ready.records {
                if let paxos::Record::Forgotten { below } = rec {
                    let commit = self.core.commit_index();
                    io.note(|| format!("log forgets below {below} (commit {commit})"));
                }
            }
        }
        if !ready.records.is_empty() {
            if let Err(e) = self.log.append(&ready.records) {
                return self.fail(io, "append", e);
            }
            self.appended += ready.records.len() as u64;
            self.unsynced = true;
        }
        for env in ready.after_sync {
            self.gated.push_back((self.appended, env));
        }
        if ready.sync || !self.gated.is_empty() {
            let latency = if io.rng.gen_bool(0.05) {
                io.rng.gen_range(5 * MS..40 * MS)
            } else {
                io.rng.gen_range(50..2 * MS)
            };
            self.want_sync(io, latency);
        } else if self.unsynced {
            self.want_sync(io, 10 * MS);
        }
        for (slot, entry) in ready.committed {
            io.decided(slot, &entry);
            self.handed_out = self.handed_out.max(slot + 1);
            self.decisions.push_back(Decision::Entry(slot, entry));
        }
        for ev in ready.events {
            match ev {
                Event::SnapshotNeeded { floor } => {
                    self.decisions.push_back(Decision::SnapshotNeeded(floor))
                }
                Event::LeaderChanged { leader, ballot } => {
                    io.note(|| format!("follows {leader:?} at {ballot}"))
                }
            }
        }
        for outcome in ready.reads {
            self.read_outcome(io, outcome);
        }
        if let Some(below) = ready.compact_below {
            // As the tokio persister: sync what was appended, then compact (which
            // syncs only when it rotates or deletes a segment).
            if let Err(e) = self.log.sync() {
                return self.fail(io, "sync", e);
            }
            if let Err(e) = self.log.compact(below) {
                return self.fail(io, "compact", e);
            }
            self.unsynced = false;
            self.durable(io);
        }
        self.schedule_apply(io);
    }

    fn want_sync(&mut self, io: &mut Io<'_>, latency: Time) {
        let at = io.now + latency;
        if self.sync_due.is_none_or(|due| at < due) {
            self.sync_due = Some(at);
            io.timer(at, Timer::SyncDone);
        }
    }

    /// A sync completed (if one is due by now: a paused process's timers fire
    /// late, and an earlier request may have been overtaken by a sooner one).
    pub(crate) fn sync_done(&mut self, io: &mut Io<'_>) {
        if self.sync_due.is_none_or(|due| due > io.now) || self.failed.is_some() {
            return;
        }
        self.sync_due = None;
        if self.unsynced {
            if let Err(e) = self.log.sync() {
                return self.fail(io, "sync", e);
            }
            self.unsynced = false;
        }
        self.durable(io);
        self.drive(io);
    }

    /// Every record appended so far is durable: tell the core, let the gated
    /// messages go.
    fn durable(&mut self, io: &mut Io<'_>) {
        self.core.on_durable(self.appended);
        while let Some((pos, _)) = self.gated.front() {
            if *pos > self.appended {
                break;
            }
            let (_, env) = self.gated.pop_front().expect("front exists");
            io.send_paxos(env);
        }
    }

    // ---- the apply loop ----

    fn schedule_apply(&mut self, io: &mut Io<'_>) {
        if !self.decisions.is_empty() && !self.apply_due {
            self.apply_due = true;
            let lag = io.rng.gen_range(10..1500);
            io.timer(io.now + lag, Timer::Apply);
        }
    }

    /// Applies the decisions waiting, answers what waited for them, and asks for
    /// a checkpoint.
    pub(crate) fn apply(&mut self, io: &mut Io<'_>) {
        self.apply_due = false;
        if self.failed.is_some() || self.decisions.is_empty() {
            return;
        }
        while let Some(d) = self.decisions.pop_front() {
            let done = self.applier.apply(d);
            for (origin, output) in done.outputs {
                if let Some(Waiter::Client { client, req, .. }) = self.waiters.remove(&origin.id) {
                    reply::<S>(io, client, &req, S::answer(output));
                }
            }
            if let Some(upto) = done.installed {
                self.core.install_snapshot(upto);
            }
            if let Some(slot) = done.gap {
                let applied = self.applier.applied();
                io.violation(format!(
                    "instance {slot} was handed to the state machine, which had applied only \
                     up to {applied}"
                ));
            }
            if let Some(floor) = done.snapshot_wanted {
                self.snapshot_wanted = Some(self.snapshot_wanted.map_or(floor, |f| f.max(floor)));
            }
        }
        let applied = self.applier.applied();
        io.digest(applied, S::digest(self.applier.state()), "apply");
        S::observe(self.applier.state(), io);
        self.serve_ready_reads(io);
        let step = self.applier.checkpoint(false);
        self.checkpoint_step(io, step);
        self.applies += 1;
        io.timer(io.now + self.idle_after, Timer::Idle(self.applies));
        self.drive(io);
    }

    /// No decision came for a while: an idle checkpoint.
    pub(crate) fn idle(&mut self, io: &mut Io<'_>, applies: u64) {
        if applies != self.applies || self.failed.is_some() {
            return;
        }
        let step = self.applier.checkpoint(true);
        self.checkpoint_step(io, step);
        self.drive(io);
    }

    fn checkpoint_step(&mut self, io: &mut Io<'_>, step: CheckpointStep) {
        match step {
            CheckpointStep::Idle => {}
            CheckpointStep::Durable(durable) => {
                if durable > 0 {
                    self.core.done(durable - 1);
                    self.durable_applied = self.durable_applied.max(durable);
                }
            }
            CheckpointStep::Job { job, upto } => {
                self.job = Some((job, upto));
                let at = io.now + io.rng.gen_range(200..30 * MS);
                io.timer(at, Timer::CheckpointDone);
            }
            CheckpointStep::Failed(e) => io.note(|| format!("checkpoint failed: {e}")),
        }
    }

    /// The background checkpoint's files are written now.
    pub(crate) fn checkpoint_done(&mut self, io: &mut Io<'_>) {
        let Some((job, upto)) = self.job.take() else {
            return;
        };
        if self.core.durable_commit() < upto {
            // As the tokio driver: the state goes to disk only once the log's
            // decisions it covers are durable.
            self.job = Some((job, upto));
            let at = io.now + io.rng.gen_range(200..5 * MS);
            io.timer(at, Timer::CheckpointDone);
            return;
        }
        let result = job();
        io.note(|| format!("checkpoint written: {result:?}"));
        let step = self.applier.checkpoint_finished(result);
        self.checkpoint_step(io, step);
        self.drive(io);
    }

    // ---- the service ----

    /// A client request, handled as the service's RPC handler does.
    pub(crate) fn request(&mut self, io: &mut Io<'_>, svc: &S, client: u64, req: S::Request) {
        if let Some(why) = &self.failed {
            let answer = S::unavailable(format!("storage failed: {why}"));
            return reply::<S>(io, client, &req, answer);
        }
        let admit = svc.admit(
            &mut self.front,
            &self.core,
            self.applier.state(),
            &req,
            io.monotonic_ms(),
        );
        let id = self.next_id;
        let waiter = Waiter::Client {
            client,
            req,
            since: io.now,
        };
        match admit {
            Admit::Answer(answer) => {
                if let Waiter::Client { req, .. } = &waiter {
                    reply::<S>(io, client, req, answer);
                }
                return;
            }
            Admit::Read => {
                self.next_id += 1;
                self.reads.insert(id, waiter);
                self.core.read_index(id);
            }
            Admit::Propose(cmd) => {
                self.next_id += 1;
                self.propose(io, id, &cmd);
                self.waiters.insert(id, waiter);
            }
        }
        self.drive(io);
    }

    /// Proposes `cmd` tagged with origin `id` of this process.
    pub(crate) fn propose(&mut self, io: &mut Io<'_>, id: u64, cmd: &Command<S>) {
        let origin = Origin {
            replica: io.node as u32,
            nonce: self.nonce,
            id,
        };
        match encode(origin, cmd) {
            Ok(bytes) => self.core.propose(bytes),
            Err(e) => io.note(|| format!("cannot encode a command: {e}")),
        }
    }

    /// Proposes a command nobody waits for (reconfiguration).
    pub(crate) fn propose_unwaited(&mut self, io: &mut Io<'_>, cmd: &Command<S>) {
        let id = self.next_id;
        self.next_id += 1;
        self.propose(io, id, cmd);
        self.drive(io);
    }

    /// A peer's snapshot request (the services' `snapshot` RPC: a read index on
    /// the leader, refused elsewhere).
    pub(crate) fn snapshot_ask(&mut self, io: &mut Io<'_>, peer: usize) {
        if self.failed.is_some() || !self.core.is_leader() {
            let snap = None;
            return io.send_peer(
                peer,
                Packet::SnapshotGive {
                    from: io.node,
                    snap,
                },
            );
        }
        let id = self.next_id;
        self.next_id += 1;
        self.reads.insert(
            id,
            Waiter::Snapshot {
                peer,
                since: io.now,
            },
        );
        self.core.read_index(id);
        self.drive(io);
    }

    fn read_outcome(&mut self, io: &mut Io<'_>, outcome: ReadOutcome) {
        match outcome {
            ReadOutcome::Ready { id, index } => {
                if let Some(w) = self.reads.remove(&id) {
                    self.ready_reads.push((index, w));
                    self.serve_ready_reads(io);
                }
            }
            ReadOutcome::NotLeader { id, leader } => match self.reads.remove(&id) {
                Some(Waiter::Client { client, req, .. }) => {
                    reply::<S>(io, client, &req, S::not_leader(leader))
                }
                Some(Waiter::Snapshot { peer, .. }) => io.send_peer(
                    peer,
                    Packet::SnapshotGive {
                        from: io.node,
                        snap: None,
                    },
                ),
                None => {}
            },
        }
    }

    /// Serves the reads whose index the state covers now.
    fn serve_ready_reads(&mut self, io: &mut Io<'_>) {
        let applied = self.applier.applied();
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready_reads)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.ready_reads = later;
        for (_, w) in now {
            match w {
                Waiter::Client { client, req, .. } => {
                    let out = S::read(self.applier.state(), &req);
                    reply::<S>(io, client, &req, out);
                }
                Waiter::Snapshot { peer, .. } => {
                    let core = &self.core;
                    let snap = self
                        .applier
                        .snapshot(|| core.membership().clone(), S::snapshot);
                    io.send_peer(
                        peer,
                        Packet::SnapshotGive {
                            from: io.node,
                            snap: Some(S::wrap(snap)),
                        },
                    );
                }
            }
        }
    }

    /// A snapshot from a peer: installed if it covers what is wanted.
    pub(crate) fn install(&mut self, io: &mut Io<'_>, snap: S::Snapshot) {
        let Some(floor) = self.snapshot_wanted else {
            return;
        };
        let (applied, membership) = S::covers(&snap);
        if applied < floor || self.failed.is_some() {
            return;
        }
        let installed = self.applier.install(applied, |st| S::install(st, &snap));
        match installed {
            Ok(true) => {
                io.note(|| format!("installed a snapshot covering {applied}"));
                self.core.merge_membership(membership);
                self.core.install_snapshot(applied);
                self.handed_out = self.handed_out.max(applied);
                self.durable_applied = self.durable_applied.max(applied);
                self.snapshot_wanted = None;
                io.digest(applied, S::digest(self.applier.state()), "snapshot");
                S::observe(self.applier.state(), io);
                self.serve_ready_reads(io);
                self.drive(io);
            }
            Ok(false) => {}
            Err(e) => io.note(|| format!("cannot install a snapshot: {e}")),
        }
    }

    /// A tick of the core's clock; requests that waited too long time out.
    pub(crate) fn tick(&mut self, io: &mut Io<'_>) {
        if self.failed.is_some() {
            return;
        }
        self.core.tick();
        let cutoff = io.now.saturating_sub(S::REQUEST_TIMEOUT);
        let expired: Vec<Waiter<S::Request>> = take_expired(&mut self.waiters, cutoff)
            .into_iter()
            .chain(take_expired(&mut self.reads, cutoff))
            .collect();
        let mut kept = Vec::new();
        for (index, w) in std::mem::take(&mut self.ready_reads) {
            if w.since() < cutoff {
                self.timeout(io, w);
            } else {
                kept.push((index, w));
            }
        }
        self.ready_reads = kept;
        for w in expired {
            self.timeout(io, w);
        }
        self.drive(io);
    }

    fn timeout(&self, io: &mut Io<'_>, w: Waiter<S::Request>) {
        if let Waiter::Client { client, req, .. } = w {
            reply::<S>(io, client, &req, S::timed_out());
        }
    }
}

/// Answers client `client`'s request `req`.
fn reply<S: Service>(io: &mut Io<'_>, client: u64, req: &S::Request, response: S::Response) {
    let packet = S::reply(io.node, req, response);
    io.send(Addr::Client(client), packet);
}

fn take_expired<W>(map: &mut BTreeMap<u64, Waiter<W>>, cutoff: Time) -> Vec<Waiter<W>> {
    let old: Vec<u64> = map
        .iter()
        .filter(|(_, w)| w.since() < cutoff)
        .map(|(k, _)| *k)
        .collect();
    old.into_iter().filter_map(|k| map.remove(&k)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::kv::Kv;
    use super::*;
    use crate::check::{ConfigLog, Digests, Votes};
    use crate::trace::Trace;
    use diskv::identity::Identity;
    use diskv::KvState;
    use paxos::core::CoreConfig;
    use paxos::fs::{SharedFs, SimFs};
    use paxos::storage::LogOptions;
    use paxos::{Ballot, Entry, Message, Record};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::path::Path;
    use std::sync::Arc;

    fn accept(slot: Slot, commit: Slot) -> Envelope {
        Envelope {
            from: 0,
            to: 1,
            msg: Message::Accept {
                ballot: Ballot::new(1, 0),
                slot,
                entry: Entry::Noop,
                commit,
            },
        }
    }

    /// Review: the driver takes `compact` for a sync ("compaction syncs the log
    /// before it deletes anything") and reports every record appended so far
    /// durable. But a compaction with nothing to delete (one segment that still
    /// holds live instances) syncs nothing: the `Accepted` waiting for its record
    /// leaves, and a power loss then takes the record away — the simulator no
    /// longer runs the rules the tokio driver runs (its persister syncs first).
    #[test]
    fn review_a_compaction_that_deletes_nothing_makes_nothing_durable() {
        let sim = SimFs::new();
        let fs: SharedFs = Arc::new(sim.clone());
        let data = Path::new(DATA_DIR);
        let log =
            SegmentLog::open_on(fs.clone(), &data.join("log"), LogOptions::default()).unwrap();
        let (state, applied) = KvState::open_on(fs.clone(), data, 1, 4).unwrap();
        let identity = Identity {
            cluster: vec![],
            gid: 1,
            me: 1,
            nshards: 4,
            incarnation: 0,
            recovering: None,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut votes = Votes::new(3, 64);
        let mut digests = Digests::default();
        let mut configs = ConfigLog::default();
        let mut trace = Trace::new(false);
        let mut violations = Vec::new();
        let mut io = Io {
            now: 0,
            rng: &mut rng,
            group: 1,
            node: 1,
            generation: 0,
            sends: Vec::new(),
            timers: Vec::new(),
            votes: &mut votes,
            digests: &mut digests,
            configs: &mut configs,
            trace: &mut trace,
            violations: &mut violations,
        };
        let core = Replica::new(CoreConfig::new(1, 3));
        let applier = Applier::new(state, applied, 1, 7);
        let mut r: Running<Kv> = Running::start(&mut io, core, Vec::new(), log, applier, identity);
        // Instance 0 accepted and synced.
        r.core.handle(accept(0, 0));
        r.drive(&mut io);
        io.now += 1_000 * MS;
        r.sync_done(&mut io);
        // Instance 1 accepted (its record appended, not yet synced); the watermark
        // decides 0; every replica is done with 0, this one's application too.
        io.sends.clear();
        r.core.handle(accept(1, 1));
        r.core.handle(Envelope {
            from: 0,
            to: 1,
            msg: Message::Heartbeat {
                ballot: Ballot::new(1, 0),
                commit: 1,
                round: 1,
                done: vec![1, 1, 1],
            },
        });
        r.core.done(0);
        r.drive(&mut io);
        let revealed = io.sends.iter().any(|(_, p)| {
            matches!(
                p,
                Packet::Paxos(Envelope {
                    msg: Message::Accepted { slot: 1, .. },
                    ..
                })
            )
        });
        sim.crash_losing_unsynced();
        let mut log = SegmentLog::open_on(fs, &data.join("log"), LogOptions::default()).unwrap();
        let kept = log
            .load()
            .unwrap()
            .iter()
            .any(|rec| matches!(rec, Record::Accepted { slot: 1, .. }));
        assert!(
            kept || !revealed,
            "Accepted for instance 1 left before its record was durable"
        );
    }

    const DATA_DIR: &str = "/data";
}
