//! `diskv server`: one replica of a KV replica group (contracts.md §2).

use anyhow::Context;
use diskv::{KvServer, ServerOptions};
use std::path::PathBuf;

/// Run one replica of a replica group.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The replica group's id (a positive number).
    #[arg(long)]
    gid: u64,
    /// Shardmaster addresses, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    masters: Vec<String>,
    /// Every replica of this group, comma-separated; this one listens on peers[me].
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// This replica's index in --peers.
    #[arg(long)]
    me: usize,
    /// Where this replica keeps everything.
    #[arg(long)]
    dir: PathBuf,
    /// This replica has run before (an empty --dir then means its disk was lost).
    #[arg(long)]
    restart: bool,
    /// Once up, ask the shardmaster to join this group.
    #[arg(long)]
    join: bool,
    /// Drop 10% of requests and discard 20% of the replies of the rest (tests).
    #[arg(long)]
    unreliable: bool,
}

/// Runs the replica until SIGTERM or SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.gid != 0,
        "--gid 0 is reserved for 'no group'; pick a positive gid"
    );
    anyhow::ensure!(
        args.me < args.peers.len(),
        "--me {} is not an index into --peers ({} addresses)",
        args.me,
        args.peers.len()
    );
    let addr = args.peers[args.me].clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let opts = ServerOptions {
        gid: args.gid,
        masters: args.masters,
        peers: args.peers,
        me: args.me,
        dir: args.dir,
        restart: args.restart,
        join: args.join,
        unreliable: args.unreliable,
        nshards: None,
    };
    let server = KvServer::start(listener, opts).await?;
    super::wait_for_signal().await;
    tracing::info!("signal received; stopping");
    server.shutdown();
    Ok(())
}
