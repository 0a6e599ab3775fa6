//! `diskv bench scale`: what a node costs as its data grows — resident memory
//! while loading and at rest, disk per key, and how long a `kill -9` restart
//! takes before it serves again with a cold page cache.
//!
//! One `diskv serve` is spawned in a temporary directory; `keys` records of
//! `value_size` bytes are written by `clients` Clerks (the YCSB load phase of
//! the driver). The process's peak resident set is its `VmHWM` from
//! `/proc/PID/status`; the resting one its `VmRSS` after `settle`. Then, each
//! restart: `kill -9`, every file of the data directory dropped from the page
//! cache (`posix_fadvise(DONTNEED)` after a `sync`: what a reboot or a cache
//! flushed by other work leaves; no root needed), the same command started
//! again, and the time until a linearizable read of a loaded key answers with
//! its value.

use crate::diskv_store::DiskvStore;
use crate::driver::run_workload;
use crate::error::BenchError;
use crate::keys::key;
use crate::report::LoadReport;
use crate::spec::{Limit, RunSpec};
use crate::target::{SpawnShape, Spawned, Transport};
use crate::workload::Workload;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant};

/// The spawned process's name (see [`crate::target`]).
const SERVE: &str = "serve";

/// How long a restart may take before the run gives up on it.
const RESTART_LIMIT: Duration = Duration::from_secs(300);

/// What to measure.
#[derive(Clone, Debug)]
pub struct ScaleSpec {
    /// Records loaded.
    pub keys: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Clients loading at once.
    pub clients: usize,
    /// How long to wait after the load before reading the resting memory.
    pub settle: Duration,
    /// `kill -9` restarts to time.
    pub restarts: usize,
    /// The diskv binary to measure (`None`: this one).
    pub exe: Option<std::path::PathBuf>,
}

/// What it measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleReport {
    /// Records loaded.
    pub keys: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Keys and values, bytes: what the data itself takes.
    pub live_bytes: u64,
    /// The load phase.
    pub load: LoadReport,
    /// Peak resident memory of the process during the load, bytes.
    pub peak_rss: u64,
    /// Resident memory after the load and `settle`, bytes.
    pub steady_rss: u64,
    /// Disk blocks allocated under the data directory after the load, bytes.
    pub disk_bytes: u64,
    /// Each restart: seconds from starting the process to the first read served.
    pub restart_secs: Vec<f64>,
    /// Resident memory after the last restart served its first read, bytes.
    pub restarted_rss: u64,
}

impl ScaleReport {
    /// Writes the figures as JSON to `path`.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// A few lines for a terminal or a document.
    pub fn render(&self) -> String {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let per_key = |b: u64| b as f64 / self.keys.max(1) as f64;
        let restarts: Vec<String> = self
            .restart_secs
            .iter()
            .map(|s| format!("{s:.2} s"))
            .collect();
        format!(
            "diskv serve, {} keys of {} B ({:.0} MiB of keys and values), loaded in {:.1} s ({:.0} ops/s)\n\
             peak RSS while loading  {:>8.0} MiB  ({:.2}x the data, {:.0} B per key)\n\
             RSS at rest             {:>8.0} MiB  ({:.2}x the data, {:.0} B per key)\n\
             disk                    {:>8.0} MiB  ({:.0} B per key)\n\
             kill -9 restart, cold page cache, to the first read: {}\n\
             RSS after the restart   {:>8.0} MiB",
            self.keys,
            self.value_size,
            mib(self.live_bytes),
            self.load.secs,
            self.load.ops_per_sec,
            mib(self.peak_rss),
            self.peak_rss as f64 / self.live_bytes.max(1) as f64,
            per_key(self.peak_rss),
            mib(self.steady_rss),
            self.steady_rss as f64 / self.live_bytes.max(1) as f64,
            per_key(self.steady_rss),
            mib(self.disk_bytes),
            per_key(self.disk_bytes),
            restarts.join(", "),
            mib(self.restarted_rss),
        )
    }
}

/// Runs `spec` (see the module docs).
pub async fn run(spec: &ScaleSpec) -> Result<ScaleReport, BenchError> {
    let mut node =
        Spawned::start_running(SpawnShape::Serve, Transport::Plain, spec.exe.clone()).await?;
    let result = measure(&mut node, spec).await;
    node.stop().await;
    result.map_err(BenchError::Spawn)
}

