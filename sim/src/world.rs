//! One simulated run: a replica group, its clients, the network, the faults and
//! the checks, all driven by one seeded generator through one agenda of events.
//!
//! A run has three phases. **Faulty**: clients run operations while the fault
//! schedule crashes processes and machines, loses, corrupts and fills disks,
//! pauses replicas, jumps clocks, and partitions or degrades the network.
//! **Calm**: the faults stop, the network heals, every machine that is down
//! restarts; every client must then complete operations within a bound
//! (liveness), unless the group lost a majority of its disks and halted, which is
//! then what must happen. **Audit**: one client reads every key, and the whole
//! history is checked for linearizability (which also shows any acknowledged
//! write that was lost).

use crate::check::{Digests, Votes};
use crate::client::{Client, Next, ATTEMPT_TIMEOUT, KEYS};
use crate::clock::{Agenda, Time, MS, SECOND};
use crate::faults::{self, Faults};
use crate::linearizability::{check, CheckResult, History, Op as LinOp};
use crate::net::{Addr, Network};
use crate::packet::Packet;
use crate::replica::{Io, Machine, Process, Timer};
use crate::trace::Trace;
use paxos::core::CoreConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;

/// The KV group's id.
pub const GID: u64 = 1;
/// Shards in the simulated cluster.
pub const NSHARDS: usize = 4;
/// How long clients have to make progress once the faults stop.
pub const LIVENESS_BOUND: Time = 40 * SECOND;

/// How to run one seed.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The seed every choice of the run comes from.
    pub seed: u64,
    /// Keep a trace of the run.
    pub trace: bool,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Invariant violations, first one first.
    pub violations: Vec<String>,
    /// The trace, if asked for.
    pub trace: Vec<String>,
    /// A one-line summary of the run.
    pub summary: String,
}

