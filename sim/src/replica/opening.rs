//! Starting a machine's process as `diskv server` starts: the directory's
//! verdict (known, lost, damaged, or empty: ask the peers), quarantine, a new
//! directory, and booting the log, the core and the state machine.

use super::service::{self, Refused, Service};
use super::{Io, Machine, Process, Running, Timer, DATA};
use crate::clock::{MS, SECOND};
use paxos::core::CoreConfig;
use paxos::rsm::Applier;
use paxos::storage::{LogOptions, SegmentLog};
use rand::Rng;
use std::path::{Path, PathBuf};

impl<S: Service> Machine<S> {
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
    pub(super) fn cannot_start(&mut self, io: &mut Io<'_>, e: String) {
        io.note(|| format!("cannot start: {e}"));
        self.process = Process::Down;
        // A full disk is not stuck for good: it restarts once it has room.
        let full = e.contains("os error 28");
        if !full {
            io.violation(format!("replica cannot start again: {e}"));
        }
    }

    pub(super) fn run(&mut self, io: &mut Io<'_>, running: Box<Running<S>>) {
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

    pub(super) fn lost(&mut self, io: &mut Io<'_>, why: &str) -> Result<Opening<S>, String> {
        io.note(|| format!("lost its disk ({why})"));
        let nonce = io.rng.gen::<u64>() | 1;
        let opened = self
            .svc
            .create(&self.shared_fs(), Path::new(DATA), Some(nonce))?;
        self.boot(io, opened)
    }

    pub(super) fn fresh(&mut self, io: &mut Io<'_>) -> Result<Opening<S>, String> {
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
}

/// How opening the directory ended.
pub(super) enum Opening<S: Service> {
    /// Ask the peers first.
    Probe,
    /// Run.
    Run(Box<Running<S>>),
}
