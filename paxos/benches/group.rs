//! The paxos group benchmark (`make bench`).
//!
//! Starts a 3-replica group in this process with [`paxos::host::host`] — real TCP on
//! 127.0.0.1, real segment logs with fsync on — in a directory under the target
//! directory, waits for a leader, then for 1 and 64 concurrent proposers runs
//! closed-loop clients that each execute a 16-byte command through [`Rsm::execute`]
//! on the leader, one at a time, for `PAXOS_BENCH_SECS` seconds (default 5) after a
//! 1 s warm-up. Next to the figures it measures, in the same run and directory, the
//! raw fdatasync rate and the loopback TCP round trip, and compares the results with
//! the targets of the issue (reported as PASS/MISS, never asserted).
//!
//! Output: a table on stdout and `<target dir>/bench/paxos.json`.

#[path = "group/probe.rs"]
mod probe;
#[path = "group/report.rs"]
mod report;

use hdrhistogram::Histogram;
use paxos::host::{host, HostOptions};
use paxos::rsm::{Rsm, RsmError, StateMachine};
use paxos::Slot;
use probe::{micros, micros_histogram};
use report::Report;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

type BoxError = Box<dyn Error + Send + Sync>;

/// Replicas in the group.
const REPLICAS: usize = 3;
/// Load levels: concurrent closed-loop proposers.
const LOADS: [usize; 2] = [1, 64];
/// Unmeasured run before each load level.
const WARM_UP: Duration = Duration::from_secs(1);
/// How long one `execute` may take before it counts as an error.
const EXECUTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of every command (what the state machine receives; the log also stores
/// the Rsm's origin tag).
const COMMAND_BYTES: usize = 16;

/// The trivial state machine: counts the commands applied.
#[derive(Default)]
struct Counter(u64);

impl StateMachine for Counter {
    type Command = [u8; COMMAND_BYTES];
    type Output = u64;

    fn apply(&mut self, _slot: Slot, _cmd: [u8; COMMAND_BYTES]) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// A running replica.
struct Member {
    rsm: Rsm<Counter>,
    stop: watch::Sender<bool>,
}

/// What one load level measured.
pub struct LoadResult {
    /// Concurrent proposers.
    pub proposers: usize,
    /// Seconds measured.
    pub secs: f64,
    /// Commands executed (decided and applied at the leader) in the window.
    pub commands: u64,
    /// `execute` calls that failed or timed out in the window.
    pub errors: u64,
    /// Latency of every command of the window, µs.
    pub hist: Histogram<u64>,
    /// Leader fsyncs in the window.
    pub leader_syncs: u64,
    /// Records the leader made durable in the window.
    pub leader_records: u64,
    /// Nanoseconds the leader's persister spent appending and syncing in the window.
    pub leader_persist_nanos: u64,
}

impl LoadResult {
    /// Commands decided per second.
    pub fn commands_per_sec(&self) -> f64 {
        self.commands as f64 / self.secs
    }

    /// Commands per leader fsync.
    pub fn commands_per_fsync(&self) -> f64 {
        self.commands as f64 / self.leader_syncs.max(1) as f64
    }

    /// Mean microseconds of one persister append + fsync at the leader.
    pub fn persist_micros_per_sync(&self) -> f64 {
        self.leader_persist_nanos as f64 / 1000.0 / self.leader_syncs.max(1) as f64
    }
}

fn main() -> Result<(), BoxError> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let secs = match std::env::var("PAXOS_BENCH_SECS") {
        Ok(s) => s
            .parse::<f64>()
            .map_err(|e| format!("PAXOS_BENCH_SECS={s:?} is not a number of seconds: {e}"))?,
        Err(_) => 5.0,
    };
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&out_dir, Duration::from_secs_f64(secs)))
}

/// Cargo's target directory: the bench binary is `<target>/<profile>/deps/group-*`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

