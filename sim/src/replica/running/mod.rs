//! A running replica process: the real Paxos core driven as the tokio driver
//! drives it (its durability decisions carried out against the real segment log
//! on the simulated disk), the real apply side ([`Applier`]) over the service's
//! real state machine with its checkpoints, and the service's request handling
//! (see [`Service`]). One code path for every service.

mod apply;
mod driver;
mod requests;

use super::service::Service;
use super::Io;
use crate::clock::{Time, MS};
use crate::net::Addr;
use paxos::core::{ReadStats, Replica};
use paxos::rsm::{Applier, CheckpointJob};
use paxos::storage::{SegmentLog, Storage};
use paxos::{Decision, Envelope, Slot};
use rand::Rng;
use std::collections::{BTreeMap, VecDeque};

/// Who waits for a read index or a command's output.
#[derive(Clone, Debug)]
pub(crate) enum Waiter<R> {
    /// A client request.
    Client { client: u64, req: R, since: Time },
    /// A peer's snapshot request.
    Snapshot { peer: usize, since: Time },
}

impl<R> Waiter<R> {
    fn since(&self) -> Time {
        match self {
            Waiter::Client { since, .. } | Waiter::Snapshot { since, .. } => *since,
        }
    }
}

/// A replica process that runs service `S`.
pub struct Running<S: Service> {
    pub(crate) core: Replica,
    log: SegmentLog,
    /// Position of the last record appended (see `Replica::on_durable`).
    appended: u64,
    /// Appended records not yet synced.
    pub(crate) unsynced: bool,
    /// When the next sync completes, if one is due.
    sync_due: Option<Time>,
    /// Messages waiting for a sync: each leaves once records up to its position
    /// are durable.
    gated: VecDeque<(u64, Envelope)>,
    pub(crate) applier: Applier<S::State>,
    /// Decisions not yet applied (the apply loop runs a little behind the core).
    decisions: VecDeque<Decision>,
    apply_due: bool,
    /// Bumped by each apply; an idle timer of an older generation is stale.
    applies: u64,
    /// How long without decisions counts as idle (checkpoint).
    idle_after: Time,
    /// The checkpoint being written "in the background".
    job: Option<(CheckpointJob, Slot)>,
    /// Commands proposed here, by origin id.
    waiters: BTreeMap<u64, Waiter<S::Request>>,
    /// Reads waiting for their read index, by read id.
    reads: BTreeMap<u64, Waiter<S::Request>>,
    /// Reads whose index is known, waiting for the state to cover it.
    ready_reads: Vec<(Slot, Waiter<S::Request>)>,
    /// The request path's own state in this process (the KV log clock).
    front: S::Front,
    /// This process's origin nonce and next ids.
    nonce: u64,
    next_id: u64,
    /// The directory's record (its `recovering` nonce while recovering).
    pub(crate) record: S::Record,
    /// The instance a snapshot must cover, while the group forgot what this
    /// replica still needs.
    pub(crate) snapshot_wanted: Option<Slot>,
    /// Failed storage: the replica stopped voting (as the tokio driver's
    /// persister would).
    pub(crate) failed: Option<String>,
    /// The failure was a failed append, not a failed sync: the log may be opened
    /// again in place (see `paxos::node::failure`).
    pub(crate) revivable: bool,
    /// Every decided instance below this went to `decisions` (or is covered by
    /// an installed snapshot): where a revived core replays from.
    handed_out: Slot,
    /// The state machine's durable state covers every instance below this (its
    /// checkpoint, snapshots it installed): what a revived core is restored for.
    durable_applied: Slot,
    /// The core's read counts already added to the group's.
    reads_counted: ReadStats,
}

impl<S: Service> Running<S> {
    /// Starts the replica on its log and state.
    pub(crate) fn start(
        io: &mut Io<'_>,
        core: Replica,
        replay: Vec<Decision>,
        log: SegmentLog,
        applier: Applier<S::State>,
        record: S::Record,
    ) -> Self {
        let idle_after = io.rng.gen_range(20..600) * MS;
        let nonce = applier.origin_tag().1;
        let applied = applier.applied();
        let mut r = Running {
            core,
            log,
            appended: 0,
            unsynced: false,
            sync_due: None,
            gated: VecDeque::new(),
            applier,
            decisions: VecDeque::new(),
            apply_due: false,
            applies: 0,
            idle_after,
            job: None,
            waiters: BTreeMap::new(),
            reads: BTreeMap::new(),
            ready_reads: Vec::new(),
            front: S::Front::default(),
            nonce,
            next_id: 1,
            record,
            snapshot_wanted: None,
            failed: None,
            revivable: false,
            handed_out: applied,
            durable_applied: applied,
            reads_counted: ReadStats::default(),
        };
        r.hand_out(replay);
        r.schedule_apply(io);
        r
    }

