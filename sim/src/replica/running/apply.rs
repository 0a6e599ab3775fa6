//! The apply loop, a little behind the core: decisions applied by the real
//! [`Applier`](paxos::rsm::Applier), the waiting proposers answered, checkpoints
//! (written "in the background" once the log's decisions they cover are durable),
//! and snapshots installed from a peer.

use super::{reply, Running, Service, Waiter};
use crate::clock::MS;
use crate::replica::{Io, Timer};
use paxos::rsm::CheckpointStep;
use rand::Rng;

impl<S: Service> Running<S> {
    pub(super) fn schedule_apply(&mut self, io: &mut Io<'_>) {
        if !self.decisions.is_empty() && !self.apply_due {
            self.apply_due = true;
            let lag = io.rng.gen_range(10..1500);
            io.timer(io.now + lag, Timer::Apply);
        }
    }

    /// Applies the decisions waiting, answers what waited for them, and asks for
    /// a checkpoint.
    pub(crate) fn apply(&mut self, io: &mut Io<'_>) {
        self.apply_due = false;
        if self.failed.is_some() || self.decisions.is_empty() {
            return;
        }
        while let Some(d) = self.decisions.pop_front() {
            let done = self.applier.apply(d);
            for (origin, output) in done.outputs {
                if let Some(Waiter::Client { client, req, .. }) = self.waiters.remove(&origin.id) {
                    reply::<S>(io, client, &req, S::answer(output));
                }
            }
            if let Some(upto) = done.installed {
                self.core.install_snapshot(upto);
            }
            if let Some(slot) = done.gap {
                let applied = self.applier.applied();
                io.violation(format!(
                    "instance {slot} was handed to the state machine, which had applied only \
                     up to {applied}"
                ));
            }
            if let Some(floor) = done.snapshot_wanted {
                self.snapshot_wanted = Some(self.snapshot_wanted.map_or(floor, |f| f.max(floor)));
            }
        }
        let applied = self.applier.applied();
        io.digest(applied, S::digest(self.applier.state()), "apply");
        S::observe(self.applier.state(), io);
        self.serve_ready_reads(io);
        let step = self.applier.checkpoint(false);
        self.checkpoint_step(io, step);
        self.applies += 1;
        io.timer(io.now + self.idle_after, Timer::Idle(self.applies));
        self.drive(io);
    }

    /// No decision came for a while: an idle checkpoint.
    pub(crate) fn idle(&mut self, io: &mut Io<'_>, applies: u64) {
        if applies != self.applies || self.failed.is_some() {
            return;
        }
        let step = self.applier.checkpoint(true);
        self.checkpoint_step(io, step);
        self.drive(io);
    }

    fn checkpoint_step(&mut self, io: &mut Io<'_>, step: CheckpointStep) {
        match step {
            CheckpointStep::Idle => {}
            CheckpointStep::Durable(durable) => {
                if durable > 0 {
                    self.core.done(durable - 1);
                    self.durable_applied = self.durable_applied.max(durable);
                }
            }
            CheckpointStep::Job { job, upto } => {
                self.job = Some((job, upto));
                let at = io.now + io.rng.gen_range(200..30 * MS);
                io.timer(at, Timer::CheckpointDone);
            }
            CheckpointStep::Failed(e) => io.note(|| format!("checkpoint failed: {e}")),
        }
    }

    /// The background checkpoint's files are written now.
    pub(crate) fn checkpoint_done(&mut self, io: &mut Io<'_>) {
        let Some((job, upto)) = self.job.take() else {
            return;
        };
        if self.core.durable_commit() < upto {
            // As the tokio driver: the state goes to disk only once the log's
            // decisions it covers are durable.
            self.job = Some((job, upto));
            let at = io.now + io.rng.gen_range(200..5 * MS);
            io.timer(at, Timer::CheckpointDone);
            return;
        }
        let result = job();
        io.note(|| format!("checkpoint written: {result:?}"));
        let step = self.applier.checkpoint_finished(result);
        self.checkpoint_step(io, step);
        self.drive(io);
    }

    /// A snapshot from a peer: installed if it covers what is wanted.
    pub(crate) fn install(&mut self, io: &mut Io<'_>, snap: S::Snapshot) {
        let Some(floor) = self.snapshot_wanted else {
            return;
        };
        let (applied, membership) = S::covers(&snap);
        if applied < floor || self.failed.is_some() {
            return;
        }
        let installed = self.applier.install(applied, |st| S::install(st, &snap));
        match installed {
            Ok(true) => {
                io.note(|| format!("installed a snapshot covering {applied}"));
                self.core.merge_membership(membership);
                self.core.install_snapshot(applied);
                self.handed_out = self.handed_out.max(applied);
                self.durable_applied = self.durable_applied.max(applied);
                self.snapshot_wanted = None;
                io.digest(applied, S::digest(self.applier.state()), "snapshot");
                S::observe(self.applier.state(), io);
                self.serve_ready_reads(io);
                self.drive(io);
            }
            Ok(false) => {}
            Err(e) => io.note(|| format!("cannot install a snapshot: {e}")),
        }
    }
}