async fn run(out_dir: &Path, measure: Duration) -> Result<(), BoxError> {
    let dir = tempfile::tempdir_in(out_dir)?;
    let fsync = [1, REPLICAS]
        .into_iter()
        .map(|writers| probe::fdatasync_rate(dir.path(), writers, 64, Duration::from_secs(2)))
        .collect::<Result<Vec<_>, _>>()?;
    let rtt = probe::loopback_round_trip(64, Duration::from_secs(1)).await?;
    let members = start_group(dir.path()).await?;
    let leader = wait_for_leader(&members).await?;
    let mut loads = Vec::new();
    for proposers in LOADS {
        loads.push(run_load(&members[leader].rsm, proposers, measure).await);
    }
    for m in &members {
        let _ = m.stop.send(true);
    }
    let report = Report {
        dir: dir.path(),
        mount: probe::mount_of(dir.path()),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        secs: measure.as_secs_f64(),
        command_bytes: COMMAND_BYTES,
        fsync,
        rtt,
        loads,
    };
    report.print();
    let json_path = out_dir.join("paxos.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report.json())?)?;
    println!("\n  JSON written to {}", json_path.display());
    Ok(())
}

/// Starts the replicas on fresh loopback ports, each with its log in `dir/r{i}`.
async fn start_group(dir: &Path) -> Result<Vec<Member>, BoxError> {
    let mut listeners = Vec::new();
    for _ in 0..REPLICAS {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let peers = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut members = Vec::new();
    for (me, listener) in listeners.into_iter().enumerate() {
        let (stop, stop_rx) = watch::channel(false);
        let opts = HostOptions {
            log_dir: dir.join(format!("r{me}")),
            me,
            peers: peers.clone(),
            unreliable: false,
            applied: 0,
            node: None,
            fsync: true,
            recovering: None,
        };
        let hosted = host(listener, opts, stop_rx)?;
        let rsm = Rsm::start(
            me,
            hosted.node,
            hosted.decisions,
            Counter::default(),
            0,
            Duration::from_secs(1),
        );
        members.push(Member { rsm, stop });
    }
    Ok(members)
}

/// Waits until one replica leads and has executed a command; returns its index.
async fn wait_for_leader(members: &[Member]) -> Result<usize, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(i) = members.iter().position(|m| m.rsm.node().is_leader()) {
            let probe = members[i]
                .rsm
                .execute([0; COMMAND_BYTES], Duration::from_secs(2));
            if probe.await.is_ok() {
                return Ok(i);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("no replica became a working leader within 20 s".into())
}

/// What one proposer saw in the measured window.
struct ProposerResult {
    hist: Histogram<u64>,
    commands: u64,
    errors: u64,
}

/// Runs `proposers` closed-loop proposers against `rsm` for a warm-up and then
/// `measure`, counting what completes within the measured window and the leader's
/// fsyncs over the same window.
async fn run_load(rsm: &Rsm<Counter>, proposers: usize, measure: Duration) -> LoadResult {
    let window_start = Instant::now() + WARM_UP;
    let window_end = window_start + measure;
    let tasks: Vec<_> = (0..proposers)
        .map(|id| tokio::spawn(propose_loop(rsm.clone(), id, window_start, window_end)))
        .collect();
    tokio::time::sleep_until(window_start).await;
    let stats = rsm.node().stats();
    let snapshot = || {
        (
            stats.syncs.load(Ordering::Relaxed),
            stats.records.load(Ordering::Relaxed),
            stats.sync_nanos.load(Ordering::Relaxed),
        )
    };
    let before = snapshot();
    tokio::time::sleep_until(window_end).await;
    let after = snapshot();
    let mut result = LoadResult {
        proposers,
        secs: measure.as_secs_f64(),
        commands: 0,
        errors: 0,
        hist: micros_histogram(),
        leader_syncs: after.0 - before.0,
        leader_records: after.1 - before.1,
        leader_persist_nanos: after.2 - before.2,
    };
    for task in tasks {
        if let Ok(p) = task.await {
            result.commands += p.commands;
            result.errors += p.errors;
            let _ = result.hist.add(&p.hist);
        }
    }
    result
}

/// One closed-loop proposer: executes commands one after the other until
/// `window_end`, recording those that start and finish inside the window.
async fn propose_loop(
    rsm: Rsm<Counter>,
    id: usize,
    window_start: Instant,
    window_end: Instant,
) -> ProposerResult {
    let mut out = ProposerResult {
        hist: micros_histogram(),
        commands: 0,
        errors: 0,
    };
    let mut cmd = [0u8; COMMAND_BYTES];
    cmd[..8].copy_from_slice(&(id as u64).to_le_bytes());
    let mut seq: u64 = 0;
    loop {
        let started = Instant::now();
        if started >= window_end {
            return out;
        }
        seq += 1;
        cmd[8..].copy_from_slice(&seq.to_le_bytes());
        let result: Result<u64, RsmError> = rsm.execute(cmd, EXECUTE_TIMEOUT).await;
        let finished = Instant::now();
        if started < window_start || finished > window_end {
            continue;
        }
        match result {
            Ok(_) => {
                out.commands += 1;
                out.hist.saturating_record(micros(finished - started));
            }
            Err(_) => out.errors += 1,
        }
    }
}
