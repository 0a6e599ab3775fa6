//! A replicated state machine on top of [`PaxosNode`]: the pattern every service of
//! diskv (the shardmaster, the KV groups) follows.
//!
//! - [`Rsm::execute`] proposes a command tagged with a unique origin, waits for it to
//!   appear in the decided log, and returns the output of applying it. If the
//!   command is lost (leader change) the call times out: its outcome is **unknown**
//!   and the caller retries; state machines make retries harmless with their own
//!   (client id, sequence) duplicate detection.
//! - [`Rsm::read`] serves a linearizable read without writing the log: it obtains a
//!   read index from the leader (a majority confirmed its leadership after the read
//!   arrived) and runs the read once everything below that index is applied.
//! - After each run of decisions, and when the log is idle, the state machine may
//!   make its state durable ([`StateMachine::checkpoint`]); the log may then forget
//!   what the checkpoint covers.

use crate::error::PaxosError;
use crate::node::{Decision, PaxosNode};
use crate::types::{NodeId, Slot};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A deterministic state machine replicated through the log.
pub trait StateMachine: Send + 'static {
    /// The commands stored in the log.
    type Command: Serialize + DeserializeOwned + Send + 'static;
    /// What applying a command returns to its proposer.
    type Output: Send + 'static;

    /// Applies one decided command. Must be deterministic: every replica applies the
    /// same commands in the same order and must reach the same state.
    fn apply(&mut self, slot: Slot, cmd: Self::Command) -> Self::Output;

    /// Called after a run of decisions (`idle == false`) or when no decision came
    /// for a while (`idle == true`), with every instance below `applied` applied.
    /// May make the state durable; returns the instance below which everything is
    /// durable in the state machine's own files (the log may then forget it).
    fn checkpoint(&mut self, applied: Slot, idle: bool) -> Result<Option<Slot>, String> {
        let _ = (applied, idle);
        Ok(None)
    }

    /// Like [`StateMachine::checkpoint`], but the slow part (writing files) may come
    /// back as a [`Checkpoint::Job`] that the apply loop runs on a blocking thread
    /// while it goes on applying; [`StateMachine::checkpoint_finished`] then tells
    /// how it went. Never called while an earlier job runs. The default runs
    /// `checkpoint` at once.
    fn checkpoint_job(&mut self, applied: Slot, idle: bool) -> Result<Option<Checkpoint>, String> {
        Ok(self.checkpoint(applied, idle)?.map(Checkpoint::Done))
    }

    /// A job from [`StateMachine::checkpoint_job`] ended with `result`.
    fn checkpoint_finished(&mut self, result: &Result<Slot, String>) {
        let _ = result;
    }

    /// The group forgot instances this replica never applied: the state machine must
    /// replace its state with a snapshot from a peer covering everything below a
    /// slot at or after `floor`, and return that slot. `None` if it cannot (yet).
    fn snapshot_needed(&mut self, floor: Slot) -> Option<Slot> {
        let _ = floor;
        None
    }
}

/// The file writing of a checkpoint, run off the apply loop; returns the instance
/// below which everything is then durable.
pub type CheckpointJob = Box<dyn FnOnce() -> Result<Slot, String> + Send>;

/// What [`StateMachine::checkpoint_job`] did.
pub enum Checkpoint {
    /// Everything below this instance is durable already.
    Done(Slot),
    /// Everything will be durable once this job succeeds.
    Job(CheckpointJob),
}

