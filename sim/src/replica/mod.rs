//! One replica's machine: its simulated disk, and the process that runs on it
//! (probing its peers, running, or halted). Crashes kill the process (and, for a
//! power loss, lose what the disk had not synced); a lost disk is wiped and comes
//! back as a new disk generation.
//!
//! A machine runs one [`Service`]: the KV group's ([`kv::Kv`]) or the
//! shardmaster's ([`master::Shardmaster`]). Opening the directory, probing,
//! recovery and the whole running process are the same code for both; the world
//! sees every machine through [`Node`].

pub mod kv;
pub mod master;
mod node;
mod running;
pub mod service;

pub use node::Node;
pub use running::Running;
pub use service::Service;

use crate::check::{ConfigLog, Digests, Votes};
use crate::clock::{Time, MS, SECOND};
use crate::net::Addr;
use crate::packet::Packet;
use crate::trace::Trace;
use paxos::core::{CoreConfig, Membership, ReadStats, Replica};
use paxos::fs::{FileSystem, SimFs};
use paxos::probe::{self, Answer, Verdict};
use paxos::recovery::{next_step, Step};
use paxos::rsm::Applier;
use paxos::storage::{LogOptions, SegmentLog};
use paxos::{Entry, Envelope, Message, NodeId, Slot};
use rand::rngs::StdRng;
use rand::Rng;
use service::Refused;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a replica keeps everything on its disk.
pub const DATA: &str = "/data";

/// Timers of a machine's process.
#[derive(Clone, Copy, Debug)]
pub enum Timer {
    /// The core's clock.
    Tick,
    /// The pending sync completes.
    SyncDone,
    /// The apply loop runs.
    Apply,
    /// No decision came since apply number `n`.
    Idle(u64),
    /// The background checkpoint is written.
    CheckpointDone,
    /// A recovering replica (or one that needs a snapshot) looks again.
    RecoveryPoll,
    /// A replica with an empty disk asks its peers again.
    ProbeRound,
}

/// What a call into a machine may do to the world.
pub struct Io<'a> {
    /// Now.
    pub now: Time,
    /// The run's generator.
    pub rng: &'a mut StdRng,
    /// The machine's group.
    pub group: u64,
    /// The machine's index.
    pub node: NodeId,
    /// Its disk generation.
    pub generation: u32,
    /// Packets to send: (to, packet).
    pub sends: Vec<(Addr, Packet)>,
    /// Timers to set.
    pub timers: Vec<(Time, Timer)>,
    /// The group's vote record.
    pub votes: &'a mut Votes,
    /// Reads the group's leaders answered, by lease and by read-index.
    pub reads: &'a mut ReadStats,
    /// Every group's digests.
    pub digests: &'a mut Digests,
    /// Every shardmaster configuration seen.
    pub configs: &'a mut ConfigLog,
    /// The trace.
    pub trace: &'a mut Trace,
    /// Invariant violations found.
    pub violations: &'a mut Vec<String>,
}

