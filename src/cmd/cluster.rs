//! `diskv cluster`: a whole cluster on this machine (docs/REFERENCE.md §5).
//!
//! Every shardmaster and replica is a child process of this binary (`diskv
//! shardmaster`, `diskv server --join`), started by the local launcher
//! ([`diskv_launch`]) on loopback ports chosen at first start and recorded in
//! `DIR/cluster.json` ([`layout`]); later starts reuse them, and a replica whose
//! directory holds data gets `--restart`, so the same cluster comes back with its
//! data. The launcher waits until every group serves ([`ready`]), then serves the
//! HTTP API for the whole cluster through Clerks. Ctrl-C or SIGTERM stops the API,
//! then every child by pid ([`diskv_launch::children`]), and exits 0.
//!
//! The children are dialled at their recorded addresses, on 127.0.0.1 unless
//! `--advertise-host` named another host at first start, and listen on
//! `--listen-host` (127.0.0.1) at the same ports. stdout holds the human lines;
//! the launcher's own log goes to `DIR/logs/launcher.log` (see
//! [`crate::logging`]).

use anyhow::Context;
use diskv::http::Front;
use diskv_launch::advertise::{self, AdvertiseHost};
use diskv_launch::children::Children;
use diskv_launch::layout::{self, Layout, Shape};
use diskv_launch::{ready, say, start_children};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Start a local cluster: shardmasters and replica groups as child processes,
/// plus the HTTP API.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replica groups, at first start [default: 3].
    #[arg(long)]
    groups: Option<usize>,
    /// Replicas per group, at first start [default: 3].
    #[arg(long)]
    replicas: Option<usize>,
    /// Shardmaster replicas, at first start [default: 3].
    #[arg(long)]
    masters: Option<usize>,
    /// Shards, at first start [default: 10].
    #[arg(long)]
    shards: Option<usize>,
    /// Where the cluster keeps everything (cluster.json, data, logs/).
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Where the HTTP API listens.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http: String,
    /// The host name or IP address the processes are dialled at, at first start:
    /// by each other, by the HTTP API's Clerks and by your clients; the
    /// shardmaster records the groups under it. Fixed in DIR/cluster.json, like
    /// the shape [default: 127.0.0.1].
    #[arg(long, value_name = "HOST")]
    advertise_host: Option<AdvertiseHost>,
    /// The IP address the processes listen on, at their recorded ports (0.0.0.0:
    /// every interface). Chosen at each start.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    listen_host: IpAddr,
    /// Also serve the Redis protocol (RESP2/RESP3) on this address [default: off].
    #[arg(long)]
    resp: Option<String>,
    /// Between the cluster's processes: mutual TLS with certificates made in
    /// DIR/tls on first start, unless --insecure or an identity is given.
    #[command(flatten)]
    tls: super::tls::TlsArgs,
    #[command(flatten)]
    front_door: super::front_door::FrontDoorArgs,
}

impl Args {
    /// Where the launcher's own log goes: `DIR/logs/launcher.log`.
    pub fn launcher_log(&self) -> PathBuf {
        self.dir.join("logs").join("launcher.log")
    }
}

