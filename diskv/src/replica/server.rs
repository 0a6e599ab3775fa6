//! A KV replica: state machine + Paxos replica + service, on one port.

use crate::error::StateError;
use crate::replica::disk;
pub use crate::replica::options::ServerOptions;
use crate::replica::reconfig;
use crate::replica::recovery;
use crate::replica::service::{About, KvService};
use crate::rpc::KvRpc;
use crate::state::KvState;
use futures::StreamExt;
use paxos::host::{Host, HostOptions};
use paxos::node::{DiskGauge, DISK_FIGURE_MAX_AGE};
use paxos::rsm::Rsm;
use paxos::transport::{codec, Unreliable};
use paxos::PaxosNode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tarpc::server::{BaseChannel, Channel};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// How long a replica goes without decisions before it counts as idle and writes a
/// checkpoint (key files and record), so a restart replays little.
const CHECKPOINT_WHEN_IDLE: Duration = Duration::from_millis(300);

/// A replica in the same process as a Clerk: its address and its service.
#[derive(Clone)]
pub struct Local {
    /// The address the group's configuration names the replica by.
    pub addr: String,
    /// Its client service, the one its RPC listener serves.
    pub service: KvService,
    /// The listener's `--unreliable` policy: a direct call meets it too
    /// (docs/REFERENCE.md: "for client and replica traffic alike").
    pub unreliable: Arc<Unreliable>,
}

/// A running replica.
pub struct KvServer {
    rsm: Rsm<KvState>,
    stop: watch::Sender<bool>,
    halted: Arc<AtomicBool>,
    service: KvService,
    addr: String,
    unreliable: Arc<Unreliable>,
}

impl KvServer {
    /// Starts a replica serving on `listener` (bound to `opts.peers[opts.me]`).
    pub async fn start(listener: TcpListener, opts: ServerOptions) -> Result<KvServer, StateError> {
        if opts.me >= opts.peers.len() {
            return Err(StateError::Mismatch(format!(
                "--me {} is not an index into {} peers",
                opts.me,
                opts.peers.len()
            )));
        }
        let host = Host::bind(listener)?;
        // Every file of the replica but the log goes through this file system (the
        // log is opened by the host, on the machine's).
        let fs = paxos::fs::os();
        let started = std::time::Instant::now();
        let (identity, state, applied) = disk::open_dir(&fs, &opts, &host).await?;
        let state_ms = started.elapsed().as_millis() as u64;
        let (stop, stop_rx) = watch::channel(false);
        let hosted = host.start(
            HostOptions {
                log_dir: opts.dir.join("log"),
                me: opts.me,
                peers: opts.peers.clone(),
                unreliable: opts.unreliable,
                applied,
                node: None,
                fsync: true,
                recovering: identity.recovering,
            },
            stop_rx.clone(),
        )?;
        let rsm = Rsm::start(
            opts.me,
            hosted.node,
            hosted.decisions,
            state,
            applied,
            CHECKPOINT_WHEN_IDLE,
        )
        // Memory that scales with the data (issue #13): clients' writes wait
        // while 64 MiB of the log await a checkpoint (paxos::rsm's window.rs).
        .with_window_budget(paxos::rsm::WINDOW_BUDGET_BYTES);
        tracing::info!(
            gid = opts.gid,
            me = opts.me,
            addr = %opts.peers[opts.me],
            applied,
            state_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "replica started"
        );
        let halted = Arc::new(AtomicBool::new(false));
        let service = KvService::new(
            rsm.clone(),
            About {
                addr: opts.peers[opts.me].clone(),
                me: opts.me,
                peers: opts.peers.clone(),
                halted: halted.clone(),
                disk: DiskGauge::new(&opts.dir, DISK_FIGURE_MAX_AGE),
            },
        );
        let unreliable = hosted.unreliable.clone();
        serve_clients(
            hosted.clients,
            service.clone(),
            hosted.unreliable,
            stop_rx.clone(),
        );
        if identity.recovering.is_some() {
            tracing::warn!(gid = opts.gid, me = opts.me, dir = %opts.dir.display(), "this replica lost its disk: recovering from its peers");
            recovery::spawn(
                rsm.clone(),
                opts.clone(),
                identity,
                fs,
                halted.clone(),
                stop_rx.clone(),
            );
        }
        reconfig::spawn(rsm.clone(), opts.clone(), stop_rx);
        Ok(KvServer {
            rsm,
            stop,
            halted,
            service,
            addr: opts.peers[opts.me].clone(),
            unreliable,
        })
    }

    /// The replica's client service and the address its group's configuration
    /// names it by: a Clerk in the same process calls it directly
    /// ([`crate::Clerk::with_local`]) instead of over loopback RPC.
    pub fn local(&self) -> Local {
        Local {
            addr: self.addr.clone(),
            service: self.service.clone(),
            unreliable: self.unreliable.clone(),
        }
    }

    /// The replicated state machine (for tests and metrics).
    pub fn rsm(&self) -> &Rsm<KvState> {
        &self.rsm
    }

    /// The Paxos replica.
    pub fn node(&self) -> &PaxosNode {
        self.rsm.node()
    }

    /// True if this replica halted because a majority of its group lost their disks.
    pub fn is_halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    /// Stops serving and replicating. Durable state stays as it is.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.rsm.node().stop();
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves every client connection until `stop`.
fn serve_clients(
    mut clients: mpsc::Receiver<paxos::transport::mux::Conn>,
    service: KvService,
    unreliable: Arc<Unreliable>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                s = clients.recv() => match s {
                    Some(s) => s,
                    None => return,
                },
                _ = stop.wait_for(|&s| s) => return,
            };
            let channel = BaseChannel::with_defaults(codec::framed(stream));
            let serve = unreliable.wrap(service.clone().serve());
            let mut conn_stop = stop.clone();
            tokio::spawn(async move {
                let requests = channel.execute(serve).for_each(|fut| async {
                    tokio::spawn(fut);
                });
                tokio::select! {
                    () = requests => {}
                    _ = conn_stop.wait_for(|&s| s) => {}
                }
            });
        }
    });
}
