//! The core loop (a tokio task): feeds the core its ticks, messages and requests,
//! carries out each Ready (messages sent, decisions handed out, records and gated
//! messages passed to the persister), and revives the replica after a revivable
//! storage failure.

use super::persister::{Batch, Persister};
use super::{restore_in_place, Decision, Reopen, Shared};
use crate::core::{CoreConfig, Event, ReadOutcome};
use crate::error::PaxosError;
use crate::message::Envelope;
use crate::storage::Storage;
use crate::transport::Transport;
use crate::types::NodeId;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most waiting messages one step of the driver feeds the core before taking its
/// Ready: one Ready, and one fsync, for a whole burst, while a flood of messages
/// cannot hold the core's lock for ever.
const MAX_MESSAGES_PER_STEP: usize = 4096;

/// First wait before a replica whose storage failed tries its disk again.
const REVIVE_FIRST: Duration = Duration::from_millis(200);
/// Longest wait between two tries.
const REVIVE_MAX: Duration = Duration::from_secs(5);
/// A restarted replica that ran this long without failing starts its next back-off
/// from [`REVIVE_FIRST`] again.
const REVIVE_RESET: Duration = Duration::from_secs(60);

/// The task that drives the core: see the module docs.
pub(super) struct CoreLoop {
    pub(super) me: NodeId,
    pub(super) shared: Arc<Shared>,
    pub(super) inbox: mpsc::Receiver<Envelope>,
    /// This replica's own inbox, for messages it sends itself.
    pub(super) loopback: mpsc::Sender<Envelope>,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) batches: std::sync::mpsc::Sender<Batch>,
    pub(super) decisions: mpsc::UnboundedSender<Decision>,
}

impl CoreLoop {
    /// Runs incarnations of the replica until it stops: after a revivable
    /// storage failure, waits for the disk and starts the next one from the log.
    pub(super) async fn supervise(
        mut self,
        tick: Duration,
        cfg: CoreConfig,
        reopen: Option<Reopen>,
    ) {
        let mut backoff = REVIVE_FIRST;
        loop {
            let started = std::time::Instant::now();
            self.run(tick).await;
            let shared = &self.shared;
            if shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            let (Some(reopen), Some(failure)) = (&reopen, shared.failed.get()) else {
                return;
            };
            if !failure.revivable {
                return;
            }
            if started.elapsed() >= REVIVE_RESET {
                backoff = REVIVE_FIRST;
            }
            if !self.revive(&cfg, reopen, &mut backoff).await {
                return;
            }
        }
    }

    /// Waits (doubling `backoff`) until the storage opens again and the replica
    /// restarts from it; false if the node stops first.
    async fn revive(&mut self, cfg: &CoreConfig, reopen: &Reopen, backoff: &mut Duration) -> bool {
        let shared = self.shared.clone();
        loop {
            let until = tokio::time::Instant::now() + *backoff;
            loop {
                // A stopped replica hears nothing, like a crashed one.
                while self.inbox.try_recv().is_ok() {}
                if shared.stopping.load(Ordering::SeqCst) {
                    return false;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    () = shared.wake.notified() => {}
                    _ = self.inbox.recv() => {}
                }
            }
            let wait = *backoff;
            *backoff = (*backoff * 2).min(REVIVE_MAX);
            let applied = shared.durable_applied();
            let handed_out = shared.handed_out.load(Ordering::SeqCst);
            let (cfg, reopen) = (cfg.clone(), reopen.clone());
            let opened = tokio::task::spawn_blocking(move || {
                let mut storage = reopen()?;
                let (replica, replay) =
                    restore_in_place(&cfg, storage.as_mut(), applied, handed_out)?;
                Ok::<_, PaxosError>((storage, replica, replay))
            })
            .await;
            let (storage, replica, replay) = match opened {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => {
                    tracing::warn!(node = self.me, error = %e, retry_in = ?wait, "the log cannot be opened yet; this replica still does not vote");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(node = self.me, error = %e, "opening the log panicked; retrying");
                    continue;
                }
            };
            shared
                .restored_end
                .store(replica.heard_end(), Ordering::SeqCst);
            let mut core = shared.core.lock().unwrap_or_else(|p| p.into_inner());
            *core = replica;
            shared.clock.restart();
            // A snapshot installed, or a checkpoint made durable, while the log was
            // being opened went to the old core (found by the attack on the revive).
            let installed = shared.installed.load(Ordering::SeqCst);
            if installed > applied {
                core.install_snapshot(installed);
            }
            let done_end = shared.done_end.load(Ordering::SeqCst);
            if done_end > applied {
                core.done(done_end - 1);
            }
            drop(core);
            shared.durable.store(0, Ordering::SeqCst);
            hand_out(&shared, &self.decisions, replay);
            match spawn_persister(&shared, self.me, storage, &self.transport, &self.loopback) {
                Ok(batches) => self.batches = batches,
                Err(e) => {
                    tracing::warn!(node = self.me, error = %e, "cannot start the persister; retrying");
                    continue;
                }
            }
            shared.failed.clear();
            tracing::info!(
                node = self.me,
                applied,
                "storage takes writes again: this replica restarted from its log"
            );
            return true;
        }
    }