impl Io<'_> {
    fn who(&self) -> String {
        format!("g{}r{}", self.group, self.node)
    }

    /// Records a trace line.
    pub fn note(&mut self, what: impl FnOnce() -> String) {
        if self.trace.on() {
            let who = self.who();
            self.trace.note(self.now, &who, what);
        }
    }

    /// Records an invariant violation.
    pub fn violation(&mut self, what: String) {
        let line = format!(
            "t={} ms group {} replica {} (disk generation {}): {what}",
            self.now / MS,
            self.group,
            self.node,
            self.generation
        );
        self.note(|| format!("VIOLATION {line}"));
        self.violations.push(line);
    }

    /// Sets a timer.
    pub fn timer(&mut self, at: Time, timer: Timer) {
        self.timers.push((at, timer));
    }

    /// The machine's monotonic clock, in ms.
    pub fn monotonic_ms(&self) -> u64 {
        self.now / MS
    }

    /// Sends a Paxos message, recording proposals and votes as they leave.
    pub fn send_paxos(&mut self, env: Envelope) {
        let checked = match &env.msg {
            Message::Accept {
                ballot,
                slot,
                entry,
                ..
            } => self.votes.proposed(*slot, *ballot, entry),
            Message::Accepted {
                ballot,
                slot,
                incarnation,
            } => self
                .votes
                .accepted(self.node, self.generation, *slot, *ballot, *incarnation),
            Message::Promise { incarnation, .. } => {
                self.votes
                    .promised(self.node, self.generation, *incarnation)
            }
            _ => Ok(()),
        };
        if let Err(e) = checked {
            self.violation(e);
        }
        let to = Addr::Replica {
            group: self.group,
            node: env.to,
        };
        self.sends.push((to, Packet::Paxos(env)));
    }

    /// Sends `packet` to peer `peer` of the group.
    pub fn send_peer(&mut self, peer: NodeId, packet: Packet) {
        let to = Addr::Replica {
            group: self.group,
            node: peer,
        };
        self.sends.push((to, packet));
    }

    /// Sends `packet` to `to`.
    pub fn send(&mut self, to: Addr, packet: Packet) {
        self.sends.push((to, packet));
    }

    /// The core decided `slot` with `entry`: it must be the chosen value.
    pub fn decided(&mut self, slot: Slot, entry: &Entry) {
        if let Err(e) = self.votes.decided(self.node, slot, entry) {
            self.violation(e);
        }
    }

    /// The state machine covers every instance below `applied` with `digest`.
    pub fn digest(&mut self, applied: Slot, digest: u64, how: &'static str) {
        if let Err(e) = self
            .digests
            .observe(self.group, self.node, applied, digest, how)
        {
            self.violation(e);
        }
    }
}

/// The process on a machine.
pub enum Process<S: Service> {
    /// Not running.
    Down,
    /// An empty directory without `--restart`: asking the peers before voting.
    Probing,
    /// Running.
    Running(Box<Running<S>>),
    /// Halted because a majority of the group lost their disks; still answers
    /// probes with `Recovering` until `until`, as `diskv server` does.
    Halted {
        /// When it stops answering.
        until: Time,
    },
}

/// One replica's machine, running service `S`.
pub struct Machine<S: Service> {
    /// The group.
    pub group: u64,
    /// The replica's index.
    pub node: NodeId,
    /// Replicas in the group.
    peers: usize,
    /// The service, with its settings.
    svc: S,
    /// The disk.
    pub fs: SimFs,
    /// Bumped each time the disk is lost.
    pub generation: u32,
    /// Started with `--restart`: an empty disk is then a lost one.
    pub ran_before: bool,
    /// Bumped at each process start or stop; timers of an older epoch are stale.
    pub epoch: u64,
    /// The process.
    pub process: Process<S>,
    /// Length of one core tick on this machine's clock: its rate, within the
    /// run's drift bound of nominal (see `crate::clock::draw_tick_len`).
    pub tick_len: Time,
    /// When this machine's clock comes to its next tick.
    next_tick: Time,
    /// The core's settings (the same window in every replica of the group).
    core: CoreConfig,
    /// The current probe round and its answers.
    round: u64,
    answers: Vec<Option<Answer>>,
    /// Which voting peer the next snapshot request goes to.
    ask_next: usize,
}

impl<S: Service> Machine<S> {
    /// Replica `node` of `group` (of `peers`) running `svc`, with core settings
    /// `core`.
    pub fn new(svc: S, group: u64, node: NodeId, peers: usize, core: CoreConfig) -> Self {
        Machine {
            group,
            node,
            peers,
            svc,
            fs: SimFs::new(),
            generation: 0,
            ran_before: false,
            epoch: 0,
            process: Process::Down,
            tick_len: crate::clock::NOMINAL_TICK,
            next_tick: 0,
            core,
            round: 0,
            answers: vec![None; peers],
            ask_next: 0,
        }
    }

    /// True if a process runs and votes (or at least serves).
    pub fn running(&self) -> Option<&Running<S>> {
        match &self.process {
            Process::Running(r) if r.failed.is_none() => Some(r),
            _ => None,
        }
    }

    /// The Paxos core of the running process.
    pub fn core(&self) -> Option<&Replica> {
        self.running().map(|r| &r.core)
    }

    /// True if the process halted (a lost majority).
    pub fn halted(&self) -> bool {
        matches!(self.process, Process::Halted { .. })
    }

    /// True if nothing runs.
    pub fn down(&self) -> bool {
        matches!(self.process, Process::Down)
    }

    fn shared_fs(&self) -> Arc<dyn FileSystem> {
        Arc::new(self.fs.clone())
    }

