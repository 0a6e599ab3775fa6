//! The `diskv` binary: thin subcommands over the libraries (see docs/REFERENCE.md).

mod cmd;
mod logging;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let launcher_log = match &cli.command {
        Command::Cluster(a) => Some(a.launcher_log()),
        _ => None,
    };
    logging::init(launcher_log.as_deref());
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
            match e.downcast_ref::<cmd::status::Verdict>() {
                Some(verdict) => ExitCode::from(verdict.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}
