//! Hands memory freed by log compaction back to the operating system.
//!
//! A checkpoint lets the log forget the instances it covers: during a bulk load
//! that can free hundreds of megabytes at once (the log window grows with the
//! checkpoint lag; docs/BENCHMARKS.md, "Where the memory goes"). glibc's allocator
//! keeps freed pages for reuse, so the process's resident memory stayed at its
//! peak long after the data it held was gone. `malloc_trim(0)` returns every free
//! whole page. It walks the heap, so it runs on a blocking thread, a moment after
//! the compaction (which the core loop carries out after `done`), and at most once
//! every [`MIN_INTERVAL`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two trims.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// How long after a checkpoint turns durable the trim runs: the log's entries
/// are dropped by the core loop once it handles `done`.
const AFTER: Duration = Duration::from_millis(500);

/// When the last trim was scheduled.
static LAST: Mutex<Option<Instant>> = Mutex::new(None);

/// Schedules a trim after a checkpoint let the log forget instances, unless one
/// ran less than [`MIN_INTERVAL`] ago. Needs a tokio runtime.
pub fn after_compaction() {
    if !due(&LAST, Instant::now()) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(AFTER).await;
        let _ = tokio::task::spawn_blocking(release).await;
    });
}

/// True (and noted) if no trim was scheduled within [`MIN_INTERVAL`] of `now`.
fn due(last: &Mutex<Option<Instant>>, now: Instant) -> bool {
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_some_and(|at| now.saturating_duration_since(at) < MIN_INTERVAL) {
        return false;
    }
    *last = Some(now);
    true
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no
    // preconditions and may run concurrently with other allocations.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_is_due_at_most_once_per_interval() {
        let last = Mutex::new(None);
        let t0 = Instant::now();
        assert!(due(&last, t0));
        assert!(!due(&last, t0 + MIN_INTERVAL / 2));
        assert!(due(&last, t0 + MIN_INTERVAL));
    }
}
