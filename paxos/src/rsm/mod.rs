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
//! - [`Rsm::snapshot`] copies the state for a peer that lost its disk, with the
//!   instance it covers and the membership, consistently.
//! - With a budget ([`Rsm::with_window_budget`]), [`Rsm::execute`] waits while the
//!   commands applied and not yet checkpointed hold more than it, and the apply
//!   loop asks for a checkpoint at once (see `window.rs`).
//!
//! The apply side itself has no I/O ([`Applier`]): this module runs it on tokio, and
//! the simulator runs the very same code.

mod applier;
mod trim;
mod window;

pub use applier::{decode, encode, Applied, Applier, CheckpointStep, Origin};
pub use window::{Window, WINDOW_BUDGET_BYTES};

use crate::core::Membership;
use crate::error::PaxosError;
use crate::node::{Decision, PaxosNode};
use crate::types::{NodeId, Slot};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Most decisions the apply loop takes in one batch (one state lock, one wake of
/// the waiters) before looking at its other events again.
const MAX_DECISIONS_PER_BATCH: usize = 1024;

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
    /// Returns the instance below which everything is durable in the state
    /// machine's own files (the log may then forget it). It must not write the
    /// state itself: a state machine with files writes them in a
    /// [`Checkpoint::Job`] (see [`StateMachine::checkpoint_job`]), which the
    /// driver runs only once the log's decisions the state covers are durable —
    /// a state written here could outlive the log's tail in a crash.
    fn checkpoint(&mut self, applied: Slot, idle: bool) -> Result<Option<Slot>, MachineError> {
        let _ = (applied, idle);
        Ok(None)
    }

    /// Like [`StateMachine::checkpoint`], but the slow part (writing files) may come
    /// back as a [`Checkpoint::Job`] that the apply loop runs on a blocking thread
    /// while it goes on applying; [`StateMachine::checkpoint_finished`] then tells
    /// how it went. Never called while an earlier job runs. The default runs
    /// `checkpoint` at once.
    fn checkpoint_job(
        &mut self,
        applied: Slot,
        idle: bool,
    ) -> Result<Option<Checkpoint>, MachineError> {
        Ok(self.checkpoint(applied, idle)?.map(Checkpoint::Done))
    }

    /// A job from [`StateMachine::checkpoint_job`] ended with `result`.
    fn checkpoint_finished(&mut self, result: &Result<Slot, MachineError>) {
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
pub type CheckpointJob = Box<dyn FnOnce() -> Result<Slot, MachineError> + Send>;

/// Why a state machine could not make its state durable (a checkpoint) or
/// install a peer's: the state machine's own error, or what stopped the driver
/// from running the job. Nothing is lost either way: the log keeps every instance
/// until a checkpoint succeeds.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MachineError {
    /// The state machine's error (its files, its checks), kept as it is.
    #[error(transparent)]
    State(Arc<dyn std::error::Error + Send + Sync>),
    /// The replica stopped before the log's decisions the checkpoint covers
    /// were durable, so the job did not run.
    #[error("the replica stopped before the log was durable")]
    Stopped,
    /// The task waiting for the job failed.
    #[error("the checkpoint task failed: {0}")]
    TaskFailed(String),
    /// The job panicked.
    #[error("the checkpoint job panicked: {0}")]
    JobPanicked(String),
}

impl MachineError {
    /// The state machine's error `e`.
    pub fn state(e: impl std::error::Error + Send + Sync + 'static) -> MachineError {
        MachineError::State(Arc::new(e))
    }
}

/// Two errors are equal if they are of the same kind and say the same (the
/// state machine's errors are compared by their message).
impl PartialEq for MachineError {
    fn eq(&self, other: &MachineError) -> bool {
        use MachineError::*;
        match (self, other) {
            (State(a), State(b)) => a.to_string() == b.to_string(),
            (Stopped, Stopped) => true,
            (TaskFailed(a), TaskFailed(b)) | (JobPanicked(a), JobPanicked(b)) => a == b,
            _ => false,
        }
    }
}

/// What [`StateMachine::checkpoint_job`] did.
pub enum Checkpoint {
    /// Everything below this instance is durable already.
    Done(Slot),
    /// Everything will be durable once this job succeeds. The driver runs it once
    /// the log's decisions of the instances it covers are durable.
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

/// A state handed over by another replica, to replace the local one.
pub struct Install<S> {
    /// Replaces the local state (and makes it durable); an error leaves it as is.
    #[allow(clippy::type_complexity)]
    pub replace: Box<dyn FnOnce(&mut S) -> Result<(), MachineError> + Send>,
    /// Every instance below this is reflected in `state`.
    pub applied: Slot,
    /// The sender's membership epochs.
    pub membership: crate::core::Membership,
}

struct Inner<S: StateMachine> {
    applier: Mutex<Applier<S>>,
    installs: mpsc::UnboundedSender<Install<S>>,
    snapshot_wanted: watch::Sender<Option<Slot>>,
    waiters: Mutex<HashMap<u64, oneshot::Sender<S::Output>>>,
    me: u32,
    nonce: u64,
    counter: AtomicU64,
    applied: watch::Sender<Slot>,
    /// True while the log window is over its budget: new proposals wait.
    stalled: watch::Sender<bool>,
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
        let nonce = rand::random();
        let inner = Arc::new(Inner {
            applier: Mutex::new(Applier::new(sm, applied, me as u32, nonce)),
            installs: installs_tx,
            snapshot_wanted: wanted_tx,
            waiters: Mutex::new(HashMap::new()),
            me: me as u32,
            nonce,
            counter: AtomicU64::new(1),
            applied: applied_tx,
            stalled: watch::channel(false).0,
        });
        tokio::spawn(apply_loop(
            inner.clone(),
            node.clone(),
            decisions,
            installs_rx,
            idle_after,
        ));
        Rsm { node, inner }
    }

    /// Bounds the log window to `budget` bytes (see `window.rs`): while the
    /// commands applied here and not yet in a durable checkpoint hold that much,
    /// [`Rsm::execute`] waits before proposing and a checkpoint is asked for at
    /// once. Only for state machines that checkpoint: one that never does would
    /// stall for good once over the budget.
    pub fn with_window_budget(self, budget: usize) -> Self {
        {
            let mut applier = lock(&self.inner.applier);
            applier.set_window_budget(Some(budget));
            publish_window(&self.inner, &applier);
        }
        self
    }

    /// Bytes of commands applied here and not yet covered by a durable
    /// checkpoint, and whether new proposals wait for one (over the budget).
    pub fn window(&self) -> (usize, bool) {
        let applier = lock(&self.inner.applier);
        (applier.window_bytes(), applier.over_budget())
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
    /// for what a timeout means. While the log window is over its budget the
    /// command waits, within `timeout`, before it is proposed (see `window.rs`).
    pub async fn execute(&self, cmd: S::Command, timeout: Duration) -> Result<S::Output, RsmError> {
        let started = tokio::time::Instant::now();
        let mut stalled = self.inner.stalled.subscribe();
        if *stalled.borrow() {
            match tokio::time::timeout(timeout, stalled.wait_for(|&s| !s)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(PaxosError::Stopped.into()),
                // Never proposed: no effect, retrying is safe.
                Err(_) => return Err(RsmError::Timeout),
            }
        }
        self.execute_unthrottled(cmd, timeout.saturating_sub(started.elapsed()))
            .await
    }

    /// Like [`Rsm::execute`], but never waits for the log window: for the
    /// commands that keep the group working (reconfiguration, shard handoffs),
    /// which must not wait behind clients' writes for a checkpoint.
    pub async fn execute_unthrottled(
        &self,
        cmd: S::Command,
        timeout: Duration,
    ) -> Result<S::Output, RsmError> {
        let id = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let origin = Origin {
            replica: self.inner.me,
            nonce: self.inner.nonce,
            id,
        };
        let bytes = encode(origin, &cmd)
            .map_err(|e| PaxosError::Config(format!("cannot encode command: {e}")))?;
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.waiters).insert(id, tx);
        // Removes the waiter however this call ends, dropped (cancelled) included.
        let _waiter = Waiter {
            inner: &self.inner,
            id,
        };
        self.node.propose(bytes)?;
        let result = tokio::time::timeout(timeout, rx).await;
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
            Ok::<R, RsmError>(f(lock(&self.inner.applier).state()))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| RsmError::Timeout)?
    }

    /// A linearizable copy of the state for a peer that lost its disk (see
    /// [`Applier::snapshot`]): `copy` gets the state, the instance it covers and
    /// the membership, consistently.
    pub async fn snapshot<R>(
        &self,
        timeout: Duration,
        copy: impl FnOnce(&S, Slot, Membership) -> R,
    ) -> Result<R, RsmError> {
        let work = async {
            let index = self.node.read_index().await?;
            self.wait_applied(index).await?;
            let applier = lock(&self.inner.applier);
            Ok::<_, RsmError>(applier.snapshot(|| self.node.membership(), copy))
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
        f(lock(&self.inner.applier).state())
    }

    /// Runs `f` on the local state mutably, outside the log (for installing a
    /// snapshot or local bookkeeping that does not change replicated state).
    pub fn with_state_mut<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(lock(&self.inner.applier).state_mut())
    }
}

