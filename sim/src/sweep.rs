//! Many seeds, on every core: each seed is one run; a panic in a run is a
//! failure of that seed like a violated invariant.

use crate::world::{Report, RunOptions};
use paxos::core::ReadStats;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Seeds run.
    pub runs: u64,
    /// The failing seeds' reports.
    pub failures: Vec<Report>,
    /// Wall-clock time taken.
    pub elapsed: Duration,
    /// Reads answered over every run, by lease and by read-index.
    pub reads: ReadStats,
}

/// Runs one seed, turning a panic into a failed report.
pub fn run_one(opts: &RunOptions) -> Report {
    let seed = opts.seed;
    match panic::catch_unwind(AssertUnwindSafe(|| crate::run(opts))) {
        Ok(report) => report,
        Err(e) => {
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Report {
                seed,
                violations: vec![format!("panicked: {what}")],
                ..Report::default()
            }
        }
    }
}

/// Runs seeds `first..first + count` on `threads` threads, stopping early after
/// `max_failures` failures or when `budget` runs out. `progress` is called with
/// each finished report.
pub fn sweep(
    first: u64,
    count: u64,
    threads: usize,
    max_failures: usize,
    budget: Option<Duration>,
    progress: &(dyn Fn(&Report) + Sync),
) -> Sweep {
    let opts = RunOptions::new(first);
    sweep_with(&opts, count, threads, max_failures, budget, progress)
}

/// [`sweep`] with every run's options but the seed from `template`, from seed
/// `template.seed` on.
pub fn sweep_with(
    template: &RunOptions,
    count: u64,
    threads: usize,
    max_failures: usize,
    budget: Option<Duration>,
    progress: &(dyn Fn(&Report) + Sync),
) -> Sweep {
    let first = template.seed;
    let started = Instant::now();
    let next = AtomicU64::new(first);
    let reads = Mutex::new(ReadStats::default());
    let stop = AtomicBool::new(false);
    let runs = AtomicU64::new(0);
    let failures = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if budget.is_some_and(|b| started.elapsed() >= b) {
                    return;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + count {
                    return;
                }
                let opts = RunOptions {
                    seed,
                    trace: false,
                    ..template.clone()
                };
                let report = run_one(&opts);
                runs.fetch_add(1, Ordering::Relaxed);
                {
                    let mut r = reads.lock().unwrap_or_else(|p| p.into_inner());
                    r.lease += report.reads.lease;
                    r.read_index += report.reads.read_index;
                }
                progress(&report);
                if !report.ok() {
                    let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                    f.push(report);
                    if f.len() >= max_failures {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut failures = std::mem::take(&mut *failures.lock().unwrap_or_else(|p| p.into_inner()));
    failures.sort_by_key(|r| r.seed);
    Sweep {
        runs: runs.load(Ordering::Relaxed),
        failures,
        elapsed: started.elapsed(),
        reads: reads.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}