/// Errors of [`Rsm`] calls.
#[derive(Debug, thiserror::Error)]
pub enum RsmError {
    /// The command was not seen decided in time: it may or may not take effect.
    #[error("timed out waiting for the command to be decided; its outcome is unknown, retry it")]
    Timeout,
    /// The replica cannot serve this (not the leader for reads, stopped, failed).
    #[error(transparent)]
    Paxos(#[from] PaxosError),
}

#[derive(Serialize, Deserialize)]
struct Tagged<C> {
    /// (replica, process nonce, counter): unique across replicas and restarts.
    origin: (u32, u64, u64),
    cmd: C,
}

/// A state handed over by another replica, to replace the local one.
pub struct Install<S> {
    /// Replaces the local state (and makes it durable); an error leaves it as is.
    #[allow(clippy::type_complexity)]
    pub replace: Box<dyn FnOnce(&mut S) -> Result<(), String> + Send>,
    /// Every instance below this is reflected in `state`.
    pub applied: Slot,
    /// The sender's membership epochs.
    pub membership: crate::core::Membership,
}

struct Inner<S: StateMachine> {
    sm: Mutex<S>,
    installs: mpsc::UnboundedSender<Install<S>>,
    snapshot_wanted: watch::Sender<Option<Slot>>,
    waiters: Mutex<HashMap<u64, oneshot::Sender<S::Output>>>,
    me: u32,
    nonce: u64,
    counter: AtomicU64,
    applied: watch::Sender<Slot>,
}

/// A replicated state machine. Cheap to clone.
pub struct Rsm<S: StateMachine> {
    node: PaxosNode,
    inner: Arc<Inner<S>>,
}

impl<S: StateMachine> Clone for Rsm<S> {
    fn clone(&self) -> Self {
        Rsm {
            node: self.node.clone(),
            inner: self.inner.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: StateMachine> Rsm<S> {
    /// Starts applying `decisions` to `sm`, whose state already covers every
    /// instance below `applied`. `idle_after` is how long without decisions counts
    /// as idle for [`StateMachine::checkpoint`].
    pub fn start(
        me: NodeId,
        node: PaxosNode,
        decisions: mpsc::UnboundedReceiver<Decision>,
        sm: S,
        applied: Slot,
        idle_after: Duration,
    ) -> Self {
        let (applied_tx, _) = watch::channel(applied);
        let (installs_tx, installs_rx) = mpsc::unbounded_channel();
        let (wanted_tx, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            sm: Mutex::new(sm),
            installs: installs_tx,
            snapshot_wanted: wanted_tx,
            waiters: Mutex::new(HashMap::new()),
            me: me as u32,
            nonce: rand::random(),
            counter: AtomicU64::new(1),
            applied: applied_tx,
        });
        tokio::spawn(apply_loop(
            inner.clone(),
            node.clone(),
            decisions,
            installs_rx,
            applied,
            idle_after,
        ));
        Rsm { node, inner }
    }

    /// The underlying replica.
    pub fn node(&self) -> &PaxosNode {
        &self.node
    }

    /// Replaces the local state with one from another replica, in order with the
    /// decisions (ignored if the local state is already newer).
    pub fn install(&self, install: Install<S>) {
        let _ = self.inner.installs.send(install);
    }

    /// `Some(floor)` while the log has forgotten instances this replica still
    /// needs: the application should fetch a state covering at least `floor` from
    /// another replica and [`Rsm::install`] it.
    pub fn snapshot_wanted(&self) -> watch::Receiver<Option<Slot>> {
        self.inner.snapshot_wanted.subscribe()
    }

    /// Every instance below this is applied to the local state.
    pub fn applied(&self) -> Slot {
        *self.inner.applied.borrow()
    }

    /// Proposes `cmd` and returns its output once applied here. See the module docs
    /// for what a timeout means.
    pub async fn execute(&self, cmd: S::Command, timeout: Duration) -> Result<S::Output, RsmError> {
        let id = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let tagged = Tagged {
            origin: (self.inner.me, self.inner.nonce, id),
            cmd,
        };
        let bytes = postcard::to_allocvec(&tagged)
            .map_err(|e| PaxosError::Config(format!("cannot encode command: {e}")))?;
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.waiters).insert(id, tx);
        if let Err(e) = self.node.propose(bytes) {
            lock(&self.inner.waiters).remove(&id);
            return Err(e.into());
        }
        let result = tokio::time::timeout(timeout, rx).await;
        lock(&self.inner.waiters).remove(&id);
        match result {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(_)) => Err(PaxosError::Stopped.into()),
            Err(_) => Err(RsmError::Timeout),
        }
    }

    /// A linearizable read: confirms leadership with a majority, waits until the
    /// local state covers the read index, then runs `f` on it.
    pub async fn read<R>(&self, timeout: Duration, f: impl FnOnce(&S) -> R) -> Result<R, RsmError> {
        let work = async {
            let index = self.node.read_index().await?;
            self.wait_applied(index).await?;
            Ok::<R, RsmError>(f(&lock(&self.inner.sm)))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| RsmError::Timeout)?
    }

    /// Waits until every instance below `index` is applied here.
    pub async fn wait_applied(&self, index: Slot) -> Result<(), RsmError> {
        let mut rx = self.inner.applied.subscribe();
        rx.wait_for(|&a| a >= index)
            .await
            .map_err(|_| PaxosError::Stopped)?;
        Ok(())
    }

    /// Runs `f` on the local state as it is now (possibly stale: not linearizable).
    pub fn with_state<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&lock(&self.inner.sm))
    }

    /// Runs `f` on the local state mutably, outside the log (for installing a
    /// snapshot or local bookkeeping that does not change replicated state).
    pub fn with_state_mut<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut lock(&self.inner.sm))
    }
}

/// What woke the apply loop.
enum Wake {
    Decision(Option<Decision>),
    Idle,
    CheckpointDone(Result<Slot, String>),
}

/// Waits for the running checkpoint job, if any (never resolves without one).
async fn job_done(
    job: &mut Option<tokio::task::JoinHandle<Result<Slot, String>>>,
) -> Result<Slot, String> {
    match job.as_mut() {
        Some(handle) => handle
            .await
            .unwrap_or_else(|e| Err(format!("the checkpoint task failed: {e}"))),
        None => std::future::pending().await,
    }
}

