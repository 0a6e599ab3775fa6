//! `diskv serve`: one node with the HTTP API (docs/REFERENCE.md §1).
//!
//! The same engine as a cluster, embedded in one process: a one-replica
//! shardmaster (`DATA/shardmaster`) and a one-replica KV group, gid 1
//! (`DATA/group-1`), both on loopback ports kept stable across restarts (see
//! [`ports`]), and the HTTP front door ([`diskv::http`]) on `--listen`; with
//! `--resp ADDR`, also the Redis protocol front door ([`diskv::resp`]), sharing
//! the HTTP front door's Clerk pool.
//!
//! Durability comes from the engine: a write is answered 200 only once its Paxos
//! log instance is fsynced. On SIGTERM/SIGINT the API stops accepting, requests in
//! flight get up to 5 s, then both replicas stop. There is no separate "save" step:
//! the log is the durable record (the KV replica also writes its key files and a
//! checkpoint whenever it has been idle for 300 ms; a restart replays the log
//! after the last checkpoint).

use anyhow::Context;
use diskv::http::Front;
use diskv::{KvServer, ServerOptions};
use diskv_launch::serve_ports::{self as ports, Ports};
use shardmaster::{ConfigNum, ShardmasterServer};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The embedded group's id.
const GID: u64 = 1;
/// Shards of the embedded cluster (fixed at first start).
const NSHARDS: usize = 10;

/// Run one node (shardmaster + KV replica) with the HTTP API.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the HTTP API listens.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: String,
    /// Where everything is kept; created if missing [default: $DATA_DIR, else ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also serve the Redis protocol (RESP2/RESP3) on this address [default: off].
    #[arg(long)]
    resp: Option<String>,
    #[command(flatten)]
    tls: super::tls::TlsArgs,
    #[command(flatten)]
    front_door: super::front_door::FrontDoorArgs,
}

