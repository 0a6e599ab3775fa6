//! The driver: the core's `Ready` in, I/O out, as the tokio driver carries it
//! out — messages sent, records appended to the log, syncs with their latency,
//! messages gated on a sync, decisions handed to the apply loop, compaction.

use super::{Running, Service};
use crate::clock::{Time, MS};
use crate::replica::{Io, Timer};
use paxos::core::Event;
use paxos::storage::Storage;
use paxos::Decision;
use rand::Rng;

impl<S: Service> Running<S> {
    /// Carries out what the core asks, as the tokio driver does.
    pub(crate) fn drive(&mut self, io: &mut Io<'_>) {
        if self.failed.is_some() {
            return;
        }
        let ready = self.core.take_ready();
        let reads = self.core.read_stats();
        io.reads.lease += reads.lease - self.reads_counted.lease;
        io.reads.read_index += reads.read_index - self.reads_counted.read_index;
        self.reads_counted = reads;
        for env in ready.messages {
            io.send_paxos(env);
        }
        if io.trace.on() {
            for rec in &ready.records {
                if let paxos::Record::Forgotten { below } = rec {
                    let commit = self.core.commit_index();
                    io.note(|| format!("log forgets below {below} (commit {commit})"));
                }
            }
        }
        if !ready.records.is_empty() {
            if let Err(e) = self.log.append(&ready.records) {
                return self.fail(io, "append", e);
            }
            self.appended += ready.records.len() as u64;
            self.unsynced = true;
        }
        for env in ready.after_sync {
            self.gated.push_back((self.appended, env));
        }
        if ready.sync || !self.gated.is_empty() {
            let latency = if io.rng.gen_bool(0.05) {
                io.rng.gen_range(5 * MS..40 * MS)
            } else {
                io.rng.gen_range(50..2 * MS)
            };
            self.want_sync(io, latency);
        } else if self.unsynced {
            self.want_sync(io, 10 * MS);
        }
        for (slot, entry) in ready.committed {
            io.decided(slot, &entry);
            self.handed_out = self.handed_out.max(slot + 1);
            self.decisions.push_back(Decision::Entry(slot, entry));
        }
        for ev in ready.events {
            match ev {
                Event::SnapshotNeeded { floor } => {
                    self.decisions.push_back(Decision::SnapshotNeeded(floor))
                }
                Event::LeaderChanged { leader, ballot } => {
                    io.note(|| format!("follows {leader:?} at {ballot}"))
                }
                Event::MembershipChanged => io.note(|| "membership changed".to_string()),
            }
        }
        for outcome in ready.reads {
            self.read_outcome(io, outcome);
        }
        if let Some(below) = ready.compact_below {
            // As the tokio persister: sync what was appended, then compact (which
            // syncs only when it rotates or deletes a segment).
            if let Err(e) = self.log.sync() {
                return self.fail(io, "sync", e);
            }
            if let Err(e) = self.log.compact(below) {
                return self.fail(io, "compact", e);
            }
            self.unsynced = false;
            self.durable(io);
        }
        self.schedule_apply(io);
    }

    fn want_sync(&mut self, io: &mut Io<'_>, latency: Time) {
        let at = io.now + latency;
        if self.sync_due.is_none_or(|due| at < due) {
            self.sync_due = Some(at);
            io.timer(at, Timer::SyncDone);
        }
    }

    /// A sync completed (if one is due by now: a paused process's timers fire
    /// late, and an earlier request may have been overtaken by a sooner one).
    pub(crate) fn sync_done(&mut self, io: &mut Io<'_>) {
        if self.sync_due.is_none_or(|due| due > io.now) || self.failed.is_some() {
            return;
        }
        self.sync_due = None;
        if self.unsynced {
            if let Err(e) = self.log.sync() {
                return self.fail(io, "sync", e);
            }
            self.unsynced = false;
        }
        self.durable(io);
        self.drive(io);
    }

    /// Every record appended so far is durable: tell the core, let the gated
    /// messages go.
    fn durable(&mut self, io: &mut Io<'_>) {
        self.core.on_durable(self.appended);
        while let Some((pos, _)) = self.gated.front() {
            if *pos > self.appended {
                break;
            }
            let (_, env) = self.gated.pop_front().expect("front exists");
            io.send_paxos(env);
        }
    }
}
