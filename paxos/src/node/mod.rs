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
//!
//! This file holds the handle the application uses ([`PaxosNode`]); the core
//! loop is in `core_loop.rs`, the persister in `persister.rs`, rebuilding a
//! replica from its storage in `rebuild.rs`, storage failures in `failure.rs`.

mod core_loop;
pub mod failure;
mod persister;
mod rebuild;
pub mod report;
mod seats;

pub use failure::StorageFailure;
pub use persister::PersistStats;
pub use rebuild::{restore, restore_in_place};
pub use report::{DiskGauge, DiskUse, NodeReport, NodeRole, DISK_FIGURE_MAX_AGE};
pub use seats::{GroupSeats, SeatReport};

use crate::core::{CoreConfig, Replica, Status};
use crate::error::PaxosError;
use crate::message::Envelope;
use crate::storage::{Storage, StorageError};
use crate::transport::Transport;
use crate::types::{Command, Entry, NodeId, Slot};
use core_loop::{hand_out, spawn_persister, CoreLoop};
use failure::FailureState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
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
    failed: Arc<FailureState>,
    stopping: Arc<AtomicBool>,
    stats: Arc<PersistStats>,
    /// Position of the last record the persister made durable.
    durable: AtomicU64,
    /// Every decided instance below this was handed to the application, or is
    /// covered by a snapshot it installed: a restart after a storage failure
    /// replays from here.
    handed_out: AtomicU64,
    /// The application's state covers every instance below this, durably: its
    /// checkpoint at start or the highest `upto` of
    /// [`PaxosNode::install_snapshot`] ...
    installed: AtomicU64,
    /// ... and one past the highest [`PaxosNode::done`]. A restart after a
    /// storage failure restores the log for the larger (see
    /// [`Shared::durable_applied`]) and tells a restored core of those that came
    /// while it was being opened.
    done_end: AtomicU64,
    /// One past the highest instance the log held when the running incarnation
    /// was restored from it (see [`PaxosNode::restored_end`]).
    restored_end: AtomicU64,
    /// Replicas in the group.
    peers: usize,
    /// The core's clock.
    clock: TickClock,
}

/// The core's clock follows the machine's monotonic clock (rule 10 of the crate
/// docs): ticks since the core was created, counted from the monotonic clock,
/// not from timer wake-ups, which come late under load and not at all during a
/// stall. Before the core handles a message or a read it is caught up with every
/// tick due ([`Replica::advance`]): a leader whose ticks lagged would hold its
/// lease too long, and a follower that took a heartbeat before catching up would
/// see its promise guard end early.
///
/// `Instant` is `CLOCK_MONOTONIC` on Linux, which stops while the machine is
/// suspended: a suspend breaks the clock assumption (docs/REFERENCE.md §6).
struct TickClock {
    tick: Duration,
    /// When the current core was created (its tick 0).
    origin: Mutex<Instant>,
}

impl TickClock {
    fn new(tick: Duration) -> Self {
        TickClock {
            tick,
            origin: Mutex::new(Instant::now()),
        }
    }

    /// A new core was created now.
    fn restart(&self) {
        *self.origin.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Brings `core`'s clock up to the ticks due by now.
    fn catch_up(&self, core: &mut Replica) {
        let origin = *self.origin.lock().unwrap_or_else(|p| p.into_inner());
        let due = origin.elapsed().as_nanos() / self.tick.as_nanos().max(1);
        let due = u64::try_from(due).unwrap_or(u64::MAX);
        if due > core.now() {
            core.advance(due - core.now());
        }
    }
}

impl Shared {
    /// Every instance below this is covered by the application's durable state.
    fn durable_applied(&self) -> Slot {
        let installed = self.installed.load(Ordering::SeqCst);
        installed.max(self.done_end.load(Ordering::SeqCst))
    }
}

/// Opens a replica's storage again after a storage failure (see
/// [`PaxosNode::start_reviving`]). It may fail while the disk is still full.
pub type Reopen = Arc<dyn Fn() -> Result<Box<dyn Storage>, StorageError> + Send + Sync>;

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
    /// `opts.applied`. A storage failure stops the replica for good (until the
    /// process restarts); see [`PaxosNode::start_reviving`].
    pub fn start(
        opts: NodeOptions,
        storage: Box<dyn Storage>,
        transport: Arc<dyn Transport>,
    ) -> Result<(PaxosNode, mpsc::UnboundedReceiver<Decision>), PaxosError> {
        PaxosNode::start_with(opts, storage, transport, None)
    }

    /// Like [`PaxosNode::start`]. When an append fails (a full disk), the replica
    /// stops as if it crashed, then calls `reopen` on a back-off and restarts
    /// from what the log holds once that works: the application keeps its state
    /// and receives the decisions it has not seen yet (see [`failure`]). A
    /// failed sync is not retried.
    pub fn start_reviving(
        opts: NodeOptions,
        storage: Box<dyn Storage>,
        reopen: Reopen,
        transport: Arc<dyn Transport>,
    ) -> Result<(PaxosNode, mpsc::UnboundedReceiver<Decision>), PaxosError> {
        PaxosNode::start_with(opts, storage, transport, Some(reopen))
    }

