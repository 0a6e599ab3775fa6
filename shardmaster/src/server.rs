//! A shardmaster replica: the Paxos replica, the state machine and the RPC server,
//! on one already-bound listener (tests bind port 0; the daemon binds `peers[me]`).

use crate::config::Config;
use crate::error::ShardmasterError;
use crate::machine::{MachineOptions, ShardmasterMachine};
use crate::op::ConfigNum;
use crate::persist::{self, DirLock};
use crate::recovery::{self, Opened};
use crate::rpc::{ShardmasterRpc, ShardmasterRpcRequest, ShardmasterRpcResponse};
use crate::service::Handler;
use futures::StreamExt;
use paxos::fs::SharedFs;
use paxos::host::{Host, HostOptions};
use paxos::node::{DiskGauge, DISK_FIGURE_MAX_AGE};
use paxos::rsm::Rsm;
use paxos::transport::{codec, Unreliable};
use paxos::{PaxosNode, Slot};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tarpc::server::incoming::Incoming as _;
use tarpc::server::BaseChannel;
use tarpc::{ClientMessage, Response};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How long [`ShardmasterServer::shutdown`] waits for the apply loop to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Time given to the Paxos persister thread to finish its last batch after the
/// replica stopped: `PaxosNode` offers no way to wait for it.
const PERSISTER_GRACE: Duration = Duration::from_millis(250);

/// Where and how to run a shardmaster replica.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The data directory: everything the replica keeps lives under it.
    pub dir: PathBuf,
    /// This replica's index in `peers`.
    pub me: usize,
    /// Every shardmaster replica's address, `host:port`.
    pub peers: Vec<String>,
    /// The shard count. Recorded at first start (default 10); later starts must give
    /// the same count or `None`.
    pub nshards: Option<usize>,
    /// Lose requests like the 6.824 unreliable network (client and peer traffic).
    pub unreliable: bool,
    /// How long one request may wait for its log instance before the client is told
    /// to retry (default 1 s).
    pub op_timeout: Duration,
    /// Checkpoint at the latest after this many applied instances (default 256).
    pub checkpoint_every: u64,
    /// A log without decisions for this long is idle: checkpoint (default 200 ms).
    pub idle_after: Duration,
    /// Whether the Paxos log fdatasyncs (default true; off only for throwaway runs).
    pub fsync: bool,
    /// This replica has run before: an empty `dir` means its disk was lost, so it
    /// recovers from its peers without asking them first (default false: an empty
    /// `dir` asks the peers, see `paxos::probe`).
    pub restart: bool,
}

impl ServerOptions {
    /// The defaults for replica `me` of `peers`, keeping its data in `dir`.
    pub fn new(dir: impl Into<PathBuf>, me: usize, peers: Vec<String>) -> Self {
        ServerOptions {
            dir: dir.into(),
            me,
            peers,
            nshards: None,
            unreliable: false,
            op_timeout: Duration::from_secs(1),
            checkpoint_every: 256,
            idle_after: Duration::from_millis(200),
            fsync: true,
            restart: false,
        }
    }

    /// Checks the settings that need no disk.
    pub fn validate(&self) -> Result<(), ShardmasterError> {
        let bad = |reason: String| Err(ShardmasterError::BadOptions { reason });
        if self.peers.is_empty() {
            return bad("no peers: pass every shardmaster's address with --peers A0,A1,A2".into());
        }
        if self.me >= self.peers.len() {
            return bad(format!(
                "--me {} is not an index into the {} addresses of --peers (0 to {})",
                self.me,
                self.peers.len(),
                self.peers.len() - 1
            ));
        }
        if let Some(empty) = self.peers.iter().position(|p| p.trim().is_empty()) {
            return bad(format!("peer address {empty} is empty"));
        }
        if self.op_timeout.is_zero() || self.idle_after.is_zero() || self.checkpoint_every == 0 {
            return bad("op_timeout, idle_after and checkpoint_every must be positive".into());
        }
        Ok(())
    }
}

