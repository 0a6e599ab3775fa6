//! A machine and its peers before it votes: probe rounds for an empty
//! directory, the answers it gives, and the recovery loop of a replica that lost
//! its disk (or needs a snapshot to keep up).

use super::opening::Opening;
use super::service::Service;
use super::{Io, Machine, Process, Timer, DATA};
use crate::clock::{MS, SECOND};
use crate::packet::Packet;
use paxos::probe::{self, Answer, Verdict};
use paxos::recovery::{next_step, Step};
use std::path::Path;

impl<S: Service> Machine<S> {
    pub(super) fn new_round(&mut self, io: &mut Io<'_>) {
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
    pub(super) fn probe_round(&mut self, io: &mut Io<'_>) {
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
    pub(super) fn recovery_poll(&mut self, io: &mut Io<'_>) {
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

    /// What this machine answers to a probe now (`None`: no answer).
    pub(super) fn probe_answer(&mut self, io: &mut Io<'_>) -> Option<Answer> {
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
}
