//! `diskv bench`: YCSB workloads against a diskv cluster, a local one it spawns, or
//! (with `bench/src/peers/`) other stores; `diskv bench sweep` runs the standard
//! matrix and `diskv bench doc` rewrites docs/BENCHMARKS.md from its results.

use anyhow::Context;
use diskv_bench::diskv_store::DiskvStore;
use diskv_bench::spec::parse_duration;
use diskv_bench::sweep::{self, Preset};
use diskv_bench::target::{SpawnShape, Spawned, Transport};
use diskv_bench::{doc, figures, report, run_workload, Limit, RunReport, RunSpec, Store, Workload};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "compare")]
mod compare;

/// YCSB-style benchmark: workloads A-F, results as JSON, CSV and SVG charts.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Subcommand, Debug)]
enum BenchCommand {
    /// Run a preset matrix of cluster shapes, workloads and client counts.
    Sweep(SweepArgs),
    /// Rewrite the tables and charts of docs/BENCHMARKS.md from a sweep's results.
    Doc(DocArgs),
    /// Memory, disk and kill -9 restart time of one `diskv serve` holding many keys.
    Scale(ScaleArgs),
    /// diskv side by side with etcd and Redis in alternating runs (feature `compare`).
    #[cfg(feature = "compare")]
    Compare(compare::CompareArgs),
}

/// `diskv bench scale`: see [`diskv_bench::scale`].
#[derive(clap::Args, Debug)]
struct ScaleArgs {
    /// Keys loaded.
    #[arg(long, default_value_t = 200_000)]
    keys: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 1_024)]
    value_size: usize,
    /// Clients loading at once.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Wait this long after the load before reading the resting memory.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    settle: Duration,
    /// kill -9 restarts to time (each with a cold page cache).
    #[arg(long, default_value_t = 3)]
    restarts: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Measure this diskv binary's `serve` instead of this one's (to compare
    /// two builds with the same harness).
    #[arg(long)]
    exe: Option<PathBuf>,
}

async fn scale_cmd(args: ScaleArgs) -> anyhow::Result<()> {
    let spec = diskv_bench::scale::ScaleSpec {
        keys: args.keys,
        value_size: args.value_size,
        clients: args.clients,
        settle: args.settle,
        restarts: args.restarts,
        exe: args.exe,
    };
    let report = diskv_bench::scale::run(&spec).await?;
    println!("{}", report.render());
    if let Some(path) = args.json {
        report.write_json(&path)?;
    }
    Ok(())
}

/// Settings shared by single runs and sweeps.
#[derive(clap::Args, Debug)]
struct Common {
    /// Records loaded before the runs (keys user000000000000...).
    #[arg(long, default_value_t = 1_000)]
    records: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 1_024)]
    value_size: usize,
    /// Longest scan in records (workload E; lengths uniform in 1..=N).
    #[arg(long, default_value_t = 100)]
    scan_length: u64,
    /// Deadline of one operation; later answers count as errors (timeouts).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    op_timeout: Duration,
    /// Seed of the clients' random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Shardmasters of a running cluster (comma-separated host:port).
    #[arg(long, conflicts_with = "spawn", value_delimiter = ',')]
    masters: Vec<String>,
    /// Start a local cluster for the run and stop it after: GxR (G groups of R
    /// replicas, one shardmaster; 3x3 or 3×3) or `serve` (one `diskv serve` node).
    #[arg(long)]
    spawn: Option<SpawnShape>,
    /// With --spawn: mutual TLS between the spawned processes and this one, as
    /// `diskv cluster` runs by default (without it they run --insecure: the
    /// engine alone).
    #[arg(long, requires = "spawn")]
    tls: bool,
    /// With --masters: the identity this benchmark presents to a cluster with
    /// mutual TLS (`diskv cluster` prints it at start).
    #[command(flatten)]
    identity: super::tls::TlsArgs,
    /// Workloads to run, in order (a-f, comma-separated).
    #[arg(long, short, default_value = "a", value_delimiter = ',')]
    workload: Vec<Workload>,
    /// Concurrent clients; several (comma-separated) give one run each.
    #[arg(long, short, default_value = "10", value_delimiter = ',')]
    clients: Vec<usize>,
    /// Measured time per run (10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration, conflicts_with = "operations")]
    duration: Duration,
    /// Measured operations per run, over all clients (instead of --duration).
    #[arg(long)]
    operations: Option<u64>,
    /// Warm-up before each measured interval (not counted).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Skip the load phase (the records are already there).
    #[arg(long)]
    no_load: bool,
    /// Where results.json, results.csv and the charts go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug)]
struct SweepArgs {
    /// quick (a few minutes) or full.
    #[arg(long, value_enum, default_value = "quick")]
    preset: Preset,
    /// Where sweep.json, results.json, results.csv and the charts go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Also rewrite this doc's tables and charts (e.g. docs/BENCHMARKS.md).
    #[arg(long)]
    doc: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug)]