    /// Queues decisions for the apply loop and remembers how far they go.
    fn hand_out(&mut self, decisions: Vec<Decision>) {
        for d in decisions {
            if let Decision::Entry(slot, _) = &d {
                self.handed_out = self.handed_out.max(slot + 1);
            }
            self.decisions.push_back(d);
        }
    }

    /// The storage works again after a failed append: as the tokio driver does
    /// (`PaxosNode::start_reviving`), opens the log again and restarts the core
    /// from it, keeping the state machine and the decisions it has not applied.
    pub(crate) fn revive(&mut self, io: &mut Io<'_>) -> Result<(), String> {
        if self.failed.is_none() || !self.revivable {
            return Err("not a revivable failure".into());
        }
        let mut log = self.log.reopen().map_err(|e| e.to_string())?;
        let cfg = self.core.config().clone();
        let handed_out = self.handed_out;
        let (core, replay) =
            paxos::node::restore_in_place(&cfg, &mut log, self.durable_applied, handed_out)
                .map_err(|e| e.to_string())?;
        io.note(|| {
            format!(
                "revived in place: commit {}, floor {}, handed out {handed_out}",
                core.commit_index(),
                core.floor()
            )
        });
        self.core = core;
        self.reads_counted = ReadStats::default();
        self.log = log;
        self.appended = 0;
        self.unsynced = false;
        self.sync_due = None;
        self.gated.clear();
        self.failed = None;
        self.revivable = false;
        self.hand_out(replay);
        self.schedule_apply(io);
        self.drive(io);
        Ok(())
    }

    /// Storage failed: the replica stops (its votes would not be durable).
    fn fail(&mut self, io: &mut Io<'_>, what: &str, e: impl std::fmt::Display) {
        if self.failed.is_none() {
            let why = format!("{what}: {e}");
            io.note(|| format!("storage failed, stops voting: {why}"));
            self.failed = Some(why);
            self.revivable = !self.log.sync_failed();
        }
    }

    /// `ticks` ticks of the core's clock (more than one when the process
    /// catches up after a pause); requests that waited too long time out.
    pub(crate) fn tick(&mut self, io: &mut Io<'_>, ticks: u64) {
        if self.failed.is_some() {
            return;
        }
        self.core.advance(ticks);
        let cutoff = io.now.saturating_sub(S::REQUEST_TIMEOUT);
        let expired: Vec<Waiter<S::Request>> = take_expired(&mut self.waiters, cutoff)
            .into_iter()
            .chain(take_expired(&mut self.reads, cutoff))
            .collect();
        let mut kept = Vec::new();
        for (index, w) in std::mem::take(&mut self.ready_reads) {
            if w.since() < cutoff {
                self.timeout(io, w);
            } else {
                kept.push((index, w));
            }
        }
        self.ready_reads = kept;
        for w in expired {
            self.timeout(io, w);
        }
        self.drive(io);
    }

    fn timeout(&self, io: &mut Io<'_>, w: Waiter<S::Request>) {
        if let Waiter::Client { client, req, .. } = w {
            reply::<S>(io, client, &req, S::timed_out());
        }
    }
}

/// Answers client `client`'s request `req`.
fn reply<S: Service>(io: &mut Io<'_>, client: u64, req: &S::Request, response: S::Response) {
    let packet = S::reply(io.node, req, response);
    io.send(Addr::Client(client), packet);
}

fn take_expired<W>(map: &mut BTreeMap<u64, Waiter<W>>, cutoff: Time) -> Vec<Waiter<W>> {
    let old: Vec<u64> = map
        .iter()
        .filter(|(_, w)| w.since() < cutoff)
        .map(|(k, _)| *k)
        .collect();
    old.into_iter().filter_map(|k| map.remove(&k)).collect()
}

#[cfg(test)]
mod tests;