/// A running shardmaster replica.
pub struct ShardmasterServer {
    rsm: Rsm<ShardmasterMachine>,
    local_addr: SocketAddr,
    me: usize,
    nshards: usize,
    stop: watch::Sender<bool>,
    serving: JoinHandle<()>,
    machine_dropped: oneshot::Receiver<()>,
    unreliable: Arc<Unreliable>,
    halted: Arc<AtomicBool>,
    _lock: DirLock,
}

impl ShardmasterServer {
    /// Opens (or creates) the replica's directory, replays its checkpoint and log,
    /// and serves peers and clients on `listener` until [`ShardmasterServer::shutdown`].
    pub async fn start(
        listener: TcpListener,
        opts: ServerOptions,
    ) -> Result<ShardmasterServer, ShardmasterError> {
        opts.validate()?;
        // Every file of the replica but the log goes through this file system (the
        // log is opened by the host, on the machine's).
        let fs = paxos::fs::os();
        let lock = persist::lock_dir(&*fs, &opts.dir)?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| ShardmasterError::BadOptions {
                reason: format!("the listener has no address: {e}"),
            })?;
        let host = Host::bind(listener).map_err(|e| ShardmasterError::Paxos {
            reason: e.to_string(),
        })?;
        let opened = recovery::open_dir(&fs, &opts, &host).await?;
        let cluster = opened.cluster;
        let configs = opened.ckpt.as_ref().map_or(1, |c| c.store.latest().num + 1);
        let (mut machine, applied) = open_machine(fs.clone(), &opts, opened)?;
        let machine_dropped = machine.watch_drop();
        let (stop, stop_rx) = watch::channel(false);
        let hosted = host
            .start(
                HostOptions {
                    log_dir: persist::log_dir(&opts.dir),
                    me: opts.me,
                    peers: opts.peers.clone(),
                    unreliable: opts.unreliable,
                    applied,
                    node: None,
                    fsync: opts.fsync,
                    recovering: cluster.recovering,
                },
                stop_rx.clone(),
            )
            .map_err(|e| ShardmasterError::Paxos {
                reason: e.to_string(),
            })?;
        let rsm = Rsm::start(
            opts.me,
            hosted.node,
            hosted.decisions,
            machine,
            applied,
            opts.idle_after,
        );
        let halted = Arc::new(AtomicBool::new(false));
        let handler = Handler {
            rsm: rsm.clone(),
            nshards: cluster.nshards,
            op_timeout: opts.op_timeout,
            me: opts.me,
            addr: opts.peers[opts.me].as_str().into(),
            peers: opts.peers.clone().into(),
            halted: halted.clone(),
            disk: Arc::new(DiskGauge::new(&opts.dir, DISK_FIGURE_MAX_AGE)),
        };
        let serving = tokio::spawn(serve_clients(
            hosted.clients,
            handler,
            hosted.unreliable.clone(),
            stop_rx.clone(),
        ));
        recovery::spawn(
            rsm.clone(),
            opts.clone(),
            cluster,
            fs,
            halted.clone(),
            stop_rx,
        );
        tracing::info!(
            node = opts.me,
            addr = %local_addr,
            dir = %opts.dir.display(),
            shards = cluster.nshards,
            applied,
            configs,
            unreliable = opts.unreliable,
            "shardmaster replica started"
        );
        Ok(ShardmasterServer {
            rsm,
            local_addr,
            me: opts.me,
            nshards: cluster.nshards,
            stop,
            serving,
            machine_dropped,
            unreliable: hosted.unreliable,
            halted,
            _lock: lock,
        })
    }

    /// The address the replica listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The replica's Paxos node (for `min()`, `max()`, leadership).
    pub fn node(&self) -> &PaxosNode {
        self.rsm.node()
    }

    /// The cluster's shard count.
    pub fn nshards(&self) -> usize {
        self.nshards
    }

    /// The latest configuration *this replica* has applied: possibly stale. Clients
    /// must use a [`Clerk`](crate::Clerk) query, which goes through the log.
    pub fn latest(&self) -> Config {
        self.rsm.with_state(|m| m.store().latest().clone())
    }

    /// Configuration `which` as applied here (past the latest: the latest).
    pub fn local_query(&self, which: ConfigNum) -> Config {
        self.rsm.with_state(|m| m.store().query(which).clone())
    }

    /// Every log instance below this is applied here.
    pub fn applied(&self) -> Slot {
        self.rsm.applied()
    }

    /// Every log instance below this is in the checkpoint on disk.
    pub fn checkpointed(&self) -> Slot {
        self.rsm.with_state(|m| m.durable())
    }

    /// True if this replica halted because a majority of the group lost their disks.
    pub fn is_halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    /// This replica's acceptor incarnation; `None` while it recovers a lost disk.
    pub fn incarnation(&self) -> Option<u64> {
        self.rsm.node().incarnation()
    }

    /// True once this replica's votes count in the next instance (after a lost
    /// disk: admitted, and every instance its lost incarnation may have voted in
    /// decided; see `paxos::PaxosNode::votes_now`).
    pub fn votes_now(&self) -> bool {
        self.rsm.node().votes_now()
    }

    /// The unreliable switch of this replica (client and peer traffic), for tests.
    pub fn unreliable(&self) -> &Arc<Unreliable> {
        &self.unreliable
    }

    /// Stops serving, stops the Paxos replica and waits for the state machine to
    /// stop, then releases the directory. Like a crash, this loses nothing: every
    /// acknowledged operation is in the log.
    pub async fn shutdown(self) {
        let ShardmasterServer {
            rsm,
            me,
            stop,
            serving,
            machine_dropped,
            _lock,
            ..
        } = self;
        let _ = stop.send(true);
        let _ = serving.await;
        rsm.node().stop();
        drop(rsm);
        if tokio::time::timeout(STOP_TIMEOUT, machine_dropped)
            .await
            .is_err()
        {
            tracing::warn!(node = me, "the state machine did not stop in time");
        }
        tokio::time::sleep(PERSISTER_GRACE).await;
        tracing::info!(node = me, "shardmaster replica stopped");
    }
}