struct DocArgs {
    /// A sweep's results folder (holding sweep.json).
    #[arg(long, default_value = "bench-results")]
    results: PathBuf,
    /// The doc to rewrite.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    doc: PathBuf,
}

impl Common {
    fn spec(&self) -> RunSpec {
        RunSpec {
            records: self.records,
            value_size: self.value_size,
            max_scan_len: self.scan_length,
            op_timeout: self.op_timeout,
            seed: self.seed,
            progress: (!self.quiet).then_some(Duration::from_secs(1)),
            ..RunSpec::default()
        }
    }
}

/// Stores measured besides diskv (none yet: `--compare` with etcd and Redis plugs
/// in here).
fn extra_stores() -> Vec<Box<dyn Store>> {
    Vec::new()
}

/// Runs `diskv bench`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(BenchCommand::Sweep(s)) => sweep_cmd(s).await,
        Some(BenchCommand::Doc(d)) => {
            let results = sweep::read(&d.results.join("sweep.json"))?;
            doc::update(&d.doc, &d.results, &results)?;
            println!("rewrote {}", d.doc.display());
            Ok(())
        }
        Some(BenchCommand::Scale(s)) => interruptible(scale_cmd(s)).await,
        #[cfg(feature = "compare")]
        Some(BenchCommand::Compare(c)) => compare::run(c).await,
        None => runs_cmd(args.run).await,
    }
}

/// Runs a future until it ends or SIGINT/SIGTERM arrives (then it is dropped: its
/// runs stop and any spawned processes are killed by pid as they are dropped).
async fn interruptible<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let mut signals = super::signals::Signals::new().context("cannot watch SIGTERM/SIGINT")?;
    tokio::select! {
        r = work => r,
        s = signals.recv() => anyhow::bail!("{s}: benchmark interrupted; local processes stopped"),
    }
}

async fn runs_cmd(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.masters.is_empty() || args.spawn.is_some(),
        "say where to send the load: --masters HOST:PORT,... for a running cluster, or --spawn GxR / --spawn serve for a local one"
    );
    let base = RunSpec {
        limit: match args.operations {
            Some(n) => Limit::Operations(n),
            None => Limit::Duration(args.duration),
        },
        warmup: args.warmup,
        ..args.common.spec()
    };
    interruptible(async {
        let spawned = match args.spawn {
            Some(shape) => {
                let transport = if args.tls {
                    Transport::MutualTls
                } else {
                    Transport::Plain
                };
                eprintln!(
                    "starting a local {}{}...",
                    shape.label(),
                    transport.suffix()
                );
                Some(Spawned::start(shape, transport).await?)
            }
            None => {
                args.identity.install_client()?;
                None
            }
        };
        let diskv: Box<dyn Store> = match &spawned {
            Some(s) => Box::new(DiskvStore::new(s.masters.clone(), s.label.clone())),
            None => Box::new(DiskvStore::new(
                args.masters.clone(),
                format!("diskv ({})", args.masters.join(",")),
            )),
        };
        let mut stores = vec![diskv];
        stores.extend(extra_stores());
        let outcome = run_all(&stores, &args, &base).await;
        if let Some(s) = spawned {
            s.stop().await;
        }
        let reports = outcome?;
        write_outputs(&args.out, &reports)
    })
    .await
}

/// Every workload at every client count on every store (each store loads once).
async fn run_all(
    stores: &[Box<dyn Store>],
    args: &RunArgs,
    base: &RunSpec,
) -> anyhow::Result<Vec<RunReport>> {
    let mut reports = Vec::new();
    for store in stores {
        let mut load = !args.no_load;
        for &workload in &args.workload {
            for &clients in &args.clients {
                let spec = RunSpec {
                    workload,
                    clients,
                    load,
                    ..base.clone()
                };
                let report = run_workload(store.as_ref(), &spec).await?;
                load = false;
                println!("{}", report.table());
                reports.push(report);
            }
        }
    }
    Ok(reports)
}

fn write_outputs(out: &Path, reports: &[RunReport]) -> anyhow::Result<()> {
    report::write_files(out, reports)
        .with_context(|| format!("cannot write results into {}", out.display()))?;
    let charts = figures::draw_all(out, reports)?;
    println!(
        "results: {} and {}; charts: {}",
        out.join("results.json").display(),
        out.join("results.csv").display(),
        charts.join(", ")
    );
    Ok(())
}

async fn sweep_cmd(args: SweepArgs) -> anyhow::Result<()> {
    let base = args.common.spec();
    interruptible(async {
        let extra = extra_stores();
        let results = sweep::run_sweep(args.preset, &base, &extra, &args.out).await?;
        println!(
            "sweep {:?}: {} runs in {:.0} s; results in {}",
            args.preset,
            results.runs.len(),
            results.wall_secs,
            args.out.display()
        );
        if let Some(d) = &args.doc {
            doc::update(d, &args.out, &results)?;
            println!("rewrote {}", d.display());
        }
        anyhow::ensure!(
            results.failures.is_empty(),
            "{} runs failed: {}",
            results.failures.len(),
            results.failures.join("; ")
        );
        Ok(())
    })
    .await
}
