//! In-memory storage for simulation tests, and a wrapper that injects faults.
//!
//! A [`MemDisk`] is the "disk": it outlives the [`MemStorage`] handles opened on it and
//! tells appended records from synced ones. [`MemDisk::crash`] keeps only the synced
//! records and kills every handle opened before it, like a process that died; a test
//! then opens a new handle, as the restarted replica would.
//!
//! [`FaultyStorage`] wraps any [`Storage`] and fails the Nth append or sync, or every
//! call once stopped, with [`StorageError::Injected`].

use super::facts::Facts;
use super::{Storage, StorageError};
use crate::record::Record;
use crate::types::Slot;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a [`MemDisk`] holds.
#[derive(Debug, Default)]
struct DiskState {
    records: Vec<Record>,
    /// `records[..synced]` survive a crash.
    synced: usize,
    /// Bumped by every crash; a handle opened in an older generation is dead.
    generation: u64,
}

/// The simulated disk of a replica: shared by the [`MemStorage`] handles opened on it,
/// kept by the test across a simulated crash and restart.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    state: Arc<Mutex<DiskState>>,
}

impl MemDisk {
    /// An empty disk.
    pub fn new() -> Self {
        MemDisk::default()
    }

    /// A storage handle on this disk, as a replica (re)starting on it would open.
    pub fn open(&self) -> MemStorage {
        MemStorage {
            disk: self.clone(),
            generation: self.lock().generation,
        }
    }

    /// Simulates a crash: records appended but not synced are lost, and every handle
    /// opened before the crash fails from now on.
    pub fn crash(&self) {
        let mut state = self.lock();
        let synced = state.synced;
        state.records.truncate(synced);
        state.generation += 1;
    }

    /// Every record on the disk, synced or not.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    /// The records that would survive a crash now.
    pub fn synced_records(&self) -> Vec<Record> {
        let state = self.lock();
        state.records[..state.synced].to_vec()
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A test that panicked while holding the lock leaves consistent state behind:
        // every mutation below completes before it can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An in-memory [`Storage`] on a [`MemDisk`], for simulation tests.
#[derive(Debug)]
pub struct MemStorage {
    disk: MemDisk,
    generation: u64,
}

impl Default for MemStorage {
    fn default() -> Self {
        MemStorage::new()
    }
}

impl MemStorage {
    /// A storage on a fresh, empty disk.
    pub fn new() -> Self {
        MemDisk::new().open()
    }

    /// The disk under this storage, to crash it and reopen it after a restart.
    pub fn disk(&self) -> MemDisk {
        self.disk.clone()
    }

    /// The disk's state, unless a crash since this handle was opened killed it.
    fn state(&self) -> Result<MutexGuard<'_, DiskState>, StorageError> {
        let state = self.disk.lock();
        if state.generation != self.generation {
            return Err(StorageError::Injected(
                "this storage handle was opened before a simulated crash".into(),
            ));
        }
        Ok(state)
    }
}

impl Storage for MemStorage {
    fn load(&mut self) -> Result<Vec<Record>, StorageError> {
        Ok(self.state()?.records.clone())
    }

    fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.state()?.records.extend_from_slice(records);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let mut state = self.state()?;
        state.synced = state.records.len();
        Ok(())
    }

    /// Drops the records about instances below `below`, keeping what outlives them: an
    /// `Accepted` record's implied promise stays as a `Promised` record, and a promise
    /// or watermark goes only once a later record at least as high is as durable.
    fn compact(&mut self, below: Slot) -> Result<(), StorageError> {
        let mut state = self.state()?;
        let synced = state.synced;
        let old = std::mem::take(&mut state.records);
        let (mut later_synced, mut later_all) = (Facts::default(), Facts::default());
        let (mut kept, mut kept_synced) = (Vec::with_capacity(old.len()), 0);
        for (i, record) in old.into_iter().enumerate().rev() {
            let record = match record {
                Record::Accepted { slot, ballot, .. } if slot < below => Record::Promised(ballot),
                Record::Learned { slot, .. } if slot < below => continue,
                record => record,
            };
            let is_synced = i < synced;
            // A synced fact may only be dropped for a later synced one.
            let later = if is_synced { &later_synced } else { &later_all };
            let redundant = match record {
                Record::Promised(ballot) => later.promised >= Some(ballot),
                Record::Committed { upto } => later.committed >= Some(upto),
                Record::Forgotten { below } => later.forgotten >= Some(below),
                Record::Membership(ref m) => {
                    later.membership.as_ref().map(|l| l.version()) >= Some(m.version())
                }
                Record::LegacyMembership(ref m) => {
                    let m: crate::core::Membership = m.clone().into();
                    later.membership.as_ref().map(|l| l.version()) >= Some(m.version())
                }
                Record::Accepted { .. } | Record::Learned { .. } => false,
            };
            if is_synced {
                later_synced.observe(&record);
            }
            later_all.observe(&record);
            if !redundant {
                kept_synced += usize::from(is_synced);
                kept.push(record);
            }
        }
        kept.reverse();
        state.records = kept;
        state.synced = kept_synced;
        Ok(())
    }
}