/// The state machine of an opened directory (its checkpoint, or config 0), and
/// the first log instance it does not cover. A checkpoint whose shard count is not
/// the cluster record's is [`ShardmasterError::CorruptFile`].
pub fn open_machine(
    fs: SharedFs,
    opts: &ServerOptions,
    opened: Opened,
) -> Result<(ShardmasterMachine, Slot), ShardmasterError> {
    let Opened { cluster, ckpt } = opened;
    if let Some(c) = &ckpt {
        if c.store.nshards() != cluster.nshards {
            return Err(ShardmasterError::CorruptFile {
                path: opts.dir.join(persist::STATE_FILE).display().to_string(),
                reason: format!(
                    "it holds {} shards, the cluster record {}",
                    c.store.nshards(),
                    cluster.nshards
                ),
            });
        }
    }
    let applied = ckpt.as_ref().map_or(0, |c| c.applied);
    let machine = ShardmasterMachine::new(
        ckpt,
        cluster.nshards,
        MachineOptions {
            fs,
            dir: opts.dir.clone(),
            checkpoint_every: opts.checkpoint_every,
            me: opts.me,
        },
    )?;
    Ok((machine, applied))
}

/// Serves the RPC on every client connection until `stop` turns true, then closes
/// them all (requests still running are aborted; their clients retry elsewhere).
async fn serve_clients(
    mut clients: mpsc::Receiver<paxos::transport::mux::Conn>,
    handler: Handler,
    unreliable: Arc<Unreliable>,
    mut stop: watch::Receiver<bool>,
) {
    let streams = futures::stream::poll_fn(move |cx| clients.poll_recv(cx));
    let channels = streams
        .map(|stream| {
            BaseChannel::with_defaults(codec::framed::<
                ClientMessage<ShardmasterRpcRequest>,
                Response<ShardmasterRpcResponse>,
                _,
            >(stream))
        })
        .execute(unreliable.wrap(handler.serve()));
    codec::serve_until(channels, async move {
        let _ = stop.wait_for(|&s| s).await;
    })
    .await;
}