async fn measure(node: &mut Spawned, spec: &ScaleSpec) -> anyhow::Result<ScaleReport> {
    let store = DiskvStore::new(node.masters.clone(), "diskv serve");
    let run = RunSpec {
        workload: Workload::C,
        records: spec.keys,
        value_size: spec.value_size,
        clients: spec.clients,
        limit: Limit::Operations(1),
        warmup: Duration::ZERO,
        load: true,
        progress: Some(Duration::from_secs(5)),
        ..RunSpec::default()
    };
    let report = run_workload(&store, &run).await?;
    let load = report.load.context("the driver ran no load phase")?;
    let pid = node.pid(SERVE).context("diskv serve is not running")?;
    let peak_rss = proc_status_bytes(pid, "VmHWM")?;
    tokio::time::sleep(spec.settle).await;
    let steady_rss = proc_status_bytes(pid, "VmRSS")?;
    let data = node.dir().join(SERVE);
    let disk_bytes = allocated_bytes(&data)?;
    let probe = key(spec.keys / 2);
    let mut restart_secs = Vec::new();
    for _ in 0..spec.restarts {
        node.kill_and_restart(SERVE, || {
            if let Err(e) = drop_page_cache(&data) {
                tracing::warn!(error = %e, "cannot drop the data directory from the page cache");
            }
        })
        .await?;
        let started = Instant::now();
        first_read(&node.masters, &probe).await?;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(secs, "restarted and served a read");
        restart_secs.push((secs * 1000.0).round() / 1000.0);
    }
    let pid = node.pid(SERVE).context("diskv serve is not running")?;
    let restarted_rss = proc_status_bytes(pid, "VmRSS")?;
    let key_bytes = key(0).len() as u64;
    Ok(ScaleReport {
        keys: spec.keys,
        value_size: spec.value_size,
        live_bytes: spec.keys * (key_bytes + spec.value_size as u64),
        load,
        peak_rss,
        steady_rss,
        disk_bytes,
        restart_secs,
        restarted_rss,
    })
}

/// Waits until a read of `key` through a new Clerk returns a value.
async fn first_read(masters: &[String], key: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + RESTART_LIMIT;
    let mut clerk = diskv::Clerk::new(masters.to_vec()).await;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        anyhow::ensure!(
            !left.is_zero(),
            "the restarted node served no read within {RESTART_LIMIT:?}"
        );
        match tokio::time::timeout(left, clerk.get(key)).await {
            Ok(Ok(Some(_))) => return Ok(()),
            Ok(Ok(None)) => anyhow::bail!("the restarted node lost key {key}"),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "not serving yet");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => {}
        }
    }
}

/// A size field (`VmHWM`, `VmRSS`: kB) of `/proc/PID/status`, in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("{path} has no {field}"))?;
    let kb: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("{path}: {field} is {line:?}"))?;
    Ok(kb * 1024)
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files_under(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Bytes of disk blocks allocated to the files under `dir`.
fn allocated_bytes(dir: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    files_under(dir, &mut files).with_context(|| format!("cannot list {}", dir.display()))?;
    Ok(files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.blocks() * 512)
        .sum())
}

/// Drops every file under `dir` from the page cache: written back first
/// (`sync`), then `posix_fadvise(POSIX_FADV_DONTNEED)` on each.
fn drop_page_cache(dir: &Path) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let mut files = Vec::new();
    files_under(dir, &mut files).with_context(|| format!("cannot list {}", dir.display()))?;
    for f in files {
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        // SAFETY: a valid open descriptor; offset 0, length 0 = the whole file.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        anyhow::ensure!(rc == 0, "posix_fadvise({}): error {rc}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_fields_are_read_in_bytes() {
        let me = std::process::id();
        let rss = proc_status_bytes(me, "VmRSS").unwrap();
        let hwm = proc_status_bytes(me, "VmHWM").unwrap();
        assert!(rss > 0 && hwm >= rss, "VmRSS {rss}, VmHWM {hwm}");
        assert!(proc_status_bytes(me, "NoSuchField").is_err());
    }

    #[test]
    fn dropping_the_page_cache_evicts_a_files_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        assert!(
            resident_pages(&path) > 0,
            "a file just written is in the cache"
        );
        drop_page_cache(dir.path()).unwrap();
        assert_eq!(resident_pages(&path), 0, "the file's pages left the cache");
        assert_eq!(allocated_bytes(dir.path()).unwrap(), 1 << 20);
    }

    /// Pages of `path` in the page cache (mincore(2) over a mapping).
    fn resident_pages(path: &Path) -> usize {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        let page = 4096;
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: a read-only shared mapping of an open file of `len` bytes,
        // unmapped before returning; `vec` has one byte per page.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(addr, libc::MAP_FAILED);
            let rc = libc::mincore(addr, len, vec.as_mut_ptr());
            libc::munmap(addr, len);
            assert_eq!(rc, 0);
        }
        vec.iter().filter(|&&b| b & 1 == 1).count()
    }
}
