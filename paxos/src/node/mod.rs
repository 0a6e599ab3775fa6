//! The async driver: runs a [`Replica`] on tokio with real storage and a network.
//!
//! Two loops cooperate:
//! - the **core loop** (a tokio task) feeds the core its ticks, messages and
//!   requests, takes each [`crate::core::Ready`], hands decided instances to the
//!   application at once (they are durable on a majority already) and passes records
//!   and messages to the persister;
//! - the **persister** (a thread, because fdatasync blocks) appends and syncs the
//!   records of every batch waiting for it, then sends those batches' gated
//!   messages, and reports how far the records are durable.
//!
//! The core loop never waits for a disk, so while one fdatasync runs, the next
//! batch builds up: that is group commit, and the leader's batching of commands into
//! instances rides on the same effect.
//!
//! The driver is mechanical: the core decides which messages leave at once (a
//! leader's `Accept` and `Heartbeat` once its promise is durable, a follower's
//! `HeartbeatAck`, anything whose records are durable already), which wait for the
//! persister's next sync, and which records may be synced lazily
//! (`core/durability.rs`). The simulator carries out the same decisions.

mod persister;

pub use persister::PersistStats;

use crate::core::{CoreConfig, Event, ReadOutcome, Replica, Status};
use crate::error::PaxosError;
use crate::message::Envelope;
use crate::storage::Storage;
use crate::transport::Transport;
use crate::types::{Command, Entry, NodeId, Slot};
use persister::{Batch, Persister};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

/// What the application receives from [`PaxosNode`], in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Instance `slot` is decided with `entry`; apply its commands in order.
    Entry(Slot, Entry),
    /// The group forgot instances this replica never applied: install a snapshot
    /// taken at or after `floor` from another replica, then call
    /// [`PaxosNode::install_snapshot`].
    SnapshotNeeded(Slot),
}

/// Settings of a [`PaxosNode`].
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The protocol core's settings.
    pub core: CoreConfig,
    /// Length of one core tick.
    pub tick: Duration,
    /// The application has applied every instance below this (from its own
    /// checkpoint); decided instances from here on are replayed to it at start.
    pub applied: Slot,
    /// Capacity of the inbox of incoming messages.
    pub inbox_capacity: usize,
}

impl NodeOptions {
    /// Defaults for replica `id` of `peers`, with 10 ms ticks.
    pub fn new(id: NodeId, peers: usize) -> Self {
        NodeOptions {
            core: CoreConfig::new(id, peers),
            tick: Duration::from_millis(10),
            applied: 0,
            inbox_capacity: 65536,
        }
    }
}

struct Shared {
    core: Mutex<Replica>,
    wake: Notify,
    next_read: AtomicU64,
    reads: Mutex<HashMap<u64, oneshot::Sender<Result<Slot, PaxosError>>>>,
    failed: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    stats: Arc<PersistStats>,
    /// Position of the last record the persister made durable.
    durable: AtomicU64,
}

/// A running replica: the 6.824 API plus command proposals, read-index and the
/// stream of decisions. Cheap to clone.
#[derive(Clone)]
pub struct PaxosNode {
    shared: Arc<Shared>,
    inbox: mpsc::Sender<Envelope>,
}

