//! A deterministic simulator of a replica group, for tests.
//!
//! Everything is driven by one seeded generator: message delays, drops, duplicates,
//! reordering, partitions, crashes and restarts. The same seed replays the same run,
//! so a failing seed printed by a test can be debugged. A crashed replica keeps its
//! "disk" (the records it persisted) and restarts with [`Replica::restore`]; a crash
//! may tear the replica's last batch of records (a prefix survives) and always loses
//! the messages of that batch, which is what a real crash between write and send does.
//!
//! Every value a replica reports as decided is checked against every other report of
//! the same instance: two different values is a safety violation and panics at once.
//! So is a stale read: a read asked with [`Sim::read`] and answered at an index
//! below an instance some replica had already reported decided (and applied,
//! with every instance before it) when the read was asked.
//!
//! Groups change: [`Sim::add_seat`] starts a new replica (empty, claiming a seat
//! the group added), [`Sim::propose_change`] asks the leader for a change.

mod network;

pub use network::NetOptions;

use crate::core::{Change, ChangeAnswer, CoreConfig, ReadOutcome, Replica, Status};
use crate::record::Record;
use crate::types::{Entry, NodeId, Slot};
use network::Network;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};

/// Simulated time units per protocol tick.
pub const UNITS_PER_TICK: u64 = 10;

/// A simulated group of replicas.
pub struct Sim {
    /// The seed this run was made from.
    pub seed: u64,
    rng: StdRng,
    time: u64,
    configs: Vec<CoreConfig>,
    nodes: Vec<Option<Replica>>,
    disks: Vec<Vec<Record>>,
    net: Network,
    /// The value every instance was first reported decided with.
    chosen: BTreeMap<Slot, Entry>,
    /// Per replica, the instances handed to its application, in order.
    applied: Vec<Vec<(Slot, Entry)>>,
    /// Read outcomes per replica.
    reads: Vec<Vec<ReadOutcome>>,
    /// Every instance below this was reported decided (and applied).
    chosen_end: Slot,
    /// Reads asked and not answered: (replica, id) → `chosen_end` when asked.
    open_reads: BTreeMap<(NodeId, u64), Slot>,
    /// Messages sent, by kind (messages to self not counted).
    pub sent_by_kind: HashMap<&'static str, u64>,
    /// Records persisted by all replicas, and how many Ready batches had any.
    pub persisted: (u64, u64),
}

impl Sim {
    /// A group of `n` replicas with default tuning and a reliable network.
    pub fn new(n: usize, seed: u64) -> Self {
        Self::with_configs(
            (0..n)
                .map(|i| CoreConfig {
                    seed,
                    ..CoreConfig::new(i, n)
                })
                .collect(),
            seed,
        )
    }

    /// A group with the given per-replica settings.
    pub fn with_configs(configs: Vec<CoreConfig>, seed: u64) -> Self {
        let n = configs.len();
        Sim {
            seed,
            rng: StdRng::seed_from_u64(seed),
            time: 0,
            nodes: configs
                .iter()
                .cloned()
                .map(|c| Some(Replica::new(c)))
                .collect(),
            configs,
            disks: vec![Vec::new(); n],
            net: Network::new(n),
            chosen: BTreeMap::new(),
            applied: vec![Vec::new(); n],
            reads: vec![Vec::new(); n],
            chosen_end: 0,
            open_reads: BTreeMap::new(),
            sent_by_kind: HashMap::new(),
            persisted: (0, 0),
        }
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if the group is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Changes how the network misbehaves.
    pub fn set_net(&mut self, opts: NetOptions) {
        self.net.opts = opts;
    }

    /// Splits the replicas into groups that cannot talk to each other; replicas not
    /// listed are isolated alone.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        self.net.partition(groups);
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        self.net.heal();
    }

    /// A deaf replica receives nothing (it can still send).
    pub fn set_deaf(&mut self, node: NodeId, deaf: bool) {
        self.net.deaf[node] = deaf;
    }

    /// The replica, if it is up.
    pub fn node(&self, i: NodeId) -> Option<&Replica> {
        self.nodes[i].as_ref()
    }

    /// The replica, mutably, if it is up.
    pub fn node_mut(&mut self, i: NodeId) -> Option<&mut Replica> {
        self.nodes[i].as_mut()
    }

    /// True if the replica is up.
    pub fn is_up(&self, i: NodeId) -> bool {
        self.nodes[i].is_some()
    }

    /// Records persisted by replica `i` so far (its simulated disk).
    pub fn disk(&self, i: NodeId) -> &[Record] {
        &self.disks[i]
    }