impl Report {
    /// True if every invariant held.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Events of a run.
pub(crate) enum Event {
    Deliver {
        from: Addr,
        to: Addr,
        packet: Packet,
    },
    Timer {
        node: usize,
        epoch: u64,
        timer: Timer,
    },
    ClientStart {
        client: usize,
    },
    ClientTimeout {
        client: usize,
        attempt: u64,
    },
    ClientResume {
        client: usize,
        attempt: u64,
    },
    Fault,
    Restart {
        node: usize,
        epoch: u64,
    },
    Lift {
        node: usize,
    },
    Calm,
    Audit,
    Deadline,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Faulty,
    Calm,
    Audit,
}

/// A run in progress.
pub struct World {
    pub(crate) seed: u64,
    pub(crate) rng: StdRng,
    pub(crate) now: Time,
    pub(crate) agenda: Agenda<Event>,
    pub(crate) net: Network,
    pub(crate) machines: Vec<Machine>,
    votes: Votes,
    digests: Digests,
    clients: Vec<Client>,
    history: History,
    pub(crate) trace: Trace,
    pub(crate) violations: Vec<String>,
    phase: Phase,
    /// Operations the auditing client still has to run.
    audit: VecDeque<LinOp>,
    /// Operations completed by each client when the faults stopped.
    done_at_calm: Vec<u64>,
    pub(crate) faults: Faults,
    events: u64,
    /// How long the group keeps a silent client's duplicate entry.
    client_ttl: Time,
    /// Until when each client stays silent.
    silent_until: Vec<Time>,
}

impl World {
    /// Sets up the run of `opts.seed`.
    pub fn new(opts: &RunOptions) -> World {
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let peers = match rng.gen_range(0..10) {
            0 => 1,
            1..=3 => 5,
            _ => 3,
        };
        let faults = Faults::new(&mut rng, peers);
        // The duplicate table keeps a silent client longer than any operation can
        // wait for the group (the contract: only a client silent at the log for
        // that long may see a retry applied again), and short enough for runs to
        // see entries expire.
        let client_ttl = faults.duration + LIVENESS_BOUND + 10 * SECOND;
        let window = rng.gen_range(1..12);
        let heartbeat = rng.gen_range(1..4);
        let machines = (0..peers)
            .map(|i| {
                let core = CoreConfig {
                    heartbeat_ticks: heartbeat,
                    election_ticks: rng.gen_range(3 * heartbeat + 4..40),
                    retransmit_ticks: rng.gen_range(2..15),
                    window,
                    catchup_bytes: if rng.gen_bool(0.3) { 200 } else { 4 << 20 },
                    ..CoreConfig::new(i, peers)
                };
                Machine::new(GID, i, peers, NSHARDS, core, client_ttl / MS)
            })
            .collect();
        let nclients = rng.gen_range(2..6);
        let clients = (0..nclients)
            .map(|c| Client::new(100 + c as u64, peers, NSHARDS))
            .collect();
        World {
            seed: opts.seed,
            rng,
            now: 0,
            agenda: Agenda::default(),
            net: Network::default(),
            machines,
            votes: Votes::new(peers, window),
            digests: Digests::default(),
            clients,
            history: History::new(),
            trace: Trace::new(opts.trace),
            violations: Vec::new(),
            phase: Phase::Faulty,
            audit: VecDeque::new(),
            done_at_calm: Vec::new(),
            faults,
            events: 0,
            client_ttl,
            silent_until: vec![0; nclients],
        }
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> Report {
        for i in 0..self.machines.len() {
            let at = self.rng.gen_range(0..50 * MS);
            self.agenda.at(at, Event::Restart { node: i, epoch: 0 });
        }
        for c in 0..self.clients.len() {
            self.agenda
                .at(300 * MS + c as Time, Event::ClientStart { client: c });
        }
        self.agenda.at(self.faults.start, Event::Fault);
        let calm_at = self.faults.start + self.faults.duration;
        self.agenda.at(calm_at, Event::Calm);
        while let Some((at, event)) = self.agenda.pop() {
            self.now = at;
            self.events += 1;
            if !self.dispatch(event) || !self.violations.is_empty() {
                break;
            }
        }
        self.finish()
    }

    /// Handles one event; false ends the run.
    fn dispatch(&mut self, event: Event) -> bool {
        match event {
            Event::Deliver { from, to, packet } => self.deliver(from, to, packet),
            Event::Timer { node, epoch, timer } => {
                if self.machines[node].epoch == epoch {
                    if self.paused(node) {
                        let at = self.faults.paused_until[node] + 1;
                        self.agenda.at(at, Event::Timer { node, epoch, timer });
                    } else {
                        self.with_machine(node, |m, io| m.timer(io, timer));
                    }
                }
            }
            Event::ClientStart { client } => self.client_start(client),
            Event::ClientTimeout { client, attempt } => {
                let next = self.clients[client].timed_out(attempt);
                self.client_next(client, next);
            }
            Event::ClientResume { client, attempt } => {
                let resumable = self.clients[client]
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.attempt_id == attempt);
                if resumable {
                    let next = self.clients[client].resume();
                    self.client_next(client, next);
                }
            }
            Event::Fault => {
                if self.phase == Phase::Faulty {
                    faults::strike(self);
                    let gap = self.rng.gen_range(self.faults.gap.0..=self.faults.gap.1);
                    self.agenda.at(self.now + gap, Event::Fault);
                }
            }
            Event::Restart { node, epoch } => {
                let m = &self.machines[node];
                if m.down() && m.epoch == epoch {
                    self.with_machine(node, |m, io| m.start(io));
                }
            }
            Event::Lift { node } => faults::lift(self, node),
            Event::Calm => self.calm(),
            Event::Audit => self.start_audit(),
            Event::Deadline => {
                self.check_liveness();
                return false;
            }
        }
        if self.phase == Phase::Audit && self.audit.is_empty() && self.clients_idle() {
            return false;
        }
        true
    }

    fn paused(&self, node: usize) -> bool {
        self.now < self.faults.paused_until[node]
    }