    /// Starts the process: opens the directory as `diskv server` does.
    pub fn start(&mut self, io: &mut Io<'_>) {
        self.epoch += 1;
        // A new process asks anew: answers to an earlier life's last round (late
        // in the network) describe the group as it was then, as `probe::ask_all`
        // never hands a new process an old answer (seed 1667: an answer
        // `Recovering`, seconds old, made a recovering replica halt).
        self.round += 1;
        self.answers = vec![None; self.peers];
        // The new process's core counts ticks from now (its tick 0).
        self.next_tick = io.now + self.tick_len;
        io.timer(self.next_tick, Timer::Tick);
        match self.open(io) {
            Ok(Opening::Probe) => {
                io.note(|| "empty directory: asking the peers".into());
                self.process = Process::Probing;
                self.new_round(io);
                io.timer(io.now + 150 * MS, Timer::ProbeRound);
            }
            Ok(Opening::Run(running)) => self.run(io, running),
            Err(e) => self.cannot_start(io, e),
        }
    }

    /// A replica whose disk is intact must always be able to start again; one
    /// that cannot (an I/O error aside) is stuck for good.
    fn cannot_start(&mut self, io: &mut Io<'_>, e: String) {
        io.note(|| format!("cannot start: {e}"));
        self.process = Process::Down;
        // A full disk is not stuck for good: it restarts once it has room.
        let full = e.contains("os error 28");
        if !full {
            io.violation(format!("replica cannot start again: {e}"));
        }
    }

    fn run(&mut self, io: &mut Io<'_>, running: Box<Running<S>>) {
        if let Some(nonce) = S::recovering(&running.record) {
            io.votes.recovering(self.node, self.generation, nonce);
            io.note(|| format!("recovering a lost disk, nonce {nonce}"));
        }
        self.ran_before = true;
        self.process = Process::Running(running);
        io.timer(io.now + 200 * MS, Timer::RecoveryPoll);
        if let Process::Running(r) = &mut self.process {
            r.drive(io);
        }
    }

    /// The directory's verdict: known, lost, damaged, or empty (ask the peers).
    fn open(&mut self, io: &mut Io<'_>) -> Result<Opening<S>, String> {
        let fs = self.shared_fs();
        match self.svc.inspect(&fs, Path::new(DATA)) {
            Ok(Some(opened)) => self.boot(io, opened),
            Ok(None) if self.ran_before => self.lost(io, "--restart with an empty directory"),
            Ok(None) => Ok(Opening::Probe),
            Err(Refused::Damaged(why)) => self.damaged(io, why),
            Err(Refused::Failed(e)) => Err(e),
        }
    }

    fn damaged(&mut self, io: &mut Io<'_>, why: String) -> Result<Opening<S>, String> {
        io.note(|| format!("damaged state quarantined: {why}"));
        paxos::quarantine::quarantine_on(&self.fs, Path::new(DATA), S::KEEP, io.now / SECOND)
            .map_err(|e| e.to_string())?;
        self.lost(io, "its state was damaged")
    }

    fn lost(&mut self, io: &mut Io<'_>, why: &str) -> Result<Opening<S>, String> {
        io.note(|| format!("lost its disk ({why})"));
        let nonce = io.rng.gen::<u64>() | 1;
        let opened = self
            .svc
            .create(&self.shared_fs(), Path::new(DATA), Some(nonce))?;
        self.boot(io, opened)
    }

    fn fresh(&mut self, io: &mut Io<'_>) -> Result<Opening<S>, String> {
        let opened = self.svc.create(&self.shared_fs(), Path::new(DATA), None)?;
        io.note(|| "a new replica of a new group: starting fresh".into());
        self.boot(io, opened)
    }