/// A call's entry in [`Inner::waiters`], removed when the call ends or is dropped.
struct Waiter<'a, S: StateMachine> {
    inner: &'a Inner<S>,
    id: u64,
}

impl<S: StateMachine> Drop for Waiter<'_, S> {
    fn drop(&mut self) {
        lock(&self.inner.waiters).remove(&self.id);
    }
}

/// What woke the apply loop.
enum Wake {
    Decision(Option<Decision>),
    Idle,
    CheckpointDone(Result<Slot, MachineError>),
}

/// Waits for the running checkpoint job, if any (never resolves without one).
async fn job_done(
    job: &mut Option<tokio::task::JoinHandle<Result<Slot, MachineError>>>,
) -> Result<Slot, MachineError> {
    match job.as_mut() {
        Some(handle) => handle
            .await
            .unwrap_or_else(|e| Err(MachineError::TaskFailed(e.to_string()))),
        None => std::future::pending().await,
    }
}

async fn apply_loop<S: StateMachine>(
    inner: Arc<Inner<S>>,
    node: PaxosNode,
    mut decisions: mpsc::UnboundedReceiver<Decision>,
    mut installs: mpsc::UnboundedReceiver<Install<S>>,
    idle_after: Duration,
) {
    // The checkpoint being written off this loop, if any; one at a time.
    let mut job = None;
    loop {
        let wake = tokio::select! {
            d = decisions.recv() => Wake::Decision(d),
            Some(ins) = installs.recv() => {
                install(&inner, &node, ins);
                continue;
            }
            result = job_done(&mut job) => Wake::CheckpointDone(result),
            _ = tokio::time::sleep(idle_after) => Wake::Idle,
        };
        let first = match wake {
            Wake::Decision(Some(d)) => d,
            Wake::Decision(None) => return,
            Wake::Idle => {
                let mut applier = lock(&inner.applier);
                let step = applier.checkpoint(true);
                carry_out(&node, step, &mut job);
                publish_window(&inner, &applier);
                continue;
            }
            Wake::CheckpointDone(result) => {
                job = None;
                let failed = result.is_err();
                let mut applier = lock(&inner.applier);
                let step = applier.checkpoint_finished(result);
                carry_out(&node, step, &mut job);
                // Still over the budget: the next checkpoint at once (after a
                // failure, at the next idle wake, so a failing disk is not
                // hammered).
                if !failed && applier.over_budget() {
                    let step = applier.checkpoint(false);
                    carry_out(&node, step, &mut job);
                }
                publish_window(&inner, &applier);
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_DECISIONS_PER_BATCH {
            match decisions.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let mut outputs = Vec::new();
        let applied = {
            let mut applier = lock(&inner.applier);
            for d in batch {
                let done = applier.apply(d);
                outputs.extend(done.outputs);
                if let Some(upto) = done.installed {
                    node.install_snapshot(upto);
                }
                if let Some(floor) = done.snapshot_wanted {
                    want_snapshot(&inner, floor, applier.applied());
                }
            }
            publish_window(&inner, &applier);
            applier.applied()
        };
        inner.applied.send_replace(applied);
        if !outputs.is_empty() {
            let mut waiters = lock(&inner.waiters);
            for (origin, out) in outputs {
                if let Some(tx) = waiters.remove(&origin.id) {
                    let _ = tx.send(out);
                }
            }
        }
        let mut applier = lock(&inner.applier);
        let step = applier.checkpoint(false);
        carry_out(&node, step, &mut job);
        publish_window(&inner, &applier);
    }
}

/// Tells waiting proposals whether the log window is over its budget; logs
/// each change.
fn publish_window<S: StateMachine>(inner: &Inner<S>, applier: &Applier<S>) {
    let over = applier.over_budget();
    let changed = inner
        .stalled
        .send_if_modified(|s| std::mem::replace(s, over) != over);
    if changed {
        let bytes = applier.window_bytes();
        if over {
            tracing::info!(
                window_bytes = bytes,
                "log window over its budget: new proposals wait for a checkpoint"
            );
        } else {
            tracing::info!(window_bytes = bytes, "log window under its budget again");
        }
    }
}

/// Installs a state from another replica, in order with the decisions.
fn install<S: StateMachine>(inner: &Inner<S>, node: &PaxosNode, ins: Install<S>) {
    let Install {
        replace,
        applied,
        membership,
    } = ins;
    let installed = {
        let mut applier = lock(&inner.applier);
        let installed = applier.install(applied, replace);
        publish_window(inner, &applier);
        installed
    };
    match installed {
        Ok(true) => {
            tracing::info!(applied, "installed a state from another replica");
            node.merge_membership(&membership);
            node.install_snapshot(applied);
            inner.applied.send_replace(applied);
            inner.snapshot_wanted.send_replace(None);
        }
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "cannot install the state from another replica"),
    }
}

/// Asks the application (diskv's recovery) for a state covering `floor`; says so
/// once per new floor.
fn want_snapshot<S: StateMachine>(inner: &Inner<S>, floor: Slot, applied: Slot) {
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

/// Carries out a checkpoint step: a job goes to a blocking thread; a durable
/// checkpoint lets the log forget what it covers.
fn carry_out(
    node: &PaxosNode,
    step: CheckpointStep,
    job: &mut Option<tokio::task::JoinHandle<Result<Slot, MachineError>>>,
) {
    match step {
        CheckpointStep::Idle => {}
        CheckpointStep::Durable(durable) if durable > 0 => {
            node.done(durable - 1);
            trim::after_compaction();
        }
        CheckpointStep::Durable(_) => {}
        CheckpointStep::Job { job: work, upto } => {
            let node = node.clone();
            *job = Some(tokio::spawn(async move {
                if !node.durable_commit_reaches(upto).await {
                    return Err(MachineError::Stopped);
                }
                tokio::task::spawn_blocking(work)
                    .await
                    .unwrap_or_else(|e| Err(MachineError::JobPanicked(e.to_string())))
            }))
        }
        CheckpointStep::Failed(e) => {
            tracing::error!(error = %e, "checkpoint failed; the log keeps everything until one succeeds")
        }
    }
}

#[cfg(test)]
mod tests;
