//! `diskv server`: one replica of a KV replica group (docs/REFERENCE.md §2).

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
    /// Every replica of this group, comma-separated, as the others reach them;
    /// this one listens on the one at index --me unless --listen says otherwise.
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// Listen on this address instead of the one at index --me of --peers, which
    /// stays the address every other process dials (the advertised one): e.g.
    /// 0.0.0.0:7001 in a container, or behind NAT, or when --peers names a host
    /// name (resolved at each connect).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
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
    /// Also serve the HTTP API (docs/REFERENCE.md §1) for the whole cluster on this address.
    #[arg(long)]
    http: Option<String>,
    /// Also serve the Redis protocol (RESP2/RESP3) for the whole cluster on this address.
    #[arg(long)]
    resp: Option<String>,
    #[command(flatten)]
    tls: super::tls::TlsArgs,
    #[command(flatten)]
    front_door: super::front_door::FrontDoorArgs,
}

/// How long a halted replica keeps answering its peers before it exits.
const HALT_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the replica until SIGTERM or SIGINT (exit 0), or until it halts because a
/// majority of its group lost their disks (an error: non-zero exit).
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
    let security = args.tls.install("this replica's port")?;
    let addr = args
        .listen
        .clone()
        .unwrap_or_else(|| args.peers[args.me].clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    if args.listen.is_some() {
        tracing::info!(listen = %addr, advertised = %args.peers[args.me], "listening apart from the advertised address");
    }
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
    let masters = opts.masters.clone();
    let (gid, me) = (opts.gid, opts.me);
    let server = std::sync::Arc::new(KvServer::start(listener, opts).await?);
    // One token file for both front doors: opened once, shared.
    let front_options = args.front_door.front_options()?;
    let (http, pool) = match &args.http {
        Some(addr) => {
            let options = (
                front_options.clone(),
                args.front_door.serve_options(&security)?,
            );
            let (http, front) = http_front(addr, masters.clone(), server.clone(), options).await?;
            (Some(http), Some(front.pool().clone()))
        }
        None => (None, None),
    };
    let resp = match &args.resp {
        Some(addr) => {
            let opts = args.front_door.resp_options(&front_options, &security)?;
            resp_front(addr, masters, pool, server.clone(), opts).await?
        }
        None => None,
    };
    let halted = tokio::select! {
        () = super::wait_for_signal() => {
            tracing::info!("signal received; stopping");
            false
        }
        () = until_halted(&server) => {
            // Other recovering replicas count this one's `Recovering` probe answer
            // to decide that a majority lost their disks: keep answering a little
            // longer than their poll (paxos/src/recovery.rs), so they halt too.
            tokio::time::sleep(HALT_LINGER).await;
            true
        }
    };
    if let Some(resp) = resp {
        resp.stop().await;
    }
    if let Some(http) = http {
        http.stop().await;
    }
    server.shutdown();
    anyhow::ensure!(
        !halted,
        "replica {} of group {} halted: a majority of its group lost their disks (see the \
         error above); restore the group's directories from a backup, or rebuild the group",
        me,
        gid
    );
    Ok(())
}

/// Returns once the replica halts because a majority of its group lost their disks,
/// so the process exits with an error instead of idling without serving.
async fn until_halted(server: &diskv::KvServer) {
    while !server.is_halted() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Serves the HTTP API for the whole cluster on `addr`; ready once a read succeeds.
async fn http_front(
    addr: &str,
    masters: Vec<String>,
    server: std::sync::Arc<KvServer>,
    (front_options, serve_options): (diskv::http::FrontOptions, diskv::http::ServeOptions),
) -> anyhow::Result<(diskv::http::Running, std::sync::Arc<diskv::http::Front>)> {
    use diskv::http::Front;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--http)"))?;
    let front = std::sync::Arc::new(Front::new(masters, front_options).with_local(server));
    let http = diskv::http::spawn_with(listener, front.clone(), serve_options)?;
    tracing::info!(addr = %http.local_addr(), "HTTP API listening");
    let ready = front.clone();
    tokio::spawn(async move { ready.wait_ready().await });
    Ok((http, front))
}

/// Serves the Redis protocol for the whole cluster on `addr`, through `pool` (the
/// HTTP API's, when there is one) or a pool of its own.
async fn resp_front(
    addr: &str,
    masters: Vec<String>,
    pool: Option<std::sync::Arc<diskv::http::pool::ClerkPool>>,
    server: std::sync::Arc<KvServer>,
    opts: diskv::resp::RespOptions,
) -> anyhow::Result<Option<diskv::resp::Running>> {
    let listener = super::bind_resp(Some(addr)).await?;
    let pool = pool.unwrap_or_else(|| {
        let pool = diskv::http::pool::ClerkPool::new(
            masters,
            diskv::http::FrontOptions::default().pool_size,
        );
        pool.set_local(server.local());
        pool
    });
    super::spawn_resp(listener, &pool, Some(server), opts)
}
