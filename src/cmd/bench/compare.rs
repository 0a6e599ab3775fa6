//! `diskv bench compare` (feature `compare`): diskv side by side with etcd and
//! Redis (see [`diskv_bench::compare`]); `make bench-compare` installs the peers
//! and runs it.

use super::{interruptible, Common};
use diskv_bench::compare::{self, render};
use diskv_bench::spec::parse_duration;
use diskv_bench::{Limit, RunSpec};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `diskv bench compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Rounds: each runs every step once on diskv and once on the peer.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Measured time per run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before each measured interval (not counted).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Where compare.json, compare.md, results.json/csv and the charts go.
    #[arg(long, default_value = "docs/bench/compare")]
    out: PathBuf,
    /// Also put the tables into this doc's comparison section (e.g. docs/BENCHMARKS.md).
    #[arg(long)]
    doc: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// Runs `diskv bench compare`.
pub async fn run(args: CompareArgs) -> anyhow::Result<()> {
    let base = RunSpec {
        limit: Limit::Duration(args.duration),
        warmup: args.warmup,
        ..args.common.spec()
    };
    interruptible(async {
        let comparison = compare::compare(args.rounds, &base).await?;
        let md = render::write(&args.out, &comparison)?;
        println!("{md}");
        println!("results in {}", args.out.display());
        if let Some(doc) = &args.doc {
            render::update_doc(doc, &args.out, &comparison)?;
            println!("rewrote the comparison section of {}", doc.display());
        }
        Ok(())
    })
    .await
}
