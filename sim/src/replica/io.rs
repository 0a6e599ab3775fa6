//! What a call into a machine may do to the world ([`Io`]): send packets, set
//! timers ([`Timer`]), write the trace, and record what the checks watch — votes
//! as they leave, decisions, state digests, violations.

use crate::check::{ConfigLog, Digests, Votes};
use crate::clock::{Time, MS};
use crate::net::Addr;
use crate::packet::Packet;
use crate::trace::Trace;
use paxos::core::ReadStats;
use paxos::{Entry, Envelope, Message, NodeId, Slot};
use rand::rngs::StdRng;

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