    fn start_with(
        opts: NodeOptions,
        mut storage: Box<dyn Storage>,
        transport: Arc<dyn Transport>,
        reopen: Option<Reopen>,
    ) -> Result<(PaxosNode, mpsc::UnboundedReceiver<Decision>), PaxosError> {
        let (replica, replay) = restore(&opts.core, storage.as_mut(), opts.applied)?;
        let (decisions_tx, decisions_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox_rx) = mpsc::channel(opts.inbox_capacity);
        let restored_end = AtomicU64::new(replica.heard_end());
        let shared = Arc::new(Shared {
            core: Mutex::new(replica),
            wake: Notify::new(),
            next_read: AtomicU64::new(1),
            reads: Mutex::new(HashMap::new()),
            failed: Arc::default(),
            stopping: Arc::new(AtomicBool::new(false)),
            stats: Arc::new(PersistStats::default()),
            durable: AtomicU64::new(0),
            handed_out: AtomicU64::new(opts.applied),
            installed: AtomicU64::new(opts.applied),
            done_end: AtomicU64::new(0),
            restored_end,
            peers: opts.core.peers,
            clock: TickClock::new(opts.tick),
        });
        hand_out(&shared, &decisions_tx, replay);
        let node = PaxosNode {
            shared: shared.clone(),
            inbox: inbox_tx,
        };
        let batches = spawn_persister(&shared, opts.core.id, storage, &transport, &node.inbox)?;
        let core_loop = CoreLoop {
            me: opts.core.id,
            shared,
            inbox: inbox_rx,
            loopback: node.inbox.clone(),
            transport,
            batches,
            decisions: decisions_tx,
        };
        tokio::spawn(core_loop.supervise(opts.tick, opts.core.clone(), reopen));
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
        if self.shared.failed.is_failed() || self.shared.stopping.load(Ordering::Relaxed) {
            Err(PaxosError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Proposes a command: batched by the leader, forwarded by a follower. The
    /// outcome shows in the decision stream; the caller retries on its own deadline.
    pub fn propose(&self, cmd: impl Into<Command>) -> Result<(), PaxosError> {
        let cmd = cmd.into();
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
        self.shared
            .done_end
            .fetch_max(slot.saturating_add(1), Ordering::SeqCst);
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

    /// An operator's membership change (see [`crate::membership`]): proposed
    /// if this replica leads and the change can be made now. The answer says
    /// so, or why not, or which replica leads. Poll [`PaxosNode::membership`]
    /// ([`crate::membership::Membership::already`]) to see it take effect.
    pub fn propose_change(&self, change: crate::core::Change) -> crate::core::ChangeAnswer {
        let answer = self.core().propose_change(change);
        self.shared.wake.notify_one();
        answer
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
        self.shared.handed_out.fetch_max(upto, Ordering::SeqCst);
        self.shared.installed.fetch_max(upto, Ordering::SeqCst);
        self.core().install_snapshot(upto);
        self.shared.wake.notify_one();
    }

    /// Read-index: resolves to an instance number once this replica knows it
    /// still leads — at once while it holds a leader lease (no round trip),
    /// otherwise once a majority confirmed it; a linearizable read may then be
    /// served as soon as the application has applied every instance below it.
    /// Fails with [`PaxosError::NotLeader`] on a follower.
    pub async fn read_index(&self) -> Result<Slot, PaxosError> {
        self.check_running()?;
        let id = self.shared.next_read.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared
            .reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        {
            let mut core = self.core();
            // A lease is judged on the monotonic clock as it reads now.
            self.shared.clock.catch_up(&mut core);
            core.read_index(id);
        }
        self.shared.wake.notify_one();
        rx.await.unwrap_or(Err(PaxosError::Stopped))
    }

    /// Counters of the persister (fsyncs, records).
    pub fn stats(&self) -> &PersistStats {
        &self.shared.stats
    }

    /// True while storage is failed and this replica does not vote (a replica
    /// started with [`PaxosNode::start_reviving`] may come back by itself).
    pub fn has_failed(&self) -> bool {
        self.shared.failed.is_failed()
    }

    /// The storage failure that stopped this replica, while it lasts.
    pub fn failure(&self) -> Option<StorageFailure> {
        self.shared.failed.get()
    }

    /// One past the highest instance the log held when this replica last started
    /// (or restarted after a storage failure). Instances below it may hold writes
    /// acknowledged before that start, so a state that has not applied up to here
    /// may lack them.
    pub fn restored_end(&self) -> Slot {
        self.shared.restored_end.load(Ordering::SeqCst)
    }

    /// How many replicas the group has.
    pub fn group_size(&self) -> usize {
        self.shared.peers
    }

    /// True once [`PaxosNode::stop`] was called (a failed replica is not stopped).
    pub fn is_stopped(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Stops the replica's loops. Work already handed to the persister is finished.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}
