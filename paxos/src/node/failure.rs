//! Why a replica's storage failed, and whether the replica comes back by itself.
//!
//! A storage failure stops the replica as a crash would: it stops voting and
//! answering, and its loops end. What happens next depends on the failure:
//!
//! - **A failed append** (the disk is full, over quota, or refused a write) leaves
//!   the log as it was before the append: the segment log undoes the write, or
//!   the torn tail is cut off when the log is opened again. The node re-opens its
//!   log on a back-off and restarts from it, exactly as after a `kill -9`, once an
//!   open succeeds; see [`crate::node::PaxosNode::start_reviving`].
//! - **A failed sync** may have lost records the page cache still shows (after a
//!   failed fdatasync, Linux may drop the dirty pages). Reading the log back
//!   would trust records that are not on the disk, so the replica stays stopped
//!   until an operator has checked the disk and restarted the process.

use std::time::Instant;

/// A storage failure of a running replica.
#[derive(Clone, Debug)]
pub struct StorageFailure {
    /// The file system is out of space or over quota (ENOSPC, EDQUOT).
    pub no_space: bool,
    /// The replica restarts from its log by itself once the disk takes writes.
    pub revivable: bool,
    /// The error, with the file it is about.
    pub reason: String,
    /// When it happened.
    pub since: Instant,
}

impl StorageFailure {
    /// What an operator reads: the cause and what to do about it.
    pub fn advice(&self) -> String {
        match (self.no_space, self.revivable) {
            (true, true) => format!(
                "the disk is full ({}); this replica stops voting until space is freed, then resumes by itself",
                self.reason
            ),
            (false, true) => format!(
                "a write to the log failed ({}); this replica stops voting and retries on a back-off",
                self.reason
            ),
            (_, false) => format!(
                "a sync of the log failed ({}); the disk may have lost records written since the last sync, \
                 so this replica stays stopped: check the disk (dmesg), then restart the process",
                self.reason
            ),
        }
    }
}

/// The failure of the running incarnation, shared by the persister that sets it,
/// the node that reports it and the supervisor that clears it on a restart.
#[derive(Debug, Default)]
pub(super) struct FailureState {
    failed: std::sync::atomic::AtomicBool,
    failure: std::sync::Mutex<Option<StorageFailure>>,
}

impl FailureState {
    /// Records `failure`; the replica's loops stop at their next turn.
    pub(super) fn set(&self, failure: StorageFailure) {
        *self.lock() = Some(failure);
        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The replica runs again.
    pub(super) fn clear(&self) {
        self.failed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        *self.lock() = None;
    }

    /// True while the storage is failed.
    pub(super) fn is_failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The failure, while there is one. Costs one atomic load while there is
    /// none (services ask on every request).
    pub(super) fn get(&self) -> Option<StorageFailure> {
        if !self.is_failed() {
            return None;
        }
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<StorageFailure>> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner())
    }
}