impl PaxosNode {
    /// Loads `storage`, rebuilds the replica and starts its loops. Incoming messages
    /// must be pushed into [`PaxosNode::inbox`]; decisions arrive on the returned
    /// receiver, starting with every decided instance at or after
    /// `opts.applied`.
    pub fn start(
        opts: NodeOptions,
        mut storage: Box<dyn Storage>,
        transport: Arc<dyn Transport>,
    ) -> Result<(PaxosNode, mpsc::UnboundedReceiver<Decision>), PaxosError> {
        let (replica, replay) = restore(&opts.core, storage.as_mut(), opts.applied)?;
        let (decisions_tx, decisions_rx) = mpsc::unbounded_channel();
        for d in replay {
            let _ = decisions_tx.send(d);
        }
        let (inbox_tx, inbox_rx) = mpsc::channel(opts.inbox_capacity);
        let failed = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PersistStats::default());
        let shared = Arc::new(Shared {
            core: Mutex::new(replica),
            wake: Notify::new(),
            next_read: AtomicU64::new(1),
            reads: Mutex::new(HashMap::new()),
            failed: failed.clone(),
            stopping: stopping.clone(),
            stats: stats.clone(),
            durable: AtomicU64::new(0),
        });
        let (batch_tx, batch_rx) = std::sync::mpsc::channel();
        let reported = shared.clone();
        let persister = Persister {
            me: opts.core.id,
            storage,
            transport: transport.clone(),
            loopback: inbox_tx.clone(),
            stats,
            failed,
            stopping,
            on_durable: Box::new(move |pos| {
                reported.durable.fetch_max(pos, Ordering::SeqCst);
                reported.wake.notify_one();
            }),
            appended: 0,
            unsynced_since: None,
        };
        std::thread::Builder::new()
            .name(format!("paxos-persist-{}", opts.core.id))
            .spawn(move || persister.run(batch_rx))?;
        let node = PaxosNode {
            shared: shared.clone(),
            inbox: inbox_tx,
        };
        let core_loop = CoreLoop {
            me: opts.core.id,
            shared,
            inbox: inbox_rx,
            loopback: node.inbox.clone(),
            transport,
            batches: batch_tx,
            decisions: decisions_tx,
        };
        tokio::spawn(core_loop.run(opts.tick));
        Ok((node, decisions_rx))
    }

    /// Where the network layer pushes incoming messages for this replica.
    pub fn inbox(&self) -> mpsc::Sender<Envelope> {
        self.inbox.clone()
    }

    fn core(&self) -> MutexGuard<'_, Replica> {
        self.shared.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_running(&self) -> Result<(), PaxosError> {
        if self.shared.failed.load(Ordering::Relaxed)
            || self.shared.stopping.load(Ordering::Relaxed)
        {
            Err(PaxosError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Proposes a command: batched by the leader, forwarded by a follower. The
    /// outcome shows in the decision stream; the caller retries on its own deadline.
    pub fn propose(&self, cmd: Command) -> Result<(), PaxosError> {
        self.check_running()?;
        if cmd.len() > crate::core::MAX_COMMAND_BYTES {
            return Err(PaxosError::CommandTooLarge {
                bytes: cmd.len(),
                limit: crate::core::MAX_COMMAND_BYTES,
            });
        }
        self.core().propose(cmd);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// 6.824 `Start(seq, v)`.
    pub fn start_instance(&self, slot: Slot, entry: Entry) {
        self.core().start(slot, entry);
        self.shared.wake.notify_one();
    }

    /// 6.824 `Status(seq)`.
    pub fn status(&self, slot: Slot) -> Status {
        self.core().status(slot)
    }

    /// 6.824 `Done(seq)`: the application no longer needs instances `<= slot`
    /// (it has applied them and made the result durable).
    pub fn done(&self, slot: Slot) {
        self.core().done(slot);
        self.shared.wake.notify_one();
    }

    /// 6.824 `Max()`.
    pub fn max(&self) -> Slot {
        self.core().max()
    }

    /// 6.824 `Min()`.
    pub fn min(&self) -> Slot {
        self.core().min()
    }

    /// Every instance below this is decided here.
    pub fn commit_index(&self) -> Slot {
        self.core().commit_index()
    }

    /// True if this replica leads its group.
    pub fn is_leader(&self) -> bool {
        self.core().is_leader()
    }

    /// The leader this replica knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.core().leader()
    }

    /// This replica's acceptor incarnation; `None` while it recovers a lost disk.
    pub fn incarnation(&self) -> Option<u64> {
        self.core().incarnation()
    }

    /// True once this replica's vote counts in the next instance to decide (see
    /// [`crate::core::Replica::votes_now`]).
    pub fn votes_now(&self) -> bool {
        self.core().votes_now()
    }

    /// True if this replica knows its group has a history (see [`crate::probe`]).
    pub fn has_history(&self) -> bool {
        self.core().has_history()
    }

    /// This replica's answer to a probe from a peer with an empty disk (see
    /// [`crate::core::Replica::probe_answer`]: a candidate answering `Fresh`
    /// drops its ballot).
    pub fn probe_answer(&self) -> crate::core::ProbeAnswer {
        let answer = self.core().probe_answer();
        self.shared.wake.notify_one();
        answer
    }

    /// The membership epochs this replica knows (shipped with snapshots).
    pub fn membership(&self) -> crate::core::Membership {
        self.core().membership().clone()
    }

    /// Takes in membership epochs that came with a snapshot from another replica.
    pub fn merge_membership(&self, m: &crate::core::Membership) {
        self.core().merge_membership(m);
        self.shared.wake.notify_one();
    }

    /// Every instance below this is decided by durable log records (see
    /// [`Replica::durable_commit`]).
    pub fn durable_commit(&self) -> Slot {
        self.core().durable_commit()
    }

    /// Waits until the log's decisions of every instance below `upto` are durable
    /// (a checkpoint covering them may then be written), or this replica stops.
    /// Returns false if it stopped first.
    pub async fn durable_commit_reaches(&self, upto: Slot) -> bool {
        // The persister syncs lazy records within a few milliseconds; polling at
        // that pace costs nothing next to the checkpoint's own writes.
        const POLL: std::time::Duration = std::time::Duration::from_millis(2);
        loop {
            if self.durable_commit() >= upto {
                return true;
            }
            if self.shared.stopping.load(Ordering::SeqCst) || self.has_failed() {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The application installed a snapshot covering every instance below `upto`.
    pub fn install_snapshot(&self, upto: Slot) {
        self.core().install_snapshot(upto);
        self.shared.wake.notify_one();
    }

    /// Read-index: resolves to an instance number once a majority confirmed this
    /// replica still leads; a linearizable read may then be served as soon as the
    /// application has applied every instance below it. Fails with
    /// [`PaxosError::NotLeader`] on a follower.
    pub async fn read_index(&self) -> Result<Slot, PaxosError> {
        self.check_running()?;
        let id = self.shared.next_read.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared
            .reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.core().read_index(id);
        self.shared.wake.notify_one();
        rx.await.unwrap_or(Err(PaxosError::Stopped))
    }

    /// Counters of the persister (fsyncs, records).
    pub fn stats(&self) -> &PersistStats {
        &self.shared.stats
    }

    /// True if storage failed and this replica stopped voting.
    pub fn has_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Stops the replica's loops. Work already handed to the persister is finished.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}

/// Rebuilds a replica from `storage` for an application whose state covers every
/// instance below `applied`; returns it with the decided instances from `applied`
/// on, to replay to the application. Every driver starts a replica this way.
pub fn restore(
    cfg: &CoreConfig,
    storage: &mut dyn Storage,
    applied: Slot,
) -> Result<(Replica, Vec<Decision>), PaxosError> {
    cfg.validate().map_err(PaxosError::Config)?;
    let records = storage.load()?;
    let mut replica = Replica::restore(cfg.clone(), records);
    if applied < replica.floor() {
        return Err(PaxosError::Config(format!(
            "the application applied instances below {applied} only, but the log forgot \
             everything below {}: its checkpoint is older than the log allows",
            replica.floor()
        )));
    }
    // The application's durable state may cover more than the log knows decided:
    // a snapshot installed just before a crash, whose `Forgotten` record (synced
    // lazily) was lost, and with it the snapshot's membership. The replica asks
    // its peers for the membership, then forgets below `applied`, or the log
    // would wait forever for instances the group may have forgotten (found in
    // review).
    replica.doubt_membership(applied);
    let replay = (applied..replica.commit_index())
        .filter_map(|slot| {
            replica
                .decided(slot)
                .map(|e| Decision::Entry(slot, e.clone()))
        })
        .collect();
    Ok((replica, replay))
}

/// The task that drives the core: see the module docs.
struct CoreLoop {
    me: NodeId,
    shared: Arc<Shared>,
    inbox: mpsc::Receiver<Envelope>,
    /// This replica's own inbox, for messages it sends itself.
    loopback: mpsc::Sender<Envelope>,
    transport: Arc<dyn Transport>,
    batches: std::sync::mpsc::Sender<Batch>,
    decisions: mpsc::UnboundedSender<Decision>,
}

impl CoreLoop {
    /// Runs until the node stops, storage fails, or the persister is gone.
    async fn run(mut self, tick: Duration) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let shared = &self.shared;
            if shared.stopping.load(Ordering::Relaxed) || shared.failed.load(Ordering::Relaxed) {
                fail_reads(shared);
                return;
            }
            let mut first = None;
            tokio::select! {
                _ = ticker.tick() => {
                    shared.core.lock().unwrap_or_else(|p| p.into_inner()).tick();
                }
                msg = self.inbox.recv() => match msg {
                    Some(env) => first = Some(env),
                    None => return,
                },
                _ = shared.wake.notified() => {}
            }
            let ready = self.step(first);
            if !ready.is_empty() && !self.carry_out(ready) {
                fail_reads(&self.shared);
                return;
            }
        }
    }

    /// Feeds the core `first` and every message already waiting, and takes its Ready.
    fn step(&mut self, first: Option<Envelope>) -> crate::core::Ready {
        let mut core = self.shared.core.lock().unwrap_or_else(|p| p.into_inner());
        core.on_durable(self.shared.durable.load(Ordering::SeqCst));
        if let Some(env) = first {
            core.handle(env);
            // Take everything already waiting: one Ready, one fsync for all.
            for _ in 0..4096 {
                match self.inbox.try_recv() {
                    Ok(env) => core.handle(env),
                    Err(_) => break,
                }
            }
        }
        core.take_ready()
    }

    /// Sends the messages that may leave at once, hands out decisions, events and
    /// reads, and passes the rest to the persister. False if the persister is gone.
    fn carry_out(&self, ready: crate::core::Ready) -> bool {
        for env in ready.messages {
            if env.to == self.me {
                // Never block the core loop on its own inbox: a full inbox loses the
                // message like the network would, and the leader retransmits.
                let _ = self.loopback.try_send(env);
            } else {
                self.transport.send(env);
            }
        }
        for (slot, entry) in ready.committed {
            let _ = self.decisions.send(Decision::Entry(slot, entry));
        }
        for ev in ready.events {
            match ev {
                Event::SnapshotNeeded { floor } => {
                    let _ = self.decisions.send(Decision::SnapshotNeeded(floor));
                }
                Event::LeaderChanged { leader, ballot } => {
                    tracing::info!(leader = ?leader, %ballot, "leader changed");
                }
            }
        }
        if !ready.reads.is_empty() {
            answer_reads(&self.shared, ready.reads);
        }
        if ready.records.is_empty() && ready.after_sync.is_empty() && ready.compact_below.is_none()
        {
            return true;
        }
        let batch = Batch {
            records: ready.records,
            sync: ready.sync,
            after_sync: ready.after_sync,
            compact_below: ready.compact_below,
        };
        self.batches.send(batch).is_ok()
    }
}

fn answer_reads(shared: &Shared, outcomes: Vec<ReadOutcome>) {
    let mut reads = shared.reads.lock().unwrap_or_else(|p| p.into_inner());
    for outcome in outcomes {
        let (id, result) = match outcome {
            ReadOutcome::Ready { id, index } => (id, Ok(index)),
            ReadOutcome::NotLeader { id, leader } => (id, Err(PaxosError::NotLeader { leader })),
        };
        if let Some(tx) = reads.remove(&id) {
            let _ = tx.send(result);
        }
    }
}

fn fail_reads(shared: &Shared) {
    let mut reads = shared.reads.lock().unwrap_or_else(|p| p.into_inner());
    for (_, tx) in reads.drain() {
        let _ = tx.send(Err(PaxosError::Stopped));
    }
}