    /// Runs one incarnation until the node stops, storage fails, or the persister
    /// is gone.
    /// Points the transport at every seat's address as the membership says
    /// (seats added or moved by a change): at start, since the log's
    /// membership may be newer than `--peers`, and at every change.
    fn follow_addresses(&self) {
        let addrs: Vec<(NodeId, String)> = {
            let core = self.shared.core.lock().unwrap_or_else(|p| p.into_inner());
            let latest = core.membership().latest();
            (0..latest.len())
                .filter_map(|n| core.membership().addr(n).map(|a| (n, a.to_string())))
                .collect()
        };
        for (peer, addr) in addrs {
            if peer != self.me {
                self.transport.readdress(peer, &addr);
            }
        }
    }

    async fn run(&mut self, tick: Duration) {
        self.follow_addresses();
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let shared = &self.shared;
            if shared.stopping.load(Ordering::Relaxed) || shared.failed.is_failed() {
                fail_reads(shared);
                return;
            }
            let mut first = None;
            tokio::select! {
                _ = ticker.tick() => {
                    // The ticks due by the monotonic clock (see `TickClock`):
                    // one, or every tick a stall made the ticker miss.
                    let mut core = shared.core.lock().unwrap_or_else(|p| p.into_inner());
                    shared.clock.catch_up(&mut core);
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

    /// Feeds the core `first` and every message already waiting (at most
    /// [`MAX_MESSAGES_PER_STEP`]), and takes its Ready.
    fn step(&mut self, first: Option<Envelope>) -> crate::core::Ready {
        let mut core = self.shared.core.lock().unwrap_or_else(|p| p.into_inner());
        // Time first: the core must not take a message on a clock that lags.
        self.shared.clock.catch_up(&mut core);
        core.on_durable(self.shared.durable.load(Ordering::SeqCst));
        if let Some(env) = first {
            core.handle(env);
            // Take everything already waiting: one Ready, one fsync for all.
            for _ in 0..MAX_MESSAGES_PER_STEP {
                match self.inbox.try_recv() {
                    Ok(env) => {
                        // A long step (a burst of large Accepts) must not leave
                        // the clock behind: a heartbeat acknowledged on a
                        // lagging clock would end the promise guard early in
                        // real time (lease attack, finding 2).
                        self.shared.clock.catch_up(&mut core);
                        core.handle(env)
                    }
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
        hand_out(
            &self.shared,
            &self.decisions,
            ready
                .committed
                .into_iter()
                .map(|(slot, entry)| Decision::Entry(slot, entry)),
        );
        for ev in ready.events {
            match ev {
                Event::SnapshotNeeded { floor } => {
                    let _ = self.decisions.send(Decision::SnapshotNeeded(floor));
                }
                Event::LeaderChanged { leader, ballot } => {
                    tracing::info!(leader = ?leader, %ballot, "leader changed");
                }
                Event::MembershipChanged => self.follow_addresses(),
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

/// Starts a persister thread for replica `me` over `storage`; returns where to
/// send it batches.
pub(super) fn spawn_persister(
    shared: &Arc<Shared>,
    me: NodeId,
    storage: Box<dyn Storage>,
    transport: &Arc<dyn Transport>,
    loopback: &mpsc::Sender<Envelope>,
) -> Result<std::sync::mpsc::Sender<Batch>, PaxosError> {
    let (batch_tx, batch_rx) = std::sync::mpsc::channel();
    let reported = shared.clone();
    let persister = Persister {
        me,
        storage,
        transport: transport.clone(),
        loopback: loopback.clone(),
        stats: shared.stats.clone(),
        failed: shared.failed.clone(),
        stopping: shared.stopping.clone(),
        on_durable: Box::new(move |pos| {
            reported.durable.fetch_max(pos, Ordering::SeqCst);
            reported.wake.notify_one();
        }),
        appended: 0,
        unsynced_since: None,
    };
    std::thread::Builder::new()
        .name(format!("paxos-persist-{me}"))
        .spawn(move || persister.run(batch_rx))?;
    Ok(batch_tx)
}

/// Sends decisions to the application and remembers how far they go.
pub(super) fn hand_out(
    shared: &Shared,
    to: &mpsc::UnboundedSender<Decision>,
    decisions: impl IntoIterator<Item = Decision>,
) {
    for d in decisions {
        if let Decision::Entry(slot, _) = &d {
            shared.handed_out.fetch_max(slot + 1, Ordering::SeqCst);
        }
        let _ = to.send(d);
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