/// When a [`FaultyStorage`] fails. Calls are counted from 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The call to `append` that fails (nothing is appended).
    pub fail_append: Option<u64>,
    /// The call to `sync` that fails (nothing is synced).
    pub fail_sync: Option<u64>,
    /// After the first planned fault, fail every later call: a dead disk.
    pub stop_after_fault: bool,
}

impl FaultPlan {
    /// Fails the `n`th append.
    pub fn fail_append(n: u64) -> Self {
        FaultPlan {
            fail_append: Some(n),
            ..FaultPlan::default()
        }
    }

    /// Fails the `n`th sync.
    pub fn fail_sync(n: u64) -> Self {
        FaultPlan {
            fail_sync: Some(n),
            ..FaultPlan::default()
        }
    }

    /// Also fails every call after the planned fault.
    pub fn then_stop(self) -> Self {
        FaultPlan {
            stop_after_fault: true,
            ..self
        }
    }
}

/// Stops (or revives) a [`FaultyStorage`] from outside, e.g. while a driver task
/// owns it. Clones share the switch.
#[derive(Clone, Debug, Default)]
pub struct FaultSwitch {
    stopped: Arc<AtomicBool>,
    full: Arc<AtomicBool>,
}

impl FaultSwitch {
    /// Every later call of the storage fails.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Calls go through again.
    pub fn resume(&self) {
        self.stopped.store(false, Ordering::SeqCst);
    }

    /// Whether calls fail.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// The disk is full: every later append fails with `ENOSPC` (and appends
    /// nothing); syncs and everything else still work.
    pub fn fill(&self) {
        self.full.store(true, Ordering::SeqCst);
    }

    /// Space was freed: appends work again.
    pub fn make_room(&self) {
        self.full.store(false, Ordering::SeqCst);
    }

    /// Whether appends fail for lack of space.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }
}

/// A [`Storage`] that fails when its [`FaultPlan`] or its [`FaultSwitch`] says so, and
/// otherwise passes calls to the storage it wraps.
#[derive(Debug)]
pub struct FaultyStorage<S: Storage> {
    inner: S,
    plan: FaultPlan,
    switch: FaultSwitch,
    appends: u64,
    syncs: u64,
    sync_failed: bool,
}

impl<S: Storage> FaultyStorage<S> {
    /// Wraps `inner`, failing as `plan` says.
    pub fn new(inner: S, plan: FaultPlan) -> Self {
        FaultyStorage::with_switch(inner, plan, FaultSwitch::default())
    }

    /// Like [`FaultyStorage::new`], obeying `switch` (shared with other storages,
    /// e.g. the copies a reviving replica opens one after another).
    pub fn with_switch(inner: S, plan: FaultPlan, switch: FaultSwitch) -> Self {
        FaultyStorage {
            inner,
            plan,
            switch,
            appends: 0,
            syncs: 0,
            sync_failed: false,
        }
    }

    /// The switch that stops this storage.
    pub fn switch(&self) -> FaultSwitch {
        self.switch.clone()
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the storage.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn check_running(&self, call: &str) -> Result<(), StorageError> {
        if self.switch.is_stopped() {
            return Err(StorageError::Injected(format!("{call}: storage stopped")));
        }
        Ok(())
    }

    /// Fails if call number `count` of `call` is the planned fault.
    fn check_plan(&self, call: &str, count: u64, planned: Option<u64>) -> Result<(), StorageError> {
        if planned != Some(count) {
            return Ok(());
        }
        if self.plan.stop_after_fault {
            self.switch.stop();
        }
        Err(StorageError::Injected(format!(
            "{call} #{count} failed as planned"
        )))
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn load(&mut self) -> Result<Vec<Record>, StorageError> {
        self.check_running("load")?;
        self.inner.load()
    }

    fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.check_running("append")?;
        if self.switch.is_full() {
            return Err(StorageError::Io {
                path: "<memory>".into(),
                source: std::io::Error::from_raw_os_error(28),
            });
        }
        self.appends += 1;
        self.check_plan("append", self.appends, self.plan.fail_append)?;
        self.inner.append(records)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.syncs += 1;
        let failed = self
            .check_running("sync")
            .and_then(|()| self.check_plan("sync", self.syncs, self.plan.fail_sync))
            .and_then(|()| self.inner.sync());
        self.sync_failed |= failed.is_err();
        failed
    }

    fn sync_failed(&self) -> bool {
        self.sync_failed || self.inner.sync_failed()
    }

    fn compact(&mut self, below: Slot) -> Result<(), StorageError> {
        self.check_running("compact")?;
        self.inner.compact(below)
    }
}
