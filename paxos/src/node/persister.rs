//! The persister: a thread that makes records durable and only then lets the
//! messages that reveal them go (rule 3 of the crate docs). Batches that arrive while
//! an fdatasync is running share the next one: group commit.

use crate::message::Envelope;
use crate::record::Record;
use crate::storage::Storage;
use crate::transport::Transport;
use crate::types::{NodeId, Slot};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Sender;

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
    /// Records made durable.
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
}

impl Persister {
    /// Runs until the sending side is dropped, the node stops, or storage fails.
    pub(super) fn run(mut self, rx: Receiver<Batch>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(b) => b,
                Err(RecvTimeoutError::Timeout) if !self.stopping.load(Ordering::Relaxed) => {
                    continue
                }
                Err(_) => return,
            };
            let mut batches = vec![first];
            batches.extend(rx.try_iter());
            if let Err(e) = self.persist(&mut batches) {
                tracing::error!(node = self.me, error = %e, "storage failed; this replica stops voting");
                self.failed.store(true, Ordering::SeqCst);
                return;
            }
            for b in batches {
                for env in b.messages {
                    if env.to == self.me {
                        // Never block the persister on its own inbox: if it is full
                        // the message is lost like any other, and retransmitted.
                        let _ = self.loopback.try_send(env);
                    } else {
                        self.transport.send(env);
                    }
                }
            }
        }
    }

    fn persist(&mut self, batches: &mut [Batch]) -> Result<(), crate::storage::StorageError> {
        let records: Vec<Record> = batches
            .iter_mut()
            .flat_map(|b| b.records.drain(..))
            .collect();
        let compact = batches.iter().filter_map(|b| b.compact_below).max();
        if !records.is_empty() {
            let started = Instant::now();
            self.storage.append(&records)?;
            self.storage.sync()?;
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
            self.stats
                .records
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            self.stats
                .sync_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        if let Some(below) = compact {
            self.storage.compact(below)?;
        }
        Ok(())
    }
}
