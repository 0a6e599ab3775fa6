//! `diskv admin`: Join, Leave, Move and Query against the shardmaster, the
//! cluster's status, Backup of every shard, and changes to a replica set
//! (`replica add|promote|remove|replace|list`; docs/REFERENCE.md §3).
//!
//! `query` prints exactly one line of JSON on stdout; the other commands print one
//! line saying what happened. Errors go to stderr with a non-zero exit status, and
//! arguments that are invalid whatever the cluster's state are refused before any
//! shardmaster is contacted.

use anyhow::{anyhow, bail};
use diskv::client::replicas::{self, ReplicaSet};
use paxos::core::{Change, Seat};
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
    /// Change a replica set through its own log: a group's (SET = its gid) or
    /// the shardmasters' (SET = master). One change at a time; each waits until
    /// it is in force and records a group's new servers with the shardmaster.
    /// Running the same command again finishes an interrupted one.
    #[command(subcommand)]
    Replica(ReplicaOp),
}

#[derive(clap::Subcommand, Debug)]
enum ReplicaOp {
    /// Add a replica at ADDR as a learner: it receives every decision but does
    /// not vote. Start a process there with an empty --dir (the command prints
    /// how), then promote it.
    Add {
        /// A group's gid, or `master` for the shardmasters.
        set: SetArg,
        /// Where the new replica will listen (host:port).
        addr: String,
    },
    /// Make learner I a voter, once its process has joined and caught up.
    Promote {
        /// A group's gid, or `master` for the shardmasters.
        set: SetArg,
        /// The replica's index (its --me).
        node: usize,
    },
    /// Remove replica I from the set for good (its index is never reused).
    Remove {
        /// A group's gid, or `master` for the shardmasters.
        set: SetArg,
        /// The replica's index (its --me).
        node: usize,
    },
    /// Move replica I to a new process at NEWADDR (a replacement machine): the
    /// old process stops counting at once; start the new one with an empty
    /// --dir (the command prints how).
    Replace {
        /// A group's gid, or `master` for the shardmasters.
        set: SetArg,
        /// The replica's index (its --me).
        node: usize,
        /// Where the replacement will listen (host:port).
        addr: String,
    },
    /// Print the set's replicas: index, address, voter/learner/removed.
    List {
        /// A group's gid, or `master` for the shardmasters.
        set: SetArg,
    },
}

/// A replica set named on the command line: a gid, or `master`.
#[derive(Clone, Copy, Debug)]
struct SetArg(ReplicaSet);

impl std::str::FromStr for SetArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "master" | "masters" => Ok(SetArg(ReplicaSet::Masters)),
            _ => match s.parse::<Gid>() {
                Ok(0) => Err("gid 0 is reserved for 'no group'".into()),
                Ok(gid) => Ok(SetArg(ReplicaSet::Group(gid))),
                Err(_) => Err(format!("{s:?} is neither a gid nor `master`")),
            },
        }
    }
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
        AdminOp::Replica(op) => {
            let timeout = seconds("--timeout", args.timeout)?;
            return replica(&clerk, op, timeout).await;
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

/// Runs one `admin replica` command and says what happened and what to do next.
async fn replica(clerk: &Clerk, op: ReplicaOp, timeout: Duration) -> anyhow::Result<()> {
    let (set, change) = match op {
        ReplicaOp::List { set } => {
            let seats = replicas::seats_of(clerk, set.0).await?;
            for s in &seats.seats {
                let vacant = if s.vacant {
                    " (vacant: no process yet)"
                } else {
                    ""
                };
                let missed = s.heard == Some(false) && !s.vacant && s.seat != Seat::Removed;
                let heard = if missed {
                    " (not heard by the leader lately)"
                } else {
                    ""
                };
                println!("{}\t{}\t{:?}{vacant}{heard}", s.node, s.addr, s.seat);
            }
            return Ok(());
        }
        ReplicaOp::Add { set, addr } => (set.0, Change::Add { addr }),
        ReplicaOp::Promote { set, node } => (set.0, Change::Promote { node }),
        ReplicaOp::Remove { set, node } => (set.0, Change::Remove { node }),
        ReplicaOp::Replace { set, node, addr } => (set.0, Change::Move { node, addr }),
    };
    let done = replicas::change_replicas(clerk, set, change.clone(), timeout).await?;
    let what = if done.already {
        "already so, nothing new decided".to_string()
    } else {
        format!("{set}: {change}: in force")
    };
    let recorded = match &done.recorded {
        Some(r) => format!("; {}", describe("servers recorded", r)),
        None => String::new(),
    };
    println!("{what}{recorded}");
    let start = |node: usize| start_command(clerk, set, &done.seats, node);
    match &change {
        Change::Add { addr } => {
            if let Some(s) = done.seats.at_addr(addr) {
                println!(
                    "replica {} is a learner at {addr}; start it with an empty --dir:\n  {}\n\
                     then, once it has joined (`admin replica list` no longer says vacant):\n  \
                     diskv admin --masters {} replica promote {} {}",
                    s.node,
                    start(s.node),
                    clerk.masters().join(","),
                    set_name(set),
                    s.node
                );
            }
        }
        Change::Move { node, addr } => println!(
            "replica {node} now belongs to a process at {addr}; start it with an empty --dir:\n  {}\n\
             and stop the old process if it still runs",
            start(*node)
        ),
        Change::Remove { node } => {
            println!("replica {node} takes no part any more: stop its process")
        }
        Change::Promote { .. } => {}
    }
    if set == ReplicaSet::Masters && !matches!(change, Change::Promote { .. }) {
        println!(
            "the shardmasters are now at {}: pass that to every --masters",
            done.seats.addresses().join(",")
        );
    }
    Ok(())
}

/// How an operator names `set` on the command line.
fn set_name(set: ReplicaSet) -> String {
    match set {
        ReplicaSet::Group(gid) => gid.to_string(),
        ReplicaSet::Masters => "master".into(),
    }
}

/// The command that starts the process of seat `node` of `set` (with an empty
/// directory it claims its seat the way a replica that lost its disk rejoins).
fn start_command(
    clerk: &Clerk,
    set: ReplicaSet,
    seats: &paxos::node::GroupSeats,
    node: usize,
) -> String {
    let peers: Vec<&str> = seats.seats.iter().map(|s| s.addr.as_str()).collect();
    match set {
        ReplicaSet::Group(gid) => format!(
            "diskv server --gid {gid} --me {node} --peers {} --masters {} --dir DIR",
            peers.join(","),
            clerk.masters().join(",")
        ),
        ReplicaSet::Masters => format!(
            "diskv shardmaster --me {node} --peers {} --dir DIR",
            peers.join(",")
        ),
    }
}