    /// Instances handed to replica `i`'s application, in order.
    pub fn applied(&self, i: NodeId) -> &[(Slot, Entry)] {
        &self.applied[i]
    }

    /// Read outcomes of replica `i` so far.
    pub fn reads(&self, i: NodeId) -> &[ReadOutcome] {
        &self.reads[i]
    }

    /// Every instance decided anywhere so far with its value.
    pub fn chosen(&self) -> &BTreeMap<Slot, Entry> {
        &self.chosen
    }

    /// Current simulated time in units.
    pub fn now(&self) -> u64 {
        self.time
    }

    /// Stops replica `i` at once. Its in-flight messages stay in the network. With
    /// `tear`, a random prefix of its pending batch of records reaches the disk and
    /// none of the batch's messages leave.
    pub fn crash(&mut self, i: NodeId, tear: bool) {
        if let Some(mut r) = self.nodes[i].take() {
            if tear {
                let ready = r.take_ready();
                let keep = self.rng.gen_range(0..=ready.records.len());
                self.disks[i].extend(ready.records.into_iter().take(keep));
            }
        }
    }

    /// Restarts a crashed replica from its disk.
    pub fn restart(&mut self, i: NodeId) {
        if self.nodes[i].is_none() {
            let r = Replica::restore(self.configs[i].clone(), self.disks[i].iter().cloned());
            self.applied[i].clear();
            self.nodes[i] = Some(r);
        }
    }

    /// Replica `i` loses its disk and restarts empty. It recovers safely: it asks
    /// the group to decide its reincarnation and votes only in instances after
    /// that (see `crate::membership`).
    pub fn lose_disk(&mut self, i: NodeId) {
        let nonce = self.rng.gen::<u64>() | 1;
        self.disks[i].clear();
        self.applied[i].clear();
        let cfg = CoreConfig {
            recovering: Some(nonce),
            ..self.configs[i].clone()
        };
        self.configs[i] = cfg.clone();
        self.nodes[i] = Some(Replica::new(cfg));
    }

    /// Replica `i` loses its disk and restarts empty *as if nothing happened*,
    /// voting at once (the unsafe rule; the configs decide whether votes are
    /// checked against incarnations at all). Used to show what the safe rule
    /// prevents.
    pub fn lose_disk_unsafely(&mut self, i: NodeId) {
        self.disks[i].clear();
        self.applied[i].clear();
        self.nodes[i] = Some(Replica::new(self.configs[i].clone()));
    }

    /// Starts a new replica with an empty disk at the next seat (the group
    /// must add the seat, [`Change::Add`], for it to be heard): it claims the
    /// seat by reincarnation, as a replica that lost its disk does. Returns
    /// its index.
    pub fn add_seat(&mut self) -> NodeId {
        let id = self.nodes.len();
        let nonce = self.rng.gen::<u64>() | 1;
        let cfg = CoreConfig {
            id,
            peers: id + 1,
            recovering: Some(nonce),
            ..self.configs[0].clone()
        };
        self.configs.push(cfg.clone());
        self.nodes.push(Some(Replica::new(cfg)));
        self.disks.push(Vec::new());
        self.applied.push(Vec::new());
        self.reads.push(Vec::new());
        self.net.grow();
        id
    }

    /// Hands `change` to the current leader, if there is one.
    pub fn propose_change(&mut self, change: Change) -> Option<ChangeAnswer> {
        let leader = self.leader()?;
        self.nodes[leader]
            .as_mut()
            .map(|r| r.propose_change(change))
    }

    /// Asks replica `i` for a linearizable read with request id `id`; its
    /// answer is checked against what was decided by now (see the module docs).
    pub fn read(&mut self, i: NodeId, id: u64) {
        if let Some(r) = self.nodes[i].as_mut() {
            self.open_reads.insert((i, id), self.chosen_end);
            r.read_index(id);
        }
    }

    /// Panics unless every two live replicas that applied an instance agree on
    /// the members of every instance up to it plus the window (what applying
    /// the log that far decides). Replicas still recovering are left out.
    pub fn check_memberships(&self) {
        let live: Vec<(NodeId, &Replica)> = (0..self.len())
            .filter_map(|i| self.node(i).map(|r| (i, r)))
            .filter(|(_, r)| r.incarnation().is_some() && r.commit_index() > 0)
            .collect();
        for (a, ra) in &live {
            for (b, rb) in &live {
                let upto = ra.commit_index().min(rb.commit_index()) - 1 + ra.config().window;
                assert_eq!(
                    ra.membership().at(upto),
                    rb.membership().at(upto),
                    "MEMBERSHIPS DIFFER (seed {}, time {}): replicas {a} and {b} (commits {} and \
                     {}) disagree on the members of instance {upto}",
                    self.seed,
                    self.time,
                    ra.commit_index(),
                    rb.commit_index()
                );
            }
        }
    }