    /// Calls into machine `node` and carries out what it asks.
    pub(crate) fn with_machine(&mut self, node: usize, f: impl FnOnce(&mut Machine, &mut Io<'_>)) {
        let m = &mut self.machines[node];
        let mut io = Io {
            now: self.now,
            rng: &mut self.rng,
            group: m.group,
            node,
            generation: m.generation,
            sends: Vec::new(),
            timers: Vec::new(),
            votes: &mut self.votes,
            digests: &mut self.digests,
            trace: &mut self.trace,
            violations: &mut self.violations,
        };
        f(m, &mut io);
        let (sends, timers) = (io.sends, io.timers);
        let (epoch, from) = (
            m.epoch,
            Addr::Replica {
                group: m.group,
                node,
            },
        );
        for (to, packet) in sends {
            self.send(from, to, packet);
        }
        for (at, timer) in timers {
            self.agenda.at(at, Event::Timer { node, epoch, timer });
        }
    }

    fn send(&mut self, from: Addr, to: Addr, packet: Packet) {
        for at in self.net.fate(&mut self.rng, self.now, from, to) {
            self.agenda.at(
                at,
                Event::Deliver {
                    from,
                    to,
                    packet: packet.clone(),
                },
            );
        }
    }

    fn deliver(&mut self, from: Addr, to: Addr, packet: Packet) {
        if !self.net.passes(from, to) {
            return;
        }
        match to {
            Addr::Replica { node, .. } => {
                if self.paused(node) {
                    let at = self.faults.paused_until[node] + 1;
                    self.agenda.at(at, Event::Deliver { from, to, packet });
                    return;
                }
                self.with_machine(node, |m, io| m.deliver(io, from, packet));
            }
            Addr::Client(id) => {
                let Some(c) = self.clients.iter().position(|c| c.id == id) else {
                    return;
                };
                if let Packet::Reply {
                    from,
                    seq,
                    shard,
                    result,
                } = packet
                {
                    self.trace.note(self.now, &format!("c{id}"), || {
                        format!("<- r{from} seq {seq} shard {shard} {result:?}")
                    });
                    let next =
                        self.clients[c].reply(&self.history, self.now, from, seq, shard, result);
                    let finished = self.clients[c].pending.is_none();
                    self.client_next(c, next);
                    if finished {
                        self.client_idle(c);
                    }
                }
            }
        }
    }

    fn client_start(&mut self, c: usize) {
        let op = if c == 0 && self.phase == Phase::Audit {
            match self.audit.pop_front() {
                Some(op) => Some(op),
                None => return,
            }
        } else {
            None
        };
        let next = self.clients[c].start(&mut self.rng, &self.history, self.now, op);
        self.client_next(c, next);
    }

    fn client_next(&mut self, c: usize, next: Next) {
        let client = &self.clients[c];
        let attempt = client.pending.as_ref().map_or(0, |p| p.attempt_id);
        match next {
            Next::Send(a) => {
                let id = client.id;
                self.trace.note(self.now, &format!("c{id}"), || {
                    format!(
                        "-> r{} seq {} shard {} {:?}",
                        a.to, a.req.seq, a.req.shard, a.req.op
                    )
                });
                let from = Addr::Client(client.id);
                let to = Addr::Replica {
                    group: GID,
                    node: a.to,
                };
                self.send(from, to, Packet::Request { req: a.req });
                self.agenda.at(
                    self.now + ATTEMPT_TIMEOUT,
                    Event::ClientTimeout { client: c, attempt },
                );
            }
            Next::Pause(d) => self
                .agenda
                .at(self.now + d, Event::ClientResume { client: c, attempt }),
            Next::Idle => {}
        }
    }

    /// Client `c` finished an operation: the next one after a pause (a long one
    /// if it is silent).
    fn client_idle(&mut self, c: usize) {
        let think = self.rng.gen_range(0..30 * MS);
        let at = (self.now + think).max(self.silent_until[c]);
        self.agenda.at(at, Event::ClientStart { client: c });
    }

    /// A client falls silent for longer than the group keeps its duplicate
    /// entry (its current operation, if any, completes first): the entry expires
    /// while other clients go on, at the same instance on every replica.
    pub(crate) fn silence_a_client(&mut self) -> bool {
        if self.clients.len() < 2 {
            return false;
        }
        let c = self.rng.gen_range(0..self.clients.len());
        let extra = self.rng.gen_range(0..10 * SECOND);
        self.silent_until[c] = self.now + self.client_ttl + extra;
        true
    }

    fn clients_idle(&self) -> bool {
        self.clients.iter().all(|c| c.pending.is_none())
    }

    /// The faults stop: heal, restart, and watch for progress.
    fn calm(&mut self) {
        self.phase = Phase::Calm;
        self.trace
            .note(self.now, "world", || "calm: faults stop".into());
        faults::calm(self);
        self.done_at_calm = self.clients.iter().map(|c| c.done).collect();
        // The audit waits for silent clients to be back, so every run lives
        // through the expiry of their entries.
        let back = self.silent_until.iter().copied().max().unwrap_or(0);
        let audit = (self.now + LIVENESS_BOUND / 2).max(back + SECOND);
        self.agenda.at(audit, Event::Audit);
        self.agenda.at(audit + LIVENESS_BOUND, Event::Deadline);
    }

    /// Clients stop taking new operations; client 0 reads every key.
    fn start_audit(&mut self) {
        self.check_liveness();
        if !self.violations.is_empty() {
            return;
        }
        self.phase = Phase::Audit;
        for c in &mut self.clients {
            c.stopping = true;
        }
        self.audit = KEYS.iter().map(|k| LinOp::get(*k)).collect();
        self.audit
            .push_back(LinOp::scan(KEYS[0], KEYS[KEYS.len() - 1]));
        self.agenda.at(self.now, Event::ClientStart { client: 0 });
    }

    /// Invariant (e): once the faults stopped, every client makes progress —
    /// unless a majority of the group lost its disks, in which case it halted.
    fn check_liveness(&mut self) {
        if self.phase == Phase::Faulty {
            return;
        }
        let halted = self.machines.iter().filter(|m| m.halted()).count();
        if halted > 0 {
            if !self.faults.majority_lost {
                self.violations.push(format!(
                    "{halted} replica(s) halted although no majority of the group lost its disks"
                ));
            }
            return;
        }
        if self.faults.majority_lost {
            return; // a stall is what a lost majority may also look like
        }
        for (c, client) in self.clients.iter().enumerate() {
            let before = self.done_at_calm.get(c).copied().unwrap_or(0);
            let stuck = client
                .pending
                .as_ref()
                .filter(|p| self.now.saturating_sub(p.since) > LIVENESS_BOUND / 2);
            let _ = before;
            if let Some(p) = stuck {
                let states = self.describe_machines();
                self.violations.push(format!(
                    "liveness: client {} has waited {} ms for {:?} since the faults stopped; \
                     replicas: {states}",
                    client.id,
                    (self.now - p.since) / MS,
                    p.op
                ));
                return;
            }
        }
    }

    fn describe_machines(&self) -> String {
        self.machines
            .iter()
            .map(|m| match &m.process {
                Process::Down => format!("[r{} down]", m.node),
                Process::Probing => format!("[r{} probing]", m.node),
                Process::Halted { .. } => format!("[r{} halted]", m.node),
                Process::Running(r) => format!(
                    "[r{} gen{} {} leader={:?} commit={} applied={} inc={:?} votes={} \
                     epochs={:?} failed={:?}]",
                    m.node,
                    m.generation,
                    if r.core.is_leader() { "LEADER" } else { "" },
                    r.core.leader(),
                    r.core.commit_index(),
                    r.applier.applied(),
                    r.core.incarnation(),
                    r.core.votes_now(),
                    r.core.membership().epoch_starts(),
                    r.failed
                ),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks the history and reports.
    fn finish(mut self) -> Report {
        if self.violations.is_empty() {
            let verdict = check(&self.history);
            if matches!(
                verdict,
                CheckResult::Violation { .. } | CheckResult::Malformed { .. }
            ) {
                self.violations.push(format!(
                    "the clients' history is not linearizable: {verdict}"
                ));
            }
        }
        let ops: u64 = self.clients.iter().map(|c| c.done).sum();
        let summary = format!(
            "seed {}: {} replicas, {} clients, {} ops, {} instances chosen, {} events, {:.1} s \
             simulated; faults: {}",
            self.seed,
            self.machines.len(),
            self.clients.len(),
            ops,
            self.votes.chosen_count(),
            self.events,
            self.now as f64 / SECOND as f64,
            self.faults.summary()
        );
        if !self.violations.is_empty() {
            let states = self.describe_machines();
            self.trace
                .note(self.now, "world", || format!("end; replicas: {states}"));
        }
        Report {
            seed: self.seed,
            violations: self.violations,
            trace: self.trace.lines().to_vec(),
            summary,
        }
    }
}
