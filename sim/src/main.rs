//! `diskv-sim`: runs the deterministic simulator over many seeds, or replays one.

use clap::Parser;
use diskv_sim::sweep::{run_one, sweep_with};
use diskv_sim::RunOptions;
use std::process::ExitCode;
use std::time::Duration;

/// Hunts for bugs in diskv by running whole simulated groups under faults.
#[derive(Parser)]
#[command(name = "diskv-sim")]
struct Args {
    /// Replay this one seed (with `--trace`, print everything that happened).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the trace of the replayed seed.
    #[arg(long)]
    trace: bool,
    /// Number of seeds to run.
    #[arg(long, env = "SEEDS", default_value_t = 2000)]
    seeds: u64,
    /// First seed of the sweep.
    #[arg(long, env = "FIRST_SEED", default_value_t = 0)]
    first: u64,
    /// Threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop after this many failing seeds.
    #[arg(long, default_value_t = 5)]
    max_failures: usize,
    /// Stop after this many seconds, whatever is left.
    #[arg(long, env = "SIM_SECONDS")]
    seconds: Option<u64>,
    /// Print a line per seed.
    #[arg(long)]
    verbose: bool,
    /// With `--seed`: also print the code's own log lines (`RUST_LOG` filters,
    /// default `debug`), interleaved with the trace on stderr.
    #[arg(long)]
    log: bool,
    /// How far each replica's clock rate may be from nominal, in percent. The
    /// default is the bound leader leases assume
    /// (`paxos::core::MAX_CLOCK_DRIFT_PERCENT`, 10); a larger value (30: three
    /// times the bound) breaks the assumption on purpose, to show what breaks.
    #[arg(long, env = "SIM_DRIFT_PERCENT", default_value_t = paxos::core::MAX_CLOCK_DRIFT_PERCENT)]
    drift_percent: u64,
    /// Percent of the KV clients' operations that are batches of 2 to 5
    /// single-key operations.
    #[arg(long, env = "SIM_BATCH_PERCENT", default_value_t = diskv_sim::world::BATCH_PERCENT)]
    batch_percent: u32,
}

fn replay_line(seed: u64, drift_percent: u64, batch_percent: u32) -> String {
    let drift = if drift_percent == paxos::core::MAX_CLOCK_DRIFT_PERCENT {
        String::new()
    } else {
        format!(" --drift-percent {drift_percent}")
    };
    let batches = if batch_percent == diskv_sim::world::BATCH_PERCENT {
        String::new()
    } else {
        format!(" --batch-percent {batch_percent}")
    };
    format!("cargo run --release -p diskv-sim -- --seed {seed}{drift}{batches} --trace")
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(seed) = args.seed {
        if args.log {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .without_time()
                .init();
        }
        let report = run_one(&RunOptions {
            seed,
            trace: args.trace,
            drift_percent: args.drift_percent,
            batch_percent: args.batch_percent,
        });
        for line in &report.trace {
            println!("{line}");
        }
        println!("{}", report.summary);
        if report.ok() {
            println!("seed {seed}: every invariant held");
            return ExitCode::SUCCESS;
        }
        for v in &report.violations {
            println!("VIOLATION: {v}");
        }
        return ExitCode::FAILURE;
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    println!(
        "diskv-sim: seeds {}..{} on {threads} threads, clocks within {}% of nominal, \
         {}% of operations in batches",
        args.first,
        args.first + args.seeds,
        args.drift_percent,
        args.batch_percent
    );
    let verbose = args.verbose;
    let drift = args.drift_percent;
    let batches = args.batch_percent;
    let template = RunOptions {
        drift_percent: drift,
        batch_percent: batches,
        ..RunOptions::new(args.first)
    };
    let result = sweep_with(
        &template,
        args.seeds,
        threads,
        args.max_failures,
        args.seconds.map(Duration::from_secs),
        &|r| {
            if verbose || !r.ok() {
                println!("{}", r.summary);
            }
            if !r.ok() {
                println!("  FAILED: {}", r.violations[0]);
                println!("  replay: {}", replay_line(r.seed, drift, batches));
            }
        },
    );
    println!(
        "diskv-sim: {} seeds in {:.1} s, {} failed; reads answered by leaders: {} from a \
         lease, {} by read-index",
        result.runs,
        result.elapsed.as_secs_f64(),
        result.failures.len(),
        result.reads.lease,
        result.reads.read_index
    );
    if result.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for r in &result.failures {
            println!("failing seed {}: {}", r.seed, r.violations[0]);
            println!("  replay: {}", replay_line(r.seed, drift, batches));
        }
        ExitCode::FAILURE
    }
}
