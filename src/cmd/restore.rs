//! `diskv restore DIR`: check a backup made by `diskv admin backup`, then load
//! it into an empty cluster (docs/REFERENCE.md §3). Prints one line on stdout
//! when done; errors go to stderr with a non-zero exit status, and a backup
//! found damaged is refused before anything is written.

use anyhow::anyhow;
use diskv::backup::{Manifest, RestoreOptions};
use std::path::PathBuf;

/// Load a backup into an empty cluster, or check it.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The backup directory (made by `diskv admin backup DIR`).
    dir: PathBuf,
    /// Shardmaster addresses of the cluster to load into, comma-separated.
    #[arg(long, value_delimiter = ',', required_unless_present = "check")]
    masters: Vec<String>,
    /// Load even if the cluster holds keys: the backup's keys overwrite theirs,
    /// other keys stay.
    #[arg(long)]
    force: bool,
    /// Only check the backup (its manifest and every shard file) and say what it
    /// holds; no cluster is contacted.
    #[arg(long, conflicts_with_all = ["masters", "force"])]
    check: bool,
    /// Give up when the shardmaster has not answered for this many seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    #[command(flatten)]
    tls: super::tls::TlsArgs,
}

/// Runs `diskv restore`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.check {
        let m = diskv::backup::verify(&args.dir).map_err(|e| anyhow!("{e}"))?;
        println!("{} is intact: {}", args.dir.display(), summary(&m));
        return Ok(());
    }
    let master = super::admin::master_clerk(&args.masters, args.timeout)?;
    args.tls.install_client()?;
    let opts = RestoreOptions {
        force: args.force,
        ..RestoreOptions::default()
    };
    let m = diskv::backup::load(&master, args.masters, &args.dir, &opts)
        .await
        .map_err(|e| anyhow!("restore failed: {e}"))?;
    println!("restored {}: {}", args.dir.display(), summary(&m));
    Ok(())
}

/// What a backup holds, in one line.
fn summary(m: &Manifest) -> String {
    format!(
        "configuration {}, {} shards, {} keys, {} bytes, read between {} and {} ms after the Unix epoch",
        m.config,
        m.shard_count,
        m.keys(),
        m.bytes(),
        m.started_unix_ms,
        m.finished_unix_ms
    )
}