    /// Opens the log and starts the core and the state machine.
    fn boot(&mut self, io: &mut Io<'_>, opened: service::Opened<S>) -> Result<Opening<S>, String> {
        let service::Opened {
            record,
            state,
            applied,
        } = opened;
        let fs = self.shared_fs();
        let mut log =
            SegmentLog::open_on(fs, &PathBuf::from(DATA).join("log"), LogOptions::default())
                .map_err(|e| e.to_string())?;
        let cfg = CoreConfig {
            recovering: S::recovering(&record),
            seed: io.rng.gen(),
            ..self.core.clone()
        };
        let (core, replay) =
            paxos::node::restore(&cfg, &mut log, applied).map_err(|e| e.to_string())?;
        io.note(|| {
            format!(
                "restored: incarnation {:?}, epochs {:?}, floor {}, commit {}, applied {applied}",
                core.incarnation(),
                core.membership().epoch_starts(),
                core.floor(),
                core.commit_index()
            )
        });
        io.digest(applied, S::digest(&state), "restart");
        S::observe(&state, io);
        let applier = Applier::new(state, applied, self.node as u32, io.rng.gen());
        Ok(Opening::Run(Box::new(Running::start(
            io, core, replay, log, applier, record,
        ))))
    }

    /// Stops the process (`kill -9`): the disk keeps what the page cache had.
    pub fn kill(&mut self, io: &mut Io<'_>) {
        io.note(|| "killed".into());
        self.epoch += 1;
        self.process = Process::Down;
    }

    /// Power loss: the process dies and the disk keeps only part of what it had
    /// not synced.
    pub fn power_loss(&mut self, io: &mut Io<'_>) {
        self.epoch += 1;
        self.process = Process::Down;
        let report = self.fs.crash(io.rng);
        io.note(|| format!("power loss: {report:?}"));
    }

    /// The disk is lost: wiped, a new generation. `restart_flag`: whether the
    /// operator restarts it with `--restart`.
    pub fn lose_disk(&mut self, io: &mut Io<'_>, restart_flag: bool) {
        self.epoch += 1;
        self.process = Process::Down;
        self.fs.wipe();
        self.generation += 1;
        self.ran_before = restart_flag;
        io.generation = self.generation;
        io.note(|| format!("disk lost (restart flag {restart_flag})"));
    }

    /// Brings the core's clock up to this machine's clock, as the tokio driver
    /// does (`paxos::node`'s `TickClock`): every tick due by now, at once, before
    /// the process handles anything else. A paused process catches up with the
    /// ticks it missed when it runs again.
    fn catch_up(&mut self, io: &mut Io<'_>) {
        let mut due = 0;
        while self.next_tick <= io.now {
            due += 1;
            self.next_tick += self.tick_len;
        }
        if due > 0 {
            if let Process::Running(r) = &mut self.process {
                r.tick(io, due);
            }
        }
    }

    /// A timer of the current process fired.
    pub fn timer(&mut self, io: &mut Io<'_>, timer: Timer) {
        self.catch_up(io);
        match timer {
            Timer::Tick => {
                io.timer(self.next_tick, Timer::Tick);
                if let Process::Running(r) = &mut self.process {
                    self.svc.duties(io, r);
                }
            }
            Timer::ProbeRound => self.probe_round(io),
            Timer::RecoveryPoll => self.recovery_poll(io),
            other => {
                if let Process::Running(r) = &mut self.process {
                    match other {
                        Timer::SyncDone => r.sync_done(io),
                        Timer::Apply => r.apply(io),
                        Timer::Idle(n) => r.idle(io, n),
                        Timer::CheckpointDone => r.checkpoint_done(io),
                        _ => {}
                    }
                }
            }
        }
    }

    fn new_round(&mut self, io: &mut Io<'_>) {
        self.round += 1;
        self.answers = vec![None; self.peers];
        for peer in (0..self.peers).filter(|&p| p != self.node) {
            io.send_peer(
                peer,
                Packet::Probe {
                    from: self.node,
                    round: self.round,
                },
            );
        }
    }

    /// An empty directory without `--restart`: decide from the peers' answers.
    fn probe_round(&mut self, io: &mut Io<'_>) {
        if !matches!(self.process, Process::Probing) {
            return;
        }
        let opened = match probe::decide(self.node, &self.answers) {
            Verdict::Fresh => {
                if let Err(e) = io.votes.fresh_start(self.node, self.generation) {
                    io.violation(e);
                }
                self.fresh(io)
            }
            Verdict::Lost { reason } => self.lost(io, &reason),
            Verdict::Wait { .. } => {
                self.new_round(io);
                io.timer(io.now + 150 * MS, Timer::ProbeRound);
                return;
            }
        };
        match opened {
            Ok(Opening::Run(r)) => self.run(io, r),
            Ok(Opening::Probe) => {}
            Err(e) => self.cannot_start(io, e),
        }
    }

