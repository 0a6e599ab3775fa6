//! Hosting a replica for real: its log on disk, its peers over TCP, and the one
//! listening port shared with the service built on top (see [`crate::transport::mux`]).
//!
//! Two steps, so a replica with an empty directory can ask its peers whether it
//! lost its disk before it votes ([`crate::probe`]): [`Host::bind`] starts routing
//! the port (and answering probes), [`Host::start`] opens the log and runs the
//! replica. [`host`] does both at once.

use crate::error::PaxosError;
use crate::node::{Decision, NodeOptions, PaxosNode, Reopen};
use crate::probe::{self, Responder, Verdict};
use crate::storage::{LogOptions, SegmentLog, Storage, StorageError};
use crate::transport::mux;
use crate::transport::mux::{Conn, Demux};
use crate::transport::{PeerNet, PeerServer, Unreliable};
use crate::types::{NodeId, Slot};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Where and how to run a replica.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Folder of the replica's Paxos log (created if missing).
    pub log_dir: PathBuf,
    /// This replica's index in `peers`.
    pub me: NodeId,
    /// Every replica's address, `host:port`; this process listens on `peers[me]`.
    pub peers: Vec<String>,
    /// Drop and discard requests as the 6.824 unreliable network does.
    pub unreliable: bool,
    /// The application applied every instance below this (its checkpoint).
    pub applied: Slot,
    /// Tuning of the node; `None` for the defaults.
    pub node: Option<NodeOptions>,
    /// Whether the log fdatasyncs (turn off only for throwaway benchmarks).
    pub fsync: bool,
    /// `Some(nonce)` when this replica lost its disk and recovers (see
    /// `crate::membership`): it votes only once its reincarnation is decided.
    pub recovering: Option<u64>,
}

/// A running replica and what the service on top needs.
pub struct Hosted {
    /// The replica.
    pub node: PaxosNode,
    /// Its decisions, in log order.
    pub decisions: mpsc::UnboundedReceiver<Decision>,
    /// Client connections that arrived on the shared port (tagged [`mux::CLIENT`]).
    pub clients: mpsc::Receiver<Conn>,
    /// The unreliable switch, for the service to apply to its own requests too.
    pub unreliable: Arc<Unreliable>,
}

/// A listening port, routed and answering probes, whose replica is not running yet.
pub struct Host {
    peers: mpsc::Receiver<Conn>,
    clients: mpsc::Receiver<Conn>,
    responder: Responder,
}

impl Host {
    /// Starts routing `listener`'s connections by tag. Probes get no answer until
    /// [`Host::probe`] or [`Host::start`].
    pub fn bind(listener: TcpListener) -> Result<Host, PaxosError> {
        let Demux {
            peers,
            clients,
            probes,
            ..
        } = mux::demux(listener)?;
        let responder = Responder::default();
        responder.serve(probes);
        Ok(Host {
            peers,
            clients,
            responder,
        })
    }

    /// For a replica with nothing on disk: asks the peers whether its group has a
    /// history, until they say (see [`crate::probe`]). Waits as long as it takes.
    pub async fn probe(&self, me: NodeId, peers: &[String]) -> Verdict {
        probe::until_decided(me, peers, &self.responder).await
    }

    /// Tells peers that probe this replica that it recovers a lost disk (known
    /// without asking them: `--restart`, or a quarantined directory).
    pub fn recovering(&self) {
        self.responder.known(probe::Answer::Recovering);
    }

    /// Opens the log, connects the peers and starts serving peer traffic until
    /// `shutdown` turns true.
    pub fn start(
        self,
        opts: HostOptions,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Hosted, PaxosError> {
        if opts.me >= opts.peers.len() {
            return Err(PaxosError::Config(format!(
                "--me {} is not an index into {} peers",
                opts.me,
                opts.peers.len()
            )));
        }
        let log_options = LogOptions {
            sync: opts.fsync,
            ..LogOptions::default()
        };
        // This start takes the disk as it is; a restart after a storage failure
        // first checks that the disk takes writes again.
        let log = SegmentLog::open(&opts.log_dir, log_options)?;
        let log_dir = opts.log_dir.clone();
        let reopen: Reopen = Arc::new(move || {
            room_for_writes(&log_dir)?;
            let log = SegmentLog::open(&log_dir, log_options)?;
            Ok(Box::new(log) as Box<dyn Storage>)
        });
        let net = PeerNet::new(opts.me, opts.peers.clone());
        let mut node_opts = opts
            .node
            .clone()
            .unwrap_or_else(|| NodeOptions::new(opts.me, opts.peers.len()));
        node_opts.applied = opts.applied;
        node_opts.core.recovering = opts.recovering;
        let (node, decisions) =
            PaxosNode::start_reviving(node_opts, Box::new(log), reopen, Arc::new(net))?;
        self.responder.running(node.clone());
        let unreliable = Arc::new(Unreliable::new(opts.unreliable));
        let server = PeerServer::new(node.inbox(), unreliable.clone());
        let stopping = node.clone();
        let peers = self.peers;
        tokio::spawn(async move {
            let stop = async move {
                let _ = shutdown.wait_for(|&s| s).await;
            };
            server.serve(peers, stop).await;
            stopping.stop();
        });
        Ok(Hosted {
            node,
            decisions,
            clients: self.clients,
            unreliable,
        })
    }
}

/// Bytes a log folder must take before a replica whose storage failed reads its
/// log again (reading a long log only to fail at the first append costs more).
const ROOM_PROBE_BYTES: usize = 1 << 20;

/// Checks that `dir` takes [`ROOM_PROBE_BYTES`] of writes, leaving nothing behind.
/// Passes if `dir` does not exist yet (opening the log creates it).
fn room_for_writes(dir: &std::path::Path) -> Result<(), StorageError> {
    if !dir.is_dir() {
        return Ok(());
    }
    let path = dir.join(".room-probe");
    let wrote = std::fs::write(&path, vec![0u8; ROOM_PROBE_BYTES]);
    let _ = std::fs::remove_file(&path);
    wrote.map_err(|source| StorageError::Io { path, source })
}

/// Opens the log, connects the peers and starts serving peer traffic on
/// `listener` until `shutdown` turns true ([`Host::bind`] then [`Host::start`]).
pub fn host(
    listener: TcpListener,
    opts: HostOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<Hosted, PaxosError> {
    Host::bind(listener)?.start(opts, shutdown)
}