async fn apply_loop<S: StateMachine>(
    inner: Arc<Inner<S>>,
    node: PaxosNode,
    mut decisions: mpsc::UnboundedReceiver<Decision>,
    mut installs: mpsc::UnboundedReceiver<Install<S>>,
    mut applied: Slot,
    idle_after: Duration,
) {
    let mut dirty = false;
    // The checkpoint being written off this loop, if any; one at a time.
    let mut job = None;
    loop {
        let wake = tokio::select! {
            d = decisions.recv() => Wake::Decision(d),
            Some(ins) = installs.recv() => {
                if ins.applied > applied {
                    tracing::info!(applied = ins.applied, "installing a state from another replica");
                    if let Err(e) = (ins.replace)(&mut lock(&inner.sm)) {
                        tracing::error!(error = %e, "cannot install the state from another replica");
                        continue;
                    }
                    applied = ins.applied;
                    node.merge_membership(&ins.membership);
                    node.install_snapshot(applied);
                    inner.applied.send_replace(applied);
                    inner.snapshot_wanted.send_replace(None);
                }
                continue;
            }
            result = job_done(&mut job) => Wake::CheckpointDone(result),
            _ = tokio::time::sleep(idle_after) => Wake::Idle,
        };
        let first = match wake {
            Wake::Decision(Some(d)) => d,
            Wake::Decision(None) => return,
            Wake::Idle => {
                if dirty && job.is_none() {
                    dirty = false;
                    checkpoint(&inner, &node, applied, true, &mut job);
                }
                continue;
            }
            Wake::CheckpointDone(result) => {
                job = None;
                lock(&inner.sm).checkpoint_finished(&result);
                checkpoint_durable(&node, applied, result);
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match decisions.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let mut outputs = Vec::new();
        {
            let mut sm = lock(&inner.sm);
            for d in batch {
                match d {
                    Decision::Entry(slot, entry) => {
                        if slot < applied {
                            continue;
                        }
                        for raw in entry.commands() {
                            match postcard::from_bytes::<Tagged<S::Command>>(raw) {
                                Ok(t) => {
                                    let out = sm.apply(slot, t.cmd);
                                    if t.origin.0 == inner.me && t.origin.1 == inner.nonce {
                                        outputs.push((t.origin.2, out));
                                    }
                                }
                                Err(e) => {
                                    tracing::error!(slot, error = %e, "undecodable command in the log; skipped")
                                }
                            }
                        }
                        applied = slot + 1;
                    }
                    Decision::SnapshotNeeded(floor) => {
                        if let Some(upto) = sm.snapshot_needed(floor) {
                            applied = applied.max(upto);
                            node.install_snapshot(upto);
                        } else if floor > applied {
                            // Ask the application (diskv's recovery) for a state
                            // covering `floor`; say so once per new floor.
                            let asked = inner.snapshot_wanted.send_if_modified(|w| {
                                let newer = !matches!(*w, Some(f) if f >= floor);
                                if newer {
                                    *w = Some(floor);
                                }
                                newer
                            });
                            if asked {
                                tracing::warn!(
                                    floor,
                                    applied,
                                    "log forgot instances this replica needs; waiting for a snapshot"
                                );
                            }
                        }
                    }
                }
            }
        }
        inner.applied.send_replace(applied);
        if !outputs.is_empty() {
            let mut waiters = lock(&inner.waiters);
            for (id, out) in outputs {
                if let Some(tx) = waiters.remove(&id) {
                    let _ = tx.send(out);
                }
            }
        }
        dirty = true;
        checkpoint(&inner, &node, applied, false, &mut job);
    }
}

/// Asks the state machine for a checkpoint at `applied`, unless one is being
/// written already (the next run of decisions or idle period asks again).
fn checkpoint<S: StateMachine>(
    inner: &Inner<S>,
    node: &PaxosNode,
    applied: Slot,
    idle: bool,
    job: &mut Option<tokio::task::JoinHandle<Result<Slot, String>>>,
) {
    if job.is_some() {
        return;
    }
    let asked = lock(&inner.sm).checkpoint_job(applied, idle);
    match asked {
        Ok(Some(Checkpoint::Done(durable))) => checkpoint_durable(node, applied, Ok(durable)),
        Ok(Some(Checkpoint::Job(work))) => *job = Some(tokio::task::spawn_blocking(work)),
        Ok(None) => {}
        Err(e) => checkpoint_durable(node, applied, Err(e)),
    }
}

/// A checkpoint ended: the log may forget what it covers.
fn checkpoint_durable(node: &PaxosNode, applied: Slot, result: Result<Slot, String>) {
    match result {
        Ok(durable) if durable > 0 => node.done(durable - 1),
        Ok(_) => {}
        Err(e) => {
            tracing::error!(applied, error = %e, "checkpoint failed; the log keeps everything until one succeeds")
        }
    }
}
