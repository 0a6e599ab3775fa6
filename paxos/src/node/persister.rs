//! The persister: a thread that appends the records of every Ready, makes them
//! durable when the core asks (or lazily), and only then sends the messages that
//! waited for them. Batches that arrive while an fdatasync is running share the
//! next one: group commit.
//!
//! Which message waits for which record, and which records need a sync at once,
//! is the core's decision (`core/durability.rs`); this thread carries it out: a
//! batch's `after_sync` messages leave only after a sync that covers every record
//! appended so far, and a batch with `sync == false` (only records that speed up
//! restarts) is made durable by the next sync, and at most [`LAZY_SYNC_AFTER`]
//! after it was appended (checkpoints wait for those records:
//! `PaxosNode::durable_commit`). After each sync it reports how far the records are durable,
//! so the core can let more messages leave early.

use super::failure::{FailureState, StorageFailure};
use crate::message::Envelope;
use crate::record::Record;
use crate::storage::{Storage, StorageError};
use crate::transport::Transport;
use crate::types::{NodeId, Slot};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Sender;

/// How long records that need no sync of their own may stay unsynced, whether or
/// not other batches come.
pub(super) const LAZY_SYNC_AFTER: Duration = Duration::from_millis(10);

/// How often an idle persister checks whether the node is stopping.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// One Ready's worth of durable work.
pub(super) struct Batch {
    pub(super) records: Vec<Record>,
    /// Sync now rather than lazily.
    pub(super) sync: bool,
    /// Messages that leave once every record appended so far is durable.
    pub(super) after_sync: Vec<Envelope>,
    pub(super) compact_below: Option<Slot>,
}

/// Counters of the persister, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct PersistStats {
    /// fdatasync calls made.
    pub syncs: AtomicU64,
    /// Records appended (each durable by the next sync, at most
    /// `LAZY_SYNC_AFTER` later).
    pub records: AtomicU64,
    /// Nanoseconds spent appending and syncing.
    pub sync_nanos: AtomicU64,
}

/// Tells the core loop how far records are durable (a position, see
/// `Replica::on_durable`).
pub(super) type OnDurable = Box<dyn Fn(u64) + Send>;

pub(super) struct Persister {
    pub(super) me: NodeId,
    pub(super) storage: Box<dyn Storage>,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) loopback: Sender<Envelope>,
    pub(super) stats: Arc<PersistStats>,
    pub(super) failed: Arc<FailureState>,
    pub(super) stopping: Arc<AtomicBool>,
    pub(super) on_durable: OnDurable,
    /// Position of the last record appended.
    pub(super) appended: u64,
    /// Since when records appended are not yet synced (`None`: all synced).
    pub(super) unsynced_since: Option<Instant>,
}

