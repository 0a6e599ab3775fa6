//! The persister: a thread that makes records durable and only then lets the
//! messages that reveal them go (rule 3 of the crate docs). Batches that arrive while
//! an fdatasync is running share the next one: group commit.
//!
//! Messages reveal `Promised` and `Accepted` records (rules 1–2), so a batch holding
//! one of them (or any record other than the three below) waits for an fdatasync
//! before its messages go. `Committed`, `Learned` and `Forgotten` records need no
//! sync of their own (rule 5): they are appended at once and made durable by the next
//! sync, or after [`LAZY_SYNC_AFTER`] if no other batch comes. This halves the
//! fsyncs of a lightly loaded group, where every decision would otherwise cost a
//! second sync for its `Committed` record, and keeps that sync off the path of the
//! next command.

use super::early::DurablePromise;
use crate::message::Envelope;
use crate::record::Record;
use crate::storage::{Storage, StorageError};
use crate::transport::Transport;
use crate::types::{Ballot, NodeId, Slot};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Sender;

/// How long records that need no sync of their own may stay unsynced when no batch
/// comes to sync them.
pub(super) const LAZY_SYNC_AFTER: Duration = Duration::from_millis(10);

/// How often an idle persister checks whether the node is stopping.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// One Ready's worth of durable work.
pub(super) struct Batch {
    pub(super) records: Vec<Record>,
    pub(super) messages: Vec<Envelope>,
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

pub(super) struct Persister {
    pub(super) me: NodeId,
    pub(super) storage: Box<dyn Storage>,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) loopback: Sender<Envelope>,
    pub(super) stats: Arc<PersistStats>,
    pub(super) failed: Arc<AtomicBool>,
    pub(super) stopping: Arc<AtomicBool>,
    /// This replica's highest promise known durable, for the early path.
    pub(super) durable: Arc<DurablePromise>,
    /// The highest promise among the records appended so far.
    pub(super) appended_promise: Ballot,
    /// Records appended and not yet synced (all of them lazy ones between batches).
    pub(super) unsynced: bool,
    /// True while a Learned record is appended but not yet synced.
    pub(super) learned_unsynced: bool,
}

/// True if `record` must be durable before the messages of its batch leave. Only
/// the records of decisions and forgetting are exempt (rule 5 of the crate docs):
/// promises and accepts are what messages reveal (rules 1–2), and any other record
/// (a membership change, or a kind added later) is held to the strict rule too.
fn is_learned(record: &Record) -> bool {
    matches!(record, Record::Learned { .. })
}

fn gates_messages(record: &Record) -> bool {
    !matches!(
        record,
        Record::Committed { .. } | Record::Learned { .. } | Record::Forgotten { .. }
    )
}

/// The ballot a record promises, if any (accepting a ballot promises it).
fn promise_of(record: &Record) -> Option<Ballot> {
    match record {
        Record::Promised(ballot) | Record::Accepted { ballot, .. } => Some(*ballot),
        _ => None,
    }
}

impl Persister {
    /// Runs until the sending side is dropped, the node stops, or storage fails.
    pub(super) fn run(mut self, rx: Receiver<Batch>) {
        loop {
            let wait = if self.unsynced {
                LAZY_SYNC_AFTER
            } else {
                IDLE_POLL
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
                self.send(b.messages);
            }
        }
    }

