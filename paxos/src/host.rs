//! Hosting a replica for real: its log on disk, its peers over TCP, and the one
//! listening port shared with the service built on top (see [`crate::transport::mux`]).

use crate::error::PaxosError;
use crate::node::{Decision, NodeOptions, PaxosNode};
use crate::storage::{LogOptions, SegmentLog};
use crate::transport::mux;
use crate::transport::{PeerNet, PeerServer, Unreliable};
use crate::types::{NodeId, Slot};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
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
    /// `core::membership`): it votes only once its reincarnation is decided.
    pub recovering: Option<u64>,
}

/// A running replica and what the service on top needs.
pub struct Hosted {
    /// The replica.
    pub node: PaxosNode,
    /// Its decisions, in log order.
    pub decisions: mpsc::UnboundedReceiver<Decision>,
    /// Client connections that arrived on the shared port (tagged [`mux::CLIENT`]).
    pub clients: mpsc::Receiver<TcpStream>,
    /// The unreliable switch, for the service to apply to its own requests too.
    pub unreliable: Arc<Unreliable>,
}

/// Opens the log, connects the peers and starts serving peer traffic on
/// `listener` until `shutdown` turns true.
pub fn host(
    listener: TcpListener,
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
    let log = SegmentLog::open(
        &opts.log_dir,
        LogOptions {
            sync: opts.fsync,
            ..LogOptions::default()
        },
    )?;
    let net = PeerNet::new(opts.me, opts.peers.clone());
    let mut node_opts = opts
        .node
        .clone()
        .unwrap_or_else(|| NodeOptions::new(opts.me, opts.peers.len()));
    node_opts.applied = opts.applied;
    node_opts.core.recovering = opts.recovering;
    let (node, decisions) = PaxosNode::start(node_opts, Box::new(log), Arc::new(net))?;
    let demux = mux::demux(listener)?;
    let unreliable = Arc::new(Unreliable::new(opts.unreliable));
    let server = PeerServer::new(node.inbox(), unreliable.clone());
    let stopping = node.clone();
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|&s| s).await;
        };
        server.serve(demux.peers, stop).await;
        stopping.stop();
    });
    Ok(Hosted {
        node,
        decisions,
        clients: demux.clients,
        unreliable,
    })
}
