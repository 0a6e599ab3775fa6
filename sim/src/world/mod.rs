//! One simulated run: a KV replica group and, in most runs, the shardmaster's
//! group next to it, their clients, the network, the faults and the checks, all
//! driven by one seeded generator through one agenda of events.
//!
//! A run has three phases. **Faulty**: clients run operations while the fault
//! schedule crashes processes and machines (of either group), loses, corrupts
//! and fills disks, pauses replicas, drifts clocks, and partitions or degrades the
//! network. **Calm**: the faults stop, the network heals, every machine that is
//! down restarts; every client must then complete operations within a bound
//! (liveness), unless its group lost a majority of its disks and halted, which is
//! then what must happen. **Audit**: one KV client reads every key and one
//! shardmaster client queries the latest configuration; the KV history is checked
//! for linearizability (which also shows any acknowledged write that was lost),
//! the shardmaster's against its configurations ([`crate::check::configs`]).

mod clients;
mod machines;
mod masters;
mod phases;

use crate::check::{ConfigLog, Digests, Votes};
use crate::client::{Client, ATTEMPT_TIMEOUT};
use crate::clock::{Agenda, Time, MS, SECOND};
use crate::faults::{self, Faults};
use crate::linearizability::{History, Op as LinOp};
use crate::master_client::{MasterClient, MasterHistory};
use crate::net::{Addr, Network, Weather};
use crate::packet::Packet;
use crate::replica::kv::Kv;
use crate::replica::master::Shardmaster;
use crate::replica::{Machine, Node, Timer};
use crate::trace::Trace;
use paxos::core::{CoreConfig, ReadStats};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::ops::Range;

/// The KV group's id.
pub const GID: u64 = 1;
/// The shardmaster's group id (see [`Addr`]).
pub const MASTER_GID: u64 = 0;
/// The share of runs with a shardmaster group.
const MASTER_RUNS: f64 = 0.9;
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
    /// How far each replica's clock rate may be from nominal, in percent:
    /// `paxos::core::MAX_CLOCK_DRIFT_PERCENT` keeps the clock assumption of
    /// leader leases; more breaks it on purpose (see docs/TESTING.md).
    pub drift_percent: u64,
    /// Percent of the KV clients' operations that are batches of 2 to 5
    /// single-key operations (see `client::batch`).
    pub batch_percent: u32,
}

/// The share of batches in a run's operations unless asked otherwise.
pub const BATCH_PERCENT: u32 = 10;

impl RunOptions {
    /// Seed `seed`, no trace, clocks within the bound.
    pub fn new(seed: u64) -> Self {
        RunOptions {
            seed,
            trace: false,
            drift_percent: paxos::core::MAX_CLOCK_DRIFT_PERCENT,
            batch_percent: BATCH_PERCENT,
        }
    }
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
    /// Reads the groups' leaders answered (every process, both groups): from
    /// their lease, and by read-index.
    pub reads: ReadStats,
}