    /// Marks the replica failed: it stops voting.
    fn fail(&self, e: &StorageError) {
        tracing::error!(node = self.me, error = %e, "storage failed; this replica stops voting");
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Sends a batch's messages once its records are durable.
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

    /// Appends the batches' records, syncs if any of them gates a message, then
    /// compacts.
    fn persist(&mut self, batches: &mut [Batch]) -> Result<(), StorageError> {
        let records: Vec<Record> = batches
            .iter_mut()
            .flat_map(|b| b.records.drain(..))
            .collect();
        let compact = batches.iter().filter_map(|b| b.compact_below).max();
        // A `Committed` record says "the value of every instance below is its
        // Learned or latest Accepted record": it must never be durable while a
        // Learned record before it is not (writeback order is not append order
        // until fdatasync). So a Committed record after an unsynced Learned one
        // waits for a sync.
        let mut start = 0;
        for (i, record) in records.iter().enumerate() {
            if matches!(record, Record::Committed { .. })
                && (self.learned_unsynced || records[start..i].iter().any(is_learned))
            {
                self.append_now(&records[start..i])?;
                self.sync()?;
                start = i;
            }
        }
        self.append_now(&records[start..])?;
        if records.iter().any(gates_messages) {
            self.sync()?;
        }
        if let Some(below) = compact {
            // Compaction syncs before it deletes anything; syncing the lazy records
            // here first keeps `unsynced` and the sync counter exact.
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
        self.unsynced = true;
        self.learned_unsynced |= records.iter().any(is_learned);
        self.stats
            .records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.count_time(started);
        if let Some(promise) = records.iter().filter_map(promise_of).max() {
            self.appended_promise = self.appended_promise.max(promise);
        }
        Ok(())
    }

    /// Makes every appended record durable, if any is not yet, and publishes the
    /// promise that is now durable.
    fn sync(&mut self) -> Result<(), StorageError> {
        if !self.unsynced {
            return Ok(());
        }
        let started = Instant::now();
        self.storage.sync()?;
        self.unsynced = false;
        self.learned_unsynced = false;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.count_time(started);
        self.durable.raise(self.appended_promise);
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

    fn heartbeat(round: u64) -> Envelope {
        Envelope {
            from: 0,
            to: 1,
            msg: Message::Heartbeat {
                ballot: Ballot::new(1, 0),
                commit: 0,
                round,
                done: vec![],
            },
        }
    }

    fn batch(records: Vec<Record>, round: u64) -> Batch {
        Batch {
            records,
            messages: vec![heartbeat(round)],
            compact_below: None,
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

    /// A persister thread on `disk` whose sends are watched.
    struct Running {
        tx: std::sync::mpsc::Sender<Batch>,
        thread: std::thread::JoinHandle<()>,
        watcher: Arc<Watcher>,
        durable: Arc<DurablePromise>,
        _looped: tokio::sync::mpsc::Receiver<Envelope>,
    }

    fn start(disk: &MemDisk) -> Running {
        let watcher = Arc::new(Watcher {
            disk: disk.clone(),
            sent: Mutex::new(Vec::new()),
        });
        let (loopback, looped) = tokio::sync::mpsc::channel(8);
        let durable = Arc::new(DurablePromise::default());
        let persister = Persister {
            me: 0,
            storage: Box::new(disk.open()),
            transport: watcher.clone(),
            loopback,
            stats: Arc::default(),
            failed: Arc::default(),
            stopping: Arc::default(),
            durable: durable.clone(),
            appended_promise: Ballot::ZERO,
            unsynced: false,
            learned_unsynced: false,
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
    fn only_promises_and_accepts_hold_messages_back_and_the_rest_is_synced_soon() {
        let disk = MemDisk::new();
        let Running {
            tx,
            thread,
            watcher,
            durable,
            _looped,
        } = start(&disk);
        let sent = |n: usize| watcher.sent.lock().unwrap().len() >= n;

        // A decision's record needs no sync before the batch's message goes...
        tx.send(batch(vec![Record::Committed { upto: 1 }], 1))
            .unwrap();
        wait_for("the first message", || sent(1));
        // ...while an accept is durable, with everything before it, first.
        let accepted = Record::Accepted {
            slot: 1,
            ballot: Ballot::new(2, 0),
            entry: crate::types::Entry::Noop,
        };
        tx.send(batch(vec![accepted], 2)).unwrap();
        wait_for("the second message", || sent(2));
        let durable_at_send: Vec<usize> =
            watcher.sent.lock().unwrap().iter().map(|s| s.1).collect();
        // The lazy sync only runs on this same thread once no batch comes for
        // LAZY_SYNC_AFTER, so the first message surely went before any sync.
        assert_eq!(
            durable_at_send,
            vec![0, 2],
            "durable records when each message left"
        );
        assert_eq!(durable.get(), Ballot::new(2, 0));

        // A lazy record left alone is synced after LAZY_SYNC_AFTER.
        tx.send(batch(vec![Record::Committed { upto: 2 }], 3))
            .unwrap();
        wait_for("the lazy sync", || disk.synced_records().len() == 3);
        drop(tx);
        thread.join().unwrap();
    }

    #[test]
    fn a_commit_watermark_is_never_written_before_the_learned_value_it_covers_is_durable() {
        let disk = MemDisk::new();
        let Running {
            tx,
            thread,
            watcher,
            _looped,
            ..
        } = start(&disk);
        let learned = Record::Learned {
            slot: 0,
            entry: crate::types::Entry::Noop,
        };
        tx.send(batch(
            vec![learned.clone(), Record::Committed { upto: 1 }],
            1,
        ))
        .unwrap();
        wait_for("the message", || !watcher.sent.lock().unwrap().is_empty());
        // When the batch's message left, the Learned record was durable and the
        // watermark after it was only appended.
        assert_eq!(watcher.sent.lock().unwrap()[0].1, 1);
        assert_eq!(disk.synced_records(), vec![learned]);
        drop(tx);
        thread.join().unwrap();
    }
}
