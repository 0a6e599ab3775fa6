//! One replica's machine: its simulated disk, and the process that runs on it
//! (probing its peers, running, or halted). Crashes kill the process (and, for a
//! power loss, lose what the disk had not synced); a lost disk is wiped and comes
//! back as a new disk generation.
//!
//! A machine runs one [`Service`]: the KV group's ([`kv::Kv`]) or the
//! shardmaster's ([`master::Shardmaster`]). Opening the directory, probing,
//! recovery and the whole running process are the same code for both; the world
//! sees every machine through [`Node`].

mod io;
pub mod kv;
pub mod master;
mod node;
mod opening;
mod probing;
mod running;
pub mod service;

pub use io::{Io, Timer};
pub use node::Node;
pub use running::Running;
pub use service::Service;

use crate::clock::Time;
use crate::net::Addr;
use crate::packet::Packet;
use paxos::core::{CoreConfig, Membership, Replica};
use paxos::fs::{FileSystem, SimFs};
use paxos::probe::Answer;
use paxos::NodeId;
use std::sync::Arc;

/// Where a replica keeps everything on its disk.
pub const DATA: &str = "/data";

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

    /// The membership this machine's core knows (for reports).
    pub fn membership(&self) -> Option<Membership> {
        self.core().map(|c| c.membership().clone())
    }
}
