//! `diskv shardmaster`: one replica of the shardmaster (docs/REFERENCE.md §2).

use anyhow::Context;
use shardmaster::{ServerOptions, ShardmasterServer};
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};

/// Run one replica of the shardmaster, the configuration service.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// This replica's index in --peers.
    #[arg(long)]
    me: usize,
    /// Every shardmaster replica, comma-separated, as the others reach them;
    /// this one listens on the one at index --me unless --listen says otherwise.
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// Listen on this address instead of the one at index --me of --peers, which
    /// stays the address every other process dials (the advertised one): e.g.
    /// 0.0.0.0:7001 in a container, or behind NAT, or when --peers names a host
    /// name (resolved at each connect).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Where this replica keeps everything (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Number of shards, fixed when the cluster is first made [default: 10]. Later
    /// starts may omit it; a different number is refused.
    #[arg(long)]
    shards: Option<usize>,
    /// Drop 10% of requests and discard 20% of the replies of the rest (tests).
    #[arg(long)]
    unreliable: bool,
    /// This replica has run before: with an empty --dir its disk was lost, so it
    /// recovers from its peers without asking whether the group ran. Without it, an
    /// empty --dir asks the peers and recovers if the group has a history.
    #[arg(long)]
    restart: bool,
    #[command(flatten)]
    tls: super::tls::TlsArgs,
}

/// Runs the replica until SIGTERM or SIGINT, then stops it and returns.
pub async fn run(args: Args) -> anyhow::Result<()> {
    // Watch the signals before anything else, so one that arrives during start-up
    // still means a clean stop (exit 0) rather than the default death.
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    args.tls.install("this shardmaster's port")?;
    let mut opts = ServerOptions::new(args.dir, args.me, args.peers);
    opts.nshards = args.shards;
    opts.unreliable = args.unreliable;
    opts.restart = args.restart;
    opts.validate()?;
    let advertised = opts.peers[opts.me].clone();
    let addr = args.listen.clone().unwrap_or_else(|| advertised.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {addr} ({}); is another process using it?",
                if args.listen.is_some() {
                    "--listen".to_string()
                } else {
                    format!("peers[{}]", opts.me)
                }
            )
        })?;
    if args.listen.is_some() {
        tracing::info!(listen = %addr, %advertised, "listening apart from the advertised address");
    }
    let server = ShardmasterServer::start(listener, opts).await?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received; stopping");
    server.shutdown().await;
    Ok(())
}
