//! How the world sees a machine, whatever service it runs: the calls that move
//! it (start, crash, timers, packets) and what the faults and reports look at.

use super::{Io, Machine, Process, Service, Timer};
use crate::clock::Time;
use crate::net::Addr;
use crate::packet::Packet;
use paxos::core::Replica;
use paxos::fs::SimFs;
use paxos::NodeId;

/// One replica's machine, as the world drives it.
pub trait Node {
    /// The group.
    fn group(&self) -> u64;
    /// The replica's index in its group.
    fn node(&self) -> NodeId;
    /// Bumped at each process start or stop; timers of an older epoch are stale.
    fn epoch(&self) -> u64;
    /// Bumped each time the disk is lost.
    fn generation(&self) -> u32;
    /// The disk.
    fn fs(&self) -> &SimFs;
    /// Sets the length of one core tick (clock drift).
    fn set_tick_len(&mut self, len: Time);

    /// Starts the process.
    fn start(&mut self, io: &mut Io<'_>);
    /// `kill -9`.
    fn kill(&mut self, io: &mut Io<'_>);
    /// Power loss: the disk keeps part of what it had not synced.
    fn power_loss(&mut self, io: &mut Io<'_>);
    /// The disk is lost; `restart_flag`: restarted with `--restart`.
    fn lose_disk(&mut self, io: &mut Io<'_>, restart_flag: bool);
    /// A timer of the current process fired.
    fn timer(&mut self, io: &mut Io<'_>, timer: Timer);
    /// A packet arrived.
    fn deliver(&mut self, io: &mut Io<'_>, from: Addr, packet: Packet);

    /// True if nothing runs.
    fn down(&self) -> bool;
    /// True if the process halted (a lost majority).
    fn halted(&self) -> bool;
    /// The Paxos core of a running process whose storage works.
    fn core(&self) -> Option<&Replica>;
    /// True if a running process still recovers a lost disk.
    fn recovering(&self) -> bool;
    /// True if a running process's storage failed.
    fn storage_failed(&self) -> bool;
    /// A running process whose append failed opens its log again in place (see
    /// `Running::revive`); false if it cannot.
    fn revive(&mut self, io: &mut Io<'_>) -> bool;
    /// True if a running process appended log records it has not synced yet.
    fn unsynced(&self) -> bool;
    /// One line on the machine's state, for reports.
    fn describe(&self) -> String;
}

impl<S: Service> Node for Machine<S> {
    fn group(&self) -> u64 {
        self.group
    }

    fn node(&self) -> NodeId {
        self.node
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn generation(&self) -> u32 {
        self.generation
    }

    fn fs(&self) -> &SimFs {
        &self.fs
    }

    fn set_tick_len(&mut self, len: Time) {
        self.tick_len = len;
    }

    fn start(&mut self, io: &mut Io<'_>) {
        Machine::start(self, io)
    }

    fn kill(&mut self, io: &mut Io<'_>) {
        Machine::kill(self, io)
    }

    fn power_loss(&mut self, io: &mut Io<'_>) {
        Machine::power_loss(self, io)
    }

    fn lose_disk(&mut self, io: &mut Io<'_>, restart_flag: bool) {
        Machine::lose_disk(self, io, restart_flag)
    }

    fn timer(&mut self, io: &mut Io<'_>, timer: Timer) {
        Machine::timer(self, io, timer)
    }

    fn deliver(&mut self, io: &mut Io<'_>, from: Addr, packet: Packet) {
        Machine::deliver(self, io, from, packet)
    }

    fn down(&self) -> bool {
        Machine::down(self)
    }

    fn halted(&self) -> bool {
        Machine::halted(self)
    }

    fn core(&self) -> Option<&Replica> {
        Machine::core(self)
    }

    fn recovering(&self) -> bool {
        self.running()
            .is_some_and(|r| S::recovering(&r.record).is_some())
    }

    fn storage_failed(&self) -> bool {
        matches!(&self.process, Process::Running(r) if r.failed.is_some())
    }

    fn revive(&mut self, io: &mut Io<'_>) -> bool {
        match &mut self.process {
            Process::Running(r) => match r.revive(io) {
                Ok(()) => true,
                Err(e) => {
                    io.note(|| format!("cannot revive in place: {e}"));
                    false
                }
            },
            _ => false,
        }
    }

    fn unsynced(&self) -> bool {
        self.running().is_some_and(|r| r.unsynced)
    }

    fn describe(&self) -> String {
        let (g, n) = (self.group, self.node);
        match &self.process {
            Process::Down => format!("[g{g}r{n} down]"),
            Process::Probing => format!("[g{g}r{n} probing]"),
            Process::Halted { .. } => format!("[g{g}r{n} halted]"),
            Process::Running(r) => format!(
                "[g{g}r{n} gen{} {} leader={:?} commit={} applied={} inc={:?} votes={} \
                 epochs={:?} failed={:?}]",
                self.generation,
                if r.core.is_leader() { "LEADER" } else { "" },
                r.core.leader(),
                r.core.commit_index(),
                r.applier.applied(),
                r.core.incarnation(),
                r.core.votes_now(),
                r.core.membership().epoch_starts(),
                r.failed
            ),
        }
    }
}
