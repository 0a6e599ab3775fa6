//! One writer of a folder at a time: a checkpoint written off the apply loop marks
//! its store's folder ([`Writing`]) until it is done, and a replica restarted in
//! the same process opens that folder only once it is ([`wait_for_writers`]).

use crate::error::StateError;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A store's folder on one file system: (the file system's identity, the folder).
pub(super) type Root = (usize, PathBuf);

/// Roots with a checkpoint being written off the apply loop (see [`Writing`]).
static WRITING: Mutex<BTreeMap<Root, usize>> = Mutex::new(BTreeMap::new());
static WRITTEN: Condvar = Condvar::new();

/// How long opening a store waits for a checkpoint of the same folder that an
/// earlier replica of this process is still writing.
const WAIT_FOR_WRITER: Duration = Duration::from_secs(120);

/// Marks a store's folder as being written by a background checkpoint until
/// dropped. A replica restarted in the same process opens the folder only after
/// every such checkpoint finished (its start-up would otherwise remove their temp
/// files under them).
#[derive(Debug)]
pub struct Writing(Root);

impl Writing {
    pub(super) fn new(root: Root) -> Writing {
        *lock_writing().entry(root.clone()).or_insert(0) += 1;
        Writing(root)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut w = lock_writing();
        if let Some(n) = w.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.0);
            }
        }
        WRITTEN.notify_all();
    }
}

pub(super) fn lock_writing() -> MutexGuard<'static, BTreeMap<Root, usize>> {
    WRITING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits (bounded) until no checkpoint of `root` is being written.
pub(super) fn wait_for_writers(root: &Root) -> Result<(), StateError> {
    let deadline = Instant::now() + WAIT_FOR_WRITER;
    let mut w = lock_writing();
    while w.contains_key(root) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(StateError::Mismatch(format!(
                "{} is still being checkpointed by an earlier replica of this process; retry later",
                root.1.display()
            )));
        }
        w = WRITTEN
            .wait_timeout(w, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    Ok(())
}