/// Runs the cluster until SIGTERM or SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut signals = super::signals::Signals::new().context("cannot watch SIGTERM/SIGINT")?;
    let dir = args.dir.clone();
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.join("logs").display()))?;
    let _lock = lock(&dir)?;
    let shape = Shape {
        groups: args.groups,
        replicas: args.replicas,
        masters: args.masters,
        shards: args.shards,
        advertise_host: args.advertise_host.clone(),
    };
    let (layout, new) = Layout::load_or_create(&dir, shape)?;
    let security = args.tls.install_local(&tls_dir(&dir), "launcher")?;
    let front_options = args.front_door.front_options()?;
    let serve_options = args.front_door.serve_options(&security)?;
    let resp_options = args.front_door.resp_options(&front_options, &security)?;
    // The flags of the user's own clients, printed by `announce` (with the
    // launcher's certificates, this issues the client identity, role client).
    let client_flags = if args.tls.insecure {
        String::new()
    } else {
        format!(
            " {}",
            args.tls
                .client_flags(&tls_dir(&dir), CLIENT_IDENTITY)?
                .join(" ")
        )
    };
    // Bind the API first: a busy port fails before any child starts.
    let listener = tokio::net::TcpListener::bind(&args.http)
        .await
        .with_context(|| format!("cannot listen on {} (--http)", args.http))?;
    let resp_listener = super::bind_resp(args.resp.as_deref()).await?;

    say(&format!(
        "diskv cluster: {} shardmasters, {} groups x {} replicas, {} shards; {} in {}",
        layout.masters.len(),
        layout.groups.len(),
        layout.groups[0].replicas.len(),
        layout.shards,
        if new {
            "new cluster"
        } else {
            "restarting the cluster recorded"
        },
        layout::file(&dir).display()
    ));
    say(&format!(
        "  {:<22} log {}",
        "launcher",
        args.launcher_log().display()
    ));
    let mut children = Children::default();
    // A child's own certificate also names the host it is dialled at.
    let hosts: Vec<String> = layout
        .host()
        .map(|h| advertise::cert_name(h).to_string())
        .into_iter()
        .collect();
    let security = |name: &str| args.tls.child_flags(&tls_dir(&dir), name, &hosts);
    let started = start_children(&layout, &dir, args.listen_host, &security, &mut children);
    if let Err(e) = started {
        children.stop().await;
        return Err(e);
    }

    let front = Arc::new(Front::new(layout.masters.clone(), front_options));
    let http = diskv::http::spawn_with(listener, front.clone(), serve_options)?;
    let resp = super::spawn_resp(resp_listener, front.pool(), None, resp_options)?;
    let outcome = tokio::select! {
        r = ready::wait(&layout, &mut children) => r.map(|()| None),
        s = signals.recv() => Ok(Some(s)),
    };
    let signal = match outcome {
        Err(e) => {
            stop_resp(resp).await;
            http.stop().await;
            children.stop().await;
            return Err(e);
        }
        Ok(Some(s)) => s,
        Ok(None) => {
            front.set_ready();
            announce(&layout, http.local_addr(), &client_flags);
            if let Some(resp) = &resp {
                say(&format!(
                    "Redis protocol listening on {}",
                    resp.local_addr()
                ));
            }
            watch(&mut children, &mut signals).await
        }
    };
    say(&format!(
        "{signal}: stopping the HTTP API and {} processes...",
        children.alive()
    ));
    stop_resp(resp).await;
    http.stop().await;
    children.stop().await;
    say("stopped");
    Ok(())
}

/// Stops the Redis protocol front door, if it runs.
async fn stop_resp(resp: Option<diskv::resp::Running>) {
    if let Some(resp) = resp {
        resp.stop().await;
    }
}

/// Where a local cluster keeps its CA and its processes' identities.
fn tls_dir(dir: &Path) -> PathBuf {
    dir.join("tls")
}

/// The identity made for the user's clients of a local cluster (role client:
/// it cannot open replica-to-replica connections).
const CLIENT_IDENTITY: &str = "client";

/// Holds an exclusive lock on `DIR/launcher.lock` (one launcher per directory).
fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("launcher.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own, valid for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        anyhow::bail!(
            "another diskv cluster is running on {} (it holds {}); stop it first",
            dir.display(),
            path.display()
        );
    }
    Ok(file)
}

/// Tells the user the cluster is up and how to use it.
fn announce(layout: &Layout, http: std::net::SocketAddr, tls_flags: &str) {
    let masters = layout.masters.join(",");
    let host = if http.ip().is_unspecified() {
        format!("127.0.0.1:{}", http.port())
    } else {
        http.to_string()
    };
    say(&format!("Server listening on {http}"));
    say(&format!(
        "try:  curl -X PUT -d hello http://{host}/kv/greeting && curl http://{host}/kv/greeting"
    ));
    say(&format!(
        "      diskv client --masters {masters}{tls_flags}"
    ));
    say(&format!(
        "      diskv admin --masters {masters}{tls_flags} status"
    ));
    say(&format!("      the dashboard: http://{host}/ui"));
    say("Ctrl-C stops every process.");
}

/// Reports children that exit on their own, until a signal; returns its name.
async fn watch(children: &mut Children, signals: &mut super::signals::Signals) -> &'static str {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            s = signals.recv() => return s,
            _ = tick.tick() => {
                for (r, status) in children.newly_exited() {
                    say(&format!(
                        "warning: {} (pid {}) exited ({status}); see {}",
                        r.spec.name,
                        r.pid,
                        r.log.display()
                    ));
                }
            }
        }
    }
}