    /// A recovering replica's loop (`paxos::recovery::run`), and every replica's
    /// snapshot keep-up (`paxos::recovery::keep_up`).
    fn recovery_poll(&mut self, io: &mut Io<'_>) {
        let Process::Running(r) = &mut self.process else {
            return;
        };
        io.timer(io.now + 200 * MS, Timer::RecoveryPoll);
        if r.failed.is_some() {
            return;
        }
        let recovering = S::recovering(&r.record).is_some();
        if !recovering && r.snapshot_wanted.is_none() {
            return;
        }
        let step = if recovering {
            next_step(
                self.node,
                r.core.incarnation(),
                r.core.votes_now(),
                &self.answers,
                r.snapshot_wanted,
            )
        } else {
            let from = (0..self.peers)
                .filter(|&p| p != self.node && self.answers[p] == Some(Answer::History))
                .collect();
            Step::Fetch {
                floor: r.snapshot_wanted.unwrap_or(0),
                from,
            }
        };
        match step {
            Step::Voting(k) => {
                match self
                    .svc
                    .recovered(&self.fs, Path::new(DATA), &mut r.record, k)
                {
                    Ok(()) => io.note(|| format!("recovered: voting again as incarnation {k}")),
                    Err(e) => io.note(|| format!("cannot record the end of recovery: {e}")),
                }
                return;
            }
            Step::Halt { recovering } => {
                io.note(|| format!("halts: {recovering} replicas recovering"));
                self.epoch += 1;
                self.process = Process::Halted {
                    until: io.now + 5 * SECOND,
                };
                return;
            }
            Step::Fetch { floor, from } => {
                if !from.is_empty() {
                    self.ask_next = (self.ask_next + 1) % from.len();
                    let peer = from[self.ask_next];
                    io.send_peer(
                        peer,
                        Packet::SnapshotAsk {
                            from: self.node,
                            floor,
                        },
                    );
                }
            }
            Step::Wait { .. } => {}
        }
        self.new_round(io);
    }

    /// A packet arrived.
    pub fn deliver(&mut self, io: &mut Io<'_>, from: Addr, packet: Packet) {
        self.catch_up(io);
        match packet {
            Packet::Paxos(env) => {
                if let Process::Running(r) = &mut self.process {
                    if r.failed.is_none() {
                        r.core.handle(env);
                        r.drive(io);
                    }
                }
            }
            Packet::Request(req) => {
                if let (Process::Running(r), Addr::Client(c), Some(req)) =
                    (&mut self.process, from, S::request_of(req))
                {
                    r.request(io, &self.svc, c, req);
                }
            }
            Packet::Probe { from, round } => {
                if let Some(answer) = self.probe_answer(io) {
                    io.send_peer(
                        from,
                        Packet::ProbeAnswer {
                            from: self.node,
                            round,
                            answer,
                        },
                    );
                }
            }
            Packet::ProbeAnswer {
                from,
                round,
                answer,
            } => {
                if round == self.round && from < self.peers {
                    self.answers[from] = Some(answer);
                }
            }
            Packet::SnapshotAsk { from, .. } => {
                if let Process::Running(r) = &mut self.process {
                    r.snapshot_ask(io, from);
                }
            }
            Packet::SnapshotGive { snap, .. } => {
                if let (Process::Running(r), Some(snap)) =
                    (&mut self.process, snap.and_then(S::unwrap))
                {
                    r.install(io, snap);
                }
            }
            Packet::Reply { .. } => {}
        }
    }

    /// What this machine answers to a probe now (`None`: no answer).
    fn probe_answer(&mut self, io: &mut Io<'_>) -> Option<Answer> {
        match &mut self.process {
            Process::Down => None,
            Process::Probing => Some(Answer::Fresh),
            Process::Running(r) if r.failed.is_some() => None,
            Process::Running(r) => {
                let a = r.core.probe_answer();
                r.drive(io);
                Some(a)
            }
            Process::Halted { until } => (io.now < *until).then_some(Answer::Recovering),
        }
    }

    /// The membership this machine's core knows (for reports).
    pub fn membership(&self) -> Option<Membership> {
        self.core().map(|c| c.membership().clone())
    }
}

/// How opening the directory ended.
enum Opening<S: Service> {
    /// Ask the peers first.
    Probe,
    /// Run.
    Run(Box<Running<S>>),
}