    /// Changes replica `i`'s settings from its next restart or disk loss on.
    pub fn set_config(&mut self, i: NodeId, cfg: CoreConfig) {
        self.configs[i] = cfg;
    }

    /// Holds every message from `from` to `to` in the network until released.
    pub fn hold(&mut self, from: NodeId, to: NodeId) {
        self.net.hold(from, to);
    }

    /// Releases held messages from `from` to `to`; they are delivered next step.
    pub fn release(&mut self, from: NodeId, to: NodeId) {
        self.net.release(from, to, self.time);
    }

    /// Runs one time unit: ticks on tick boundaries, deliveries, then every
    /// replica's Ready.
    pub fn step(&mut self) {
        self.time += 1;
        if self.time.is_multiple_of(UNITS_PER_TICK) {
            for r in self.nodes.iter_mut().flatten() {
                r.tick();
            }
        }
        for env in self.net.due(self.time, &mut self.rng) {
            if let Some(r) = self.nodes[env.to].as_mut() {
                r.handle(env);
            }
        }
        for i in 0..self.nodes.len() {
            self.drain_ready(i);
        }
    }

    fn drain_ready(&mut self, i: NodeId) {
        let Some(r) = self.nodes[i].as_mut() else {
            return;
        };
        if !r.has_ready() {
            return;
        }
        let ready = r.take_ready();
        if !ready.records.is_empty() {
            self.persisted.0 += ready.records.len() as u64;
            self.persisted.1 += 1;
        }
        // Persist before send: this simulator's disk is durable at once, so every
        // message may go (the whole-group simulator models syncs).
        self.disks[i].extend(ready.records);
        let handed_out = r.records_handed_out();
        r.on_durable(handed_out);
        for env in ready.messages.into_iter().chain(ready.after_sync) {
            if env.to != env.from {
                *self.sent_by_kind.entry(env.msg.kind()).or_default() += 1;
            }
            self.net.send(env, self.time, &mut self.rng);
        }
        for (slot, entry) in ready.committed {
            self.check_chosen(i, slot, &entry);
            self.applied[i].push((slot, entry));
        }
        for outcome in &ready.reads {
            match *outcome {
                ReadOutcome::Ready { id, index } => {
                    if let Some(floor) = self.open_reads.remove(&(i, id)) {
                        assert!(
                            index >= floor,
                            "STALE READ (seed {}): replica {i} answered read {id} at index \
                             {index}, but every instance below {floor} was decided when it \
                             was asked",
                            self.seed
                        );
                    }
                }
                ReadOutcome::NotLeader { id, .. } => {
                    self.open_reads.remove(&(i, id));
                }
            }
        }
        self.reads[i].extend(ready.reads);
    }

    fn check_chosen(&mut self, node: NodeId, slot: Slot, entry: &Entry) {
        match self.chosen.get(&slot) {
            Some(e) if e != entry => panic!(
                "SAFETY VIOLATION (seed {}): instance {slot} decided as {e:?} and as {entry:?} (replica {node})",
                self.seed
            ),
            Some(_) => {}
            None => {
                self.chosen.insert(slot, entry.clone());
                while self.chosen.contains_key(&self.chosen_end) {
                    self.chosen_end += 1;
                }
            }
        }
    }

    /// Runs `units` time units.
    pub fn run(&mut self, units: u64) {
        for _ in 0..units {
            self.step();
        }
    }

    /// Runs until `cond` holds or `max_units` pass; returns whether it held.
    pub fn run_until(&mut self, max_units: u64, mut cond: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..max_units {
            if cond(self) {
                return true;
            }
            self.step();
        }
        cond(self)
    }

    /// How many live replicas report `slot` decided, checking that they agree with
    /// each other and with everything reported before.
    pub fn ndecided(&mut self, slot: Slot) -> usize {
        let mut n = 0;
        let mut reports = Vec::new();
        for (i, r) in self.nodes.iter().enumerate() {
            if let Some(Status::Decided(e)) = r.as_ref().map(|r| r.status(slot)) {
                reports.push((i, e));
                n += 1;
            }
        }
        for (i, e) in reports {
            self.check_chosen(i, slot, &e);
        }
        n
    }

    /// The replica currently leading, if exactly one live replica thinks it leads
    /// with the highest ballot.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.as_ref()
                    .filter(|r| r.is_leader())
                    .map(|r| (r.promised(), i))
            })
            .max()
            .map(|(_, i)| i)
    }
}
