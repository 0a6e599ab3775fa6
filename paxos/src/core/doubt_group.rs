//! The group the doubt-rule attack tests run: cores whose disks are record lists.
//!
//! Every replica runs on a "disk": the records it handed out, in order. A power
//! loss keeps everything up to the last record that needed a sync (`Promised`,
//! `Accepted`, `Membership`: an fdatasync for one of them covers every record
//! appended before it) and loses the lazily synced tail (`Learned`, `Committed`,
//! `Forgotten`, see rule 5 of the crate docs). The application's state is
//! durable on its own (its checkpoint), at `applied`.

use super::tests::take;
use super::*;

/// A group of replicas, each with its disk and its application's `applied`.
pub(super) struct Group {
    pub(super) rs: Vec<Replica>,
    pub(super) disks: Vec<Vec<Record>>,
    /// The events each replica reported to its application.
    pub(super) events: Vec<Vec<Event>>,
}

pub(super) fn cfg(id: NodeId, peers: usize) -> CoreConfig {
    CoreConfig {
        window: 4,
        ..CoreConfig::new(id, peers)
    }
}

/// True for a record whose sync covers every record before it (`Promised`,
/// `Accepted`, `Membership`): a power loss keeps the disk up to the last one.
pub(super) fn gating(r: &Record) -> bool {
    matches!(
        r,
        Record::Promised(_) | Record::Accepted { .. } | Record::Membership(_)
    )
}

impl Group {
    pub(super) fn new(peers: usize) -> Self {
        Self::with_window(peers, cfg(0, peers).window)
    }

    pub(super) fn with_window(peers: usize, window: u64) -> Self {
        Group {
            rs: (0..peers)
                .map(|i| {
                    Replica::new(CoreConfig {
                        window,
                        ..cfg(i, peers)
                    })
                })
                .collect(),
            disks: vec![Vec::new(); peers],
            events: vec![Vec::new(); peers],
        }
    }

    /// Takes every replica's Ready (records to its disk, durable at once) and
    /// returns the messages.
    pub(super) fn take_all(&mut self) -> Vec<Envelope> {
        let mut msgs = Vec::new();
        for (i, r) in self.rs.iter_mut().enumerate() {
            let ready = take(r);
            self.disks[i].extend(ready.records);
            self.events[i].extend(ready.events);
            msgs.extend(ready.messages);
        }
        msgs
    }

    /// One tick of every replica in `up`, then messages delivered until quiet,
    /// those `pass` refuses dropped.
    pub(super) fn round(&mut self, up: &[NodeId], pass: &dyn Fn(&Envelope) -> bool) {
        for &i in up {
            self.rs[i].tick();
        }
        for _ in 0..100 {
            let msgs = self.take_all();
            if msgs.is_empty() {
                return;
            }
            for m in msgs {
                if up.contains(&m.to) && up.contains(&m.from) && pass(&m) {
                    let to = m.to;
                    self.rs[to].handle(m);
                }
            }
        }
        panic!("the group never went quiet");
    }

    pub(super) fn rounds(&mut self, n: usize, up: &[NodeId], pass: &dyn Fn(&Envelope) -> bool) {
        for _ in 0..n {
            self.round(up, pass);
        }
    }

    /// Replica `i` loses power: its disk keeps what the last sync covered, its
    /// application restarts at `applied` (`None`: at the log's commit, as the
    /// checkpoint ordering guarantees for checkpoints); restored as
    /// `node::restore` does. Returns the restored log's commit index (before the
    /// doubt rule). `OLD_RESTORE=1` restores as before the doubt rule
    /// (`install_snapshot`), to show which findings the rule introduced.
    pub(super) fn power_loss(&mut self, i: NodeId, applied: Option<Slot>) -> Slot {
        let disk = &mut self.disks[i];
        let keep = disk.iter().rposition(gating).map_or(0, |p| p + 1);
        disk.truncate(keep);
        let mut r = Replica::restore(self.rs[i].config().clone(), disk.iter().cloned());
        let log_commit = r.commit_index();
        let applied = applied.unwrap_or(log_commit);
        assert!(applied >= r.floor());
        if std::env::var("OLD_RESTORE").is_ok() {
            r.install_snapshot(applied)
        } else {
            r.doubt_membership(applied)
        }
        self.rs[i] = r;
        log_commit
    }
}

/// A delivery filter that lets every message through.
pub(super) fn all(_: &Envelope) -> bool {
    true
}
