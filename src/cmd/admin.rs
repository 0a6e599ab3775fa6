//! `diskv admin`: Join, Leave, Move and Query against the shardmaster, the
//! cluster's status, and Backup of every shard (docs/REFERENCE.md §3).
//!
//! `query` prints exactly one line of JSON on stdout; the other commands print one
//! line saying what happened. Errors go to stderr with a non-zero exit status, and
//! arguments that are invalid whatever the cluster's state are refused before any
//! shardmaster is contacted.

use anyhow::{anyhow, bail};
use shardmaster::{Clerk, ClerkOptions, ConfigNum, Gid, OpResult, ShardmasterError};
use std::path::PathBuf;
use std::time::Duration;

/// Change or read the shard configuration.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Shardmaster addresses, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    masters: Vec<String>,
    /// Give up after this many seconds without an answer.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    #[command(subcommand)]
    op: AdminOp,
    #[command(flatten)]
    tls: super::tls::TlsArgs,
}

#[derive(clap::Subcommand, Debug)]
enum AdminOp {
    /// Add replica group G, served by S0,S1,S2 (host:port, in replica order), and
    /// rebalance the shards.
    Join {
        /// The group's id (1 or more).
        gid: Gid,
        /// The group's replica addresses, comma-separated.
        #[arg(value_delimiter = ',', required = true, num_args = 1..)]
        servers: Vec<String>,
    },
    /// Remove replica group G and hand its shards to the other groups.
    Leave {
        /// The group's id.
        gid: Gid,
    },
    /// Give shard SHARD to group G.
    Move {
        /// The shard (0 to shards - 1).
        shard: usize,
        /// The joined group that gets it.
        gid: Gid,
    },
    /// Print configuration NUM (default: the latest) as one line of JSON.
    Query {
        /// The configuration number; -1 for the latest.
        #[arg(allow_negative_numbers = true, default_value_t = -1)]
        num: i64,
    },
    /// Show every shardmaster and group replica: role, applied index and lag,
    /// shards, keys, disk, last error. Exits 0 when healthy, 2 when degraded,
    /// 3 when some shard cannot be served.
    Status {
        /// Print one line of JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Seconds each process has to answer before it counts as down.
        #[arg(long, default_value_t = 2.0)]
        wait: f64,
        /// A replica this many log instances behind the furthest of its group
        /// counts as lagging (degraded).
        #[arg(long, default_value_t = 1000)]
        max_lag: u64,
    },
    /// Back up every shard into DIR (a new or empty directory): one file per
    /// shard, each read linearizably from its owner at the latest configuration,
    /// and a MANIFEST written last. Restore it with `diskv restore DIR`.
    Backup {
        /// The directory to write (created if missing; refused if it holds a backup).
        dir: PathBuf,
    },
}

/// Runs one admin command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let clerk = master_clerk(&args.masters, args.timeout)?;
    args.tls.install_client()?;
    match args.op {
        AdminOp::Status {
            json,
            wait,
            max_lag,
        } => {
            let opts = diskv::client::survey::SurveyOptions {
                timeout: seconds("--wait", wait)?,
                max_lag,
                ..Default::default()
            };
            return super::status::run(args.masters, opts, json).await;
        }
        AdminOp::Join { gid, servers } => {
            let r = clerk
                .join(gid, servers)
                .await
                .map_err(|e| refused("join", e))?;
            println!("{}", describe(&format!("group {gid} joined"), &r));
        }
        AdminOp::Leave { gid } => {
            let r = clerk.leave(gid).await.map_err(|e| refused("leave", e))?;
            println!("{}", describe(&format!("group {gid} left"), &r));
        }
        AdminOp::Move { shard, gid } => {
            let r = clerk
                .move_shard(shard, gid)
                .await
                .map_err(|e| refused("move", e))?;
            println!(
                "{}",
                describe(&format!("shard {shard} moved to group {gid}"), &r)
            );
        }
        AdminOp::Query { num } => {
            let which = ConfigNum::from_wire(num).map_err(|e| refused("query", e))?;
            let config = clerk.query(which).await.map_err(|e| refused("query", e))?;
            println!("{}", config.to_json());
        }
        AdminOp::Backup { dir } => {
            let opts = diskv::backup::BackupOptions {
                shard_timeout: seconds("--timeout", args.timeout)?,
                ..Default::default()
            };
            let m = diskv::backup::take(&clerk, &dir, &opts)
                .await
                .map_err(|e| anyhow!("backup failed: {e}"))?;
            println!(
                "backup of configuration {} written to {}: {} shards, {} keys, {} bytes",
                m.config,
                dir.display(),
                m.shard_count,
                m.keys(),
                m.bytes()
            );
        }
    }
    Ok(())
}

/// A shardmaster Clerk for `--masters` that gives up after `--timeout` seconds,
/// once both are found valid (before anything is contacted).
pub(crate) fn master_clerk(masters: &[String], timeout: f64) -> anyhow::Result<Clerk> {
    if let Some(i) = masters.iter().position(|m| m.trim().is_empty()) {
        bail!("--masters: address {i} is empty; pass host:port,host:port,...");
    }
    let timeout = seconds("--timeout", timeout)?;
    Ok(Clerk::with_options(
        masters.to_vec(),
        ClerkOptions {
            deadline: Some(timeout),
            ..ClerkOptions::default()
        },
    ))
}

/// The most seconds `--timeout` and `--wait` take (about 31 years): more
/// overflowed `Duration::from_secs_f64` or a deadline `Instant` and panicked.
const MAX_SECONDS: f64 = 1e9;

/// The duration flag `flag` asks for, refused unless positive and at most
/// [`MAX_SECONDS`].
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value > 0.0 && value <= MAX_SECONDS) {
        bail!("{flag} must be a positive number of seconds, at most {MAX_SECONDS:e}");
    }
    Ok(Duration::from_secs_f64(value))
}

fn refused(what: &str, e: ShardmasterError) -> anyhow::Error {
    match e {
        ShardmasterError::Unreachable { .. } => anyhow!("{what} failed: {e}"),
        _ => anyhow!("{what} refused, nothing changed: {e}"),
    }
}

fn describe(done: &str, r: &OpResult) -> String {
    match r {
        OpResult::Changed { num } => format!("{done}: configuration {num}"),
        OpResult::Unchanged { num } => {
            format!("already so, nothing changed: configuration {num} is still the latest")
        }
        OpResult::Config(c) => format!("configuration {}", c.num),
    }
}