/// `--data-dir`, else `$DATA_DIR`, else `./data`.
fn data_dir(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| {
        std::env::var_os("DATA_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from("./data"))
}

/// Prints one line on stdout and flushes it (the lines tests and scripts wait for).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The running parts of the node.
struct Node {
    dir: PathBuf,
    sm: ShardmasterServer,
    kv: Arc<KvServer>,
    front: Arc<Front>,
    http: diskv::http::Running,
    resp: Option<diskv::resp::Running>,
}

/// Runs the node until SIGTERM or SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut signals = super::signals::Signals::new().context("cannot watch SIGTERM/SIGINT")?;
    let node = tokio::select! {
        n = start(args) => n?,
        s = signals.recv() => {
            tracing::info!(signal = s, "signal during start-up; stopping");
            return Ok(());
        }
    };
    let signalled = tokio::select! {
        () = node.front.wait_ready() => None,
        s = signals.recv() => Some(s),
    };
    let signal = match signalled {
        Some(s) => s,
        None => {
            let keys = node.kv.rsm().with_state(|s| s.key_count());
            say(&format!("Server listening on {}", node.http.local_addr()));
            say(&format!("Loaded {keys} keys from {}", node.dir.display()));
            if let Some(resp) = &node.resp {
                say(&format!(
                    "Redis protocol listening on {}",
                    resp.local_addr()
                ));
            }
            signals.recv().await
        }
    };
    tracing::info!(signal, "stopping");
    node.stop().await;
    Ok(())
}

/// Starts the shardmaster, the KV replica and the API.
async fn start(args: Args) -> anyhow::Result<Node> {
    let dir = data_dir(args.data_dir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    // The engine's ports (loopback) use mutual TLS with certificates made in
    // DATA/tls on first start, unless --insecure or an identity is given.
    let security = args.tls.install_local(&dir.join("tls"), "node")?;
    if !args.tls.given() && !args.tls.insecure {
        // An identity for the user's own clients of the embedded cluster
        // (`diskv client --masters ... --tls-dir DATA/tls/client`), role client.
        super::tls::local_identity(
            &dir.join("tls"),
            "client",
            paxos::transport::role::Role::Client,
        )?;
    }
    let front_options = args.front_door.front_options()?;
    let serve_options = args.front_door.serve_options(&security)?;
    let resp_options = args.front_door.resp_options(&front_options, &security)?;
    let mut ports = Ports::load(&dir)?;
    // Bind the API first: a busy --listen fails before any data is touched.
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let resp_listener = super::bind_resp(args.resp.as_deref()).await?;

    let sm_listener = ports::bind_preferred(ports.shardmaster, "shardmaster").await?;
    let sm_addr = sm_listener.local_addr()?;
    ports.shardmaster = Some(sm_addr.port());
    let mut sm_opts =
        shardmaster::ServerOptions::new(dir.join("shardmaster"), 0, vec![sm_addr.to_string()]);
    sm_opts.nshards = Some(NSHARDS);
    let sm = ShardmasterServer::start(sm_listener, sm_opts)
        .await
        .with_context(|| format!("cannot start the shardmaster in {}", dir.display()))?;
    let masters = vec![sm_addr.to_string()];

    let group_dir = dir.join(format!("group-{GID}"));
    let joined = joined_port(&masters).await;
    let restart = group_dir.join("identity").exists();
    if joined.is_some() && !restart {
        // The group joined (so it held data) but its directory is gone: its only
        // replica lost its disk. It has no peer to recover from; never start empty.
        anyhow::bail!(
            "{} has lost its data: the shardmaster in {} knows group {GID}, but {} has no identity record. \
             A one-replica group cannot recover from peers. Restore {} from a backup, or start with an empty --data-dir",
            group_dir.display(),
            dir.join("shardmaster").display(),
            group_dir.display(),
            group_dir.display()
        );
    }
    let kv_listener = match joined {
        Some(port) => ports::bind_required(port, &dir).await?,
        None => ports::bind_preferred(ports.group, "KV group").await?,
    };
    let kv_addr = kv_listener.local_addr()?;
    ports.group = Some(kv_addr.port());
    ports.store(&dir)?;

    let kv = KvServer::start(
        kv_listener,
        ServerOptions {
            gid: GID,
            masters: masters.clone(),
            peers: vec![kv_addr.to_string()],
            me: 0,
            dir: group_dir,
            restart,
            join: true,
            unreliable: false,
            nshards: Some(sm.nshards()),
        },
    )
    .await
    .with_context(|| format!("cannot start the KV replica in {}", dir.display()))?;
    let kv = Arc::new(kv);
    tracing::info!(shardmaster = %sm_addr, group = %kv_addr, restart, dir = %dir.display(), "engine started");

    let front = Arc::new(Front::new(masters, front_options).with_local(kv.clone()));
    let http = diskv::http::spawn_with(listener, front.clone(), serve_options)?;
    let resp = super::spawn_resp(resp_listener, front.pool(), Some(kv.clone()), resp_options)?;
    Ok(Node {
        dir,
        sm,
        kv,
        front,
        http,
        resp,
    })
}

/// The port of group [`GID`] in the shardmaster's latest configuration, if the
/// group has joined (a linearizable query; waits for the shardmaster to serve).
async fn joined_port(masters: &[String]) -> Option<u16> {
    let clerk = shardmaster::Clerk::new(masters.to_vec());
    let config = loop {
        match tokio::time::timeout(Duration::from_secs(5), clerk.query(ConfigNum::Latest)).await {
            Ok(Ok(c)) => break c,
            Ok(Err(e)) => tracing::info!(error = %e, "waiting for the shardmaster"),
            Err(_) => tracing::info!("waiting for the shardmaster"),
        }
    };
    let addr = config.servers(GID)?.first()?;
    let port = addr.rsplit_once(':')?.1.parse().ok();
    tracing::debug!(%addr, "the KV group joined earlier at this address");
    port
}

impl Node {
    /// Stops the APIs (requests in flight get up to 5 s), then both replicas.
    async fn stop(self) {
        if let Some(resp) = self.resp {
            resp.stop().await;
        }
        self.http.stop().await;
        drop(self.front);
        self.kv.shutdown();
        drop(self.kv);
        self.sm.shutdown().await;
        tracing::info!("stopped");
    }
}