impl Report {
    /// True if every invariant held.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// One replica group of the run.
pub struct Group {
    /// Its id.
    pub gid: u64,
    /// The index of its replica 0 among the world's machines.
    pub first: usize,
    /// Its replicas.
    pub size: usize,
    /// Its record of proposals and votes.
    pub votes: Votes,
    /// Reads its leaders answered, by lease and by read-index.
    pub reads: ReadStats,
}

impl Group {
    /// Its machines' indices.
    pub fn members(&self) -> Range<usize> {
        self.first..self.first + self.size
    }
}

/// Events of a run (`node`: an index into the world's machines).
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
    MasterStart {
        client: usize,
    },
    MasterTimeout {
        client: usize,
        attempt: u64,
    },
    MasterResume {
        client: usize,
        attempt: u64,
    },
    Fault,
    /// An aimed power loss (see `faults::watch`).
    Aim {
        node: usize,
        epoch: u64,
    },
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
pub(crate) enum Phase {
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
    /// Every group's machines: the KV group's, then the shardmaster's.
    pub(crate) machines: Vec<Box<dyn Node>>,
    /// The groups, KV first.
    pub(crate) groups: Vec<Group>,
    digests: Digests,
    /// Every shardmaster configuration any replica held.
    configs: ConfigLog,
    clients: Vec<Client>,
    history: History,
    /// The shardmaster's clients and their history.
    pub(crate) masters: Vec<MasterClient>,
    pub(crate) master_history: MasterHistory,
    /// The audit's last Query, until a shardmaster client takes it.
    pub(crate) master_audit: Option<shardmaster::Op>,
    pub(crate) trace: Trace,
    pub(crate) violations: Vec<String>,
    pub(crate) phase: Phase,
    /// Operations the auditing client still has to run.
    audit: VecDeque<LinOp>,
    /// Operations completed by each client when the faults stopped.
    done_at_calm: Vec<u64>,
    pub(crate) faults: Faults,
    /// The clocks' drift bound, in percent (see [`RunOptions::drift_percent`]).
    pub(crate) drift_percent: u64,
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
        let masters = match rng.gen_bool(MASTER_RUNS) {
            true if rng.gen_bool(0.3) => 5,
            true => 3,
            false => 0,
        };
        let faults = Faults::new(&mut rng, peers + masters, masters > 0);
        // The duplicate table keeps a silent client longer than any operation can
        // wait for the group (the contract: only a client silent at the log for
        // that long may see a retry applied again), and short enough for runs to
        // see entries expire.
        let client_ttl = faults.duration + LIVENESS_BOUND + 10 * SECOND;
        let mut machines: Vec<Box<dyn Node>> = Vec::new();
        let mut groups = Vec::new();
        let window = rng.gen_range(1..12);
        for (i, core) in cores(&mut rng, peers, window).into_iter().enumerate() {
            let kv = Kv::new(GID, i, peers, NSHARDS, client_ttl / MS);
            machines.push(Box::new(Machine::new(kv, GID, i, peers, core)));
        }
        groups.push(Group {
            gid: GID,
            first: 0,
            size: peers,
            votes: Votes::new(peers, window),
            reads: ReadStats::default(),
        });
        let nclients = rng.gen_range(2..6);
        // Some runs' clients give up on a replica sooner than the Clerk's
        // rhythm, and some clients only read: a stale read from a leader whose
        // lease outlived its leadership needs a writer that found the new
        // leader while a reader still asks the old one.
        let impatient = rng.gen_bool(0.3);
        let clients = (0..nclients)
            .map(|c| {
                let mut client = Client::new(100 + c as u64, peers, NSHARDS);
                client.reader = c > 0 && rng.gen_bool(0.25);
                client.batch_percent = opts.batch_percent;
                client.seed(rng.gen());
                if impatient {
                    client.attempt_timeout = rng.gen_range(20..ATTEMPT_TIMEOUT / MS) * MS;
                }
                client
            })
            .collect();
        let mut master_clients = Vec::new();
        if masters > 0 {
            let window = rng.gen_range(1..12);
            let checkpoint_every = rng.gen_range(1..64);
            for (i, core) in cores(&mut rng, masters, window).into_iter().enumerate() {
                let sm = Shardmaster::new(i, masters, NSHARDS, checkpoint_every);
                machines.push(Box::new(Machine::new(sm, MASTER_GID, i, masters, core)));
            }
            groups.push(Group {
                gid: MASTER_GID,
                first: peers,
                size: masters,
                votes: Votes::new(masters, window),
                reads: ReadStats::default(),
            });
            master_clients = (0..rng.gen_range(1..4))
                .map(|c| MasterClient::new(1000 + c as u64, masters))
                .collect();
        }
        // Each machine's clock runs at its own rate, within the run's bound.
        for m in &mut machines {
            m.set_tick_len(crate::clock::draw_tick_len(&mut rng, opts.drift_percent));
        }
        let mut net = Network::default();
        net.calm = Weather::calm_for_run(&mut rng);
        net.weather = net.calm.clone();
        World {
            seed: opts.seed,
            rng,
            now: 0,
            agenda: Agenda::default(),
            net,
            machines,
            groups,
            digests: Digests::default(),
            configs: ConfigLog::default(),
            clients,
            history: History::new(),
            masters: master_clients,
            master_history: MasterHistory::default(),
            master_audit: None,
            trace: Trace::new(opts.trace),
            violations: Vec::new(),
            phase: Phase::Faulty,
            audit: VecDeque::new(),
            done_at_calm: Vec::new(),
            faults,
            drift_percent: opts.drift_percent,
            events: 0,
            client_ttl,
            silent_until: vec![0; nclients],
        }
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> Report {
        if self.faults.early() {
            self.net.weather = Weather::stormy(&mut self.rng);
        }
        for i in 0..self.machines.len() {
            let at = self.rng.gen_range(0..50 * MS);
            self.agenda.at(at, Event::Restart { node: i, epoch: 0 });
        }
        for c in 0..self.clients.len() {
            self.agenda
                .at(300 * MS + c as Time, Event::ClientStart { client: c });
        }
        for c in 0..self.masters.len() {
            let at = 300 * MS + self.rng.gen_range(0..500 * MS);
            self.agenda.at(at, Event::MasterStart { client: c });
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
                if self.machines[node].epoch() == epoch {
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
            Event::MasterStart { client } => self.master_start(client),
            Event::MasterTimeout { client, attempt } => {
                let next = self.masters[client].timed_out(&mut self.rng, attempt);
                self.master_next(client, next);
            }
            Event::MasterResume { client, attempt } => self.master_resume(client, attempt),
            Event::Fault => {
                if self.phase == Phase::Faulty {
                    faults::strike(self);
                    let gap = self.rng.gen_range(self.faults.gap.0..=self.faults.gap.1);
                    self.agenda.at(self.now + gap, Event::Fault);
                }
            }
            Event::Aim { node, epoch } => faults::aim(self, node, epoch),
            Event::Restart { node, epoch } => {
                let m = &self.machines[node];
                if m.down() && m.epoch() == epoch {
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
        if self.phase == Phase::Audit
            && self.audit.is_empty()
            && self.clients_idle()
            && self.masters_idle()
        {
            return false;
        }
        true
    }
}

/// The core settings of a group of `peers` with in-flight window `window`. The
/// election timeout is the group's, as the window is: leader leases are derived
/// from it on the leader and kept by the promise guard on the followers.
///
/// A fifth of the groups serve every read by read-index: with leases on, a
/// leader answers nearly every read from its lease, and the read-index path
/// would hardly run.
fn cores(rng: &mut StdRng, peers: usize, window: u64) -> Vec<CoreConfig> {
    let heartbeat = rng.gen_range(1..4);
    let election = rng.gen_range(3 * heartbeat + 4..40);
    let lease_reads = rng.gen_bool(0.8);
    (0..peers)
        .map(|i| CoreConfig {
            heartbeat_ticks: heartbeat,
            election_ticks: election,
            lease_reads,
            retransmit_ticks: rng.gen_range(2..15),
            window,
            catchup_bytes: if rng.gen_bool(0.3) { 200 } else { 4 << 20 },
            max_inflight_bytes: if rng.gen_bool(0.3) { 300 } else { 64 << 20 },
            ..CoreConfig::new(i, peers)
        })
        .collect()
}
