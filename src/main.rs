//! The `diskv` binary: thin subcommands over the libraries (see docs/REFERENCE.md).

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// diskv: a sharded, Paxos-replicated, crash-safe key-value store.
#[derive(Parser)]
#[command(name = "diskv", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // One line per subcommand; each lives in src/cmd/<name>.rs with `Args` and `run`.
    /// Run one replica of a KV replica group.
    Server(cmd::server::Args),
    /// Line-protocol client: requests on stdin, replies on stdout.
    Client(cmd::client::Args),
    /// Run one replica of the shardmaster (the configuration service).
    Shardmaster(cmd::shardmaster::Args),
    /// Join, Leave, Move and Query against the shardmaster; back up every shard.
    Admin(cmd::admin::Args),
    /// Load a backup made by `diskv admin backup` into an empty cluster.
    Restore(cmd::restore::Args),
    /// One node (shardmaster + KV replica) with the HTTP API.
    Serve(cmd::serve::Args),
    /// A local cluster: shardmasters and replica groups as child processes, plus the HTTP API.
    Cluster(cmd::cluster::Args),
    /// YCSB-style benchmark: workloads A-F against a cluster, or one it starts.
    Bench(Box<cmd::bench::Args>),
    /// Make a cluster CA and node certificates for mutual TLS.
    Certs(cmd::certs::Args),
    /// Add, list or revoke the bearer tokens of the HTTP API.
    Token(cmd::token::Args),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tarpc=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // By default a failed write of a log line is reported with `eprintln!`,
        // which panics when stderr is a file on a full disk: every request that
        // logged anything was dropped without an answer (found by the disk-full
        // process test). A log line that cannot be written is lost instead.
        .log_internal_errors(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("diskv: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            // One arm per subcommand.
            Command::Server(a) => cmd::server::run(a).await,
            Command::Client(a) => cmd::client::run(a).await,
            Command::Shardmaster(a) => cmd::shardmaster::run(a).await,
            Command::Admin(a) => cmd::admin::run(a).await,
            Command::Restore(a) => cmd::restore::run(a).await,
            Command::Serve(a) => cmd::serve::run(a).await,
            Command::Cluster(a) => cmd::cluster::run(a).await,
            Command::Bench(a) => cmd::bench::run(*a).await,
            Command::Certs(a) => cmd::certs::run(a).await,
            Command::Token(a) => cmd::token::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("diskv: {e:#}");
            ExitCode::FAILURE
        }
    }
}