impl Persister {
    /// Runs until the sending side is dropped, the node stops, or storage fails.
    pub(super) fn run(mut self, rx: Receiver<Batch>) {
        loop {
            let wait = match self.unsynced_since {
                Some(since) => LAZY_SYNC_AFTER.saturating_sub(since.elapsed()),
                None => IDLE_POLL,
            };
            let first = match rx.recv_timeout(wait) {
                Ok(b) => b,
                Err(timeout_or_gone) => {
                    // Nothing came to sync the lazy records: sync them now.
                    if let Err(e) = self.sync() {
                        return self.fail(&e);
                    }
                    let gone = timeout_or_gone == RecvTimeoutError::Disconnected;
                    if gone || self.stopping.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
            };
            let mut batches = vec![first];
            batches.extend(rx.try_iter());
            if let Err(e) = self.persist(&mut batches) {
                return self.fail(&e);
            }
            for b in batches {
                self.send(b.after_sync);
            }
        }
    }

    /// Marks the replica failed: it stops voting (see [`super::failure`]).
    fn fail(&self, e: &StorageError) {
        let failure = StorageFailure {
            no_space: e.is_no_space(),
            revivable: !self.storage.sync_failed(),
            reason: e.to_string(),
            since: Instant::now(),
        };
        tracing::error!(node = self.me, error = %e, no_space = failure.no_space, revivable = failure.revivable, "storage failed: {}", failure.advice());
        self.failed.set(failure);
    }

    /// Sends messages whose records are durable.
    fn send(&self, messages: Vec<Envelope>) {
        for env in messages {
            if env.to == self.me {
                // Never block the persister on its own inbox: if it is full
                // the message is lost like any other, and retransmitted.
                let _ = self.loopback.try_send(env);
            } else {
                self.transport.send(env);
            }
        }
    }

    /// Appends the batches' records, syncs if any batch asks for it, then compacts.
    fn persist(&mut self, batches: &mut [Batch]) -> Result<(), StorageError> {
        let records: Vec<Record> = batches
            .iter_mut()
            .flat_map(|b| b.records.drain(..))
            .collect();
        let compact = batches.iter().filter_map(|b| b.compact_below).max();
        self.append_now(&records)?;
        // Lazy records wait for the next sync, but never longer than
        // LAZY_SYNC_AFTER, even while batches of lazy records keep coming (a
        // replica learning by catch-up only): checkpoints wait for them.
        let overdue = self
            .unsynced_since
            .is_some_and(|since| since.elapsed() >= LAZY_SYNC_AFTER);
        if overdue || batches.iter().any(|b| b.sync || !b.after_sync.is_empty()) {
            self.sync()?;
        }
        if let Some(below) = compact {
            // Compaction syncs before it deletes anything; syncing the appended
            // records here first keeps `unsynced_since` and the sync counter exact.
            self.sync()?;
            self.storage.compact(below)?;
        }
        Ok(())
    }

    /// Appends records (not yet durable).
    fn append_now(&mut self, records: &[Record]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.storage.append(records)?;
        self.appended += records.len() as u64;
        self.unsynced_since.get_or_insert_with(Instant::now);
        self.stats
            .records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.count_time(started);
        Ok(())
    }

    /// Makes every appended record durable, if any is not yet, and tells the core.
    fn sync(&mut self) -> Result<(), StorageError> {
        if self.unsynced_since.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        self.storage.sync()?;
        self.unsynced_since = None;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.count_time(started);
        (self.on_durable)(self.appended);
        Ok(())
    }

    /// Adds the time since `started` to the time spent appending and syncing.
    fn count_time(&self, started: Instant) {
        let nanos = started.elapsed().as_nanos() as u64;
        self.stats.sync_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::storage::MemDisk;
    use crate::types::{Ballot, Entry};
    use std::sync::Mutex;

    /// Remembers, for each message sent, how many records were durable then.
    struct Watcher {
        disk: MemDisk,
        sent: Mutex<Vec<(Message, usize)>>,
    }

    impl Transport for Watcher {
        fn send(&self, env: Envelope) {
            let durable = self.disk.synced_records().len();
            self.sent.lock().unwrap().push((env.msg, durable));
        }
    }

    fn accepted(slot: Slot) -> Envelope {
        Envelope {
            from: 1,
            to: 0,
            msg: Message::Accepted {
                ballot: Ballot::new(1, 0),
                slot,
                incarnation: 0,
            },
        }
    }

    /// Waits up to 5 s for `cond`.
    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A persister thread on `disk` whose sends and durable reports are watched.
    struct Running {
        tx: std::sync::mpsc::Sender<Batch>,
        thread: std::thread::JoinHandle<()>,
        watcher: Arc<Watcher>,
        durable: Arc<AtomicU64>,
        _looped: tokio::sync::mpsc::Receiver<Envelope>,
    }

    fn start(disk: &MemDisk) -> Running {
        let watcher = Arc::new(Watcher {
            disk: disk.clone(),
            sent: Mutex::new(Vec::new()),
        });
        let (loopback, looped) = tokio::sync::mpsc::channel(8);
        let durable = Arc::new(AtomicU64::new(0));
        let reported = durable.clone();
        let persister = Persister {
            me: 1,
            storage: Box::new(disk.open()),
            transport: watcher.clone(),
            loopback,
            stats: Arc::default(),
            failed: Arc::default(),
            stopping: Arc::default(),
            on_durable: Box::new(move |pos| reported.store(pos, Ordering::SeqCst)),
            appended: 0,
            unsynced_since: None,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || persister.run(rx));
        Running {
            tx,
            thread,
            watcher,
            durable,
            _looped: looped,
        }
    }

    #[test]
    fn messages_wait_for_a_sync_of_every_record_appended_before_them() {
        let disk = MemDisk::new();
        let Running {
            tx,
            thread,
            watcher,
            durable,
            _looped,
        } = start(&disk);
        let record = |slot| Record::Accepted {
            slot,
            ballot: Ballot::new(1, 0),
            entry: Entry::Noop,
        };
        tx.send(Batch {
            records: vec![record(0), record(1)],
            sync: true,
            after_sync: vec![accepted(0), accepted(1)],
            compact_below: None,
        })
        .unwrap();
        wait_for("the replies", || watcher.sent.lock().unwrap().len() == 2);
        let durable_at_send: Vec<usize> =
            watcher.sent.lock().unwrap().iter().map(|s| s.1).collect();
        assert_eq!(durable_at_send, vec![2, 2]);
        assert_eq!(durable.load(Ordering::SeqCst), 2, "positions reported");
        drop(tx);
        thread.join().unwrap();
    }

    #[test]
    fn records_that_need_no_sync_are_synced_soon_and_reported() {
        let disk = MemDisk::new();
        let Running {
            tx,
            thread,
            durable,
            _looped,
            ..
        } = start(&disk);
        tx.send(Batch {
            records: vec![Record::Committed { upto: 1 }],
            sync: false,
            after_sync: vec![],
            compact_below: None,
        })
        .unwrap();
        wait_for("the lazy sync", || disk.synced_records().len() == 1);
        wait_for("the report", || durable.load(Ordering::SeqCst) == 1);
        drop(tx);
        thread.join().unwrap();
    }

    /// Found in review: batches of lazy records only (a replica learning by
    /// catch-up), each within LAZY_SYNC_AFTER of the last, were never synced, and
    /// the checkpoints that wait for them never ran.
    #[test]
    fn lazy_records_are_synced_even_while_lazy_batches_keep_coming() {
        let disk = MemDisk::new();
        let Running {
            tx,
            thread,
            durable,
            _looped,
            ..
        } = start(&disk);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut sent = 0;
        while durable.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "no sync while lazy batches kept coming"
            );
            sent += 1;
            tx.send(Batch {
                records: vec![Record::Committed { upto: sent }],
                sync: false,
                after_sync: vec![],
                compact_below: None,
            })
            .unwrap();
            std::thread::sleep(LAZY_SYNC_AFTER / 5);
        }
        drop(tx);
        thread.join().unwrap();
    }
}
