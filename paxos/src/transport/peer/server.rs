//! The receiving side of the peer network: `deliver` calls into the driver's inbox.

use super::{PeerService, PeerServiceRequest, PeerServiceResponse};
use crate::message::Envelope;
use crate::transport::codec::{self, ServerTransport};
use crate::transport::mux;
use crate::transport::unreliable::{Fate, Unreliable};
use futures::{SinkExt, StreamExt};
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tarpc::server::BaseChannel;
use tarpc::{context, ClientMessage, Request, Response};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long one `deliver` may wait, in total, for room in a full inbox before the rest
/// of its batch is dropped.
const DEFAULT_INBOX_WAIT: Duration = Duration::from_millis(100);

/// Counters of a [`PeerServer`], all monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerServerStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// `deliver` calls handled.
    pub calls: u64,
    /// Envelopes pushed into the inbox.
    pub received: u64,
    /// Envelopes dropped because the inbox stayed full (or was closed).
    pub dropped_inbox_full: u64,
    /// Envelopes dropped by the [`Unreliable`] policy.
    pub dropped_unreliable: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    open_connections: AtomicU64,
    calls: AtomicU64,
    received: AtomicU64,
    dropped_inbox_full: AtomicU64,
    dropped_unreliable: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Counts one open connection for as long as it lives. Created before the connection's
/// task is spawned, so a task aborted before its first poll still decrements the gauge.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: &Arc<Shared>) -> Self {
        bump(&shared.counters.open_connections, 1);
        OpenConnection(Arc::clone(shared))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let open = &self.0.counters.open_connections;
        open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Shared {
    inbox: mpsc::Sender<Envelope>,
    unreliable: Arc<Unreliable>,
    counters: Counters,
}

/// Serves [`PeerService`]: every delivered envelope goes into the driver's inbox.
///
/// Requests of one connection are handled one after the other, in arrival order, so
/// envelopes from one sender reach the inbox in send order (barring loss). Handling is
/// cheap (`try_send`), so this costs no throughput; the sender still pipelines several
/// calls on the connection.
///
/// With the [`Unreliable`] policy enabled, each *envelope* draws a fate: [`Fate::Drop`]
/// loses it; [`Fate::DiscardReply`] and [`Fate::Deliver`] deliver it, because a one-way
/// message has no reply of its own (the protocol's answer is a separate `deliver` from
/// the other side, which meets its own fate there). The transport acknowledgement is
/// always sent, so lossy mode does not stall the sender's pipeline.
#[derive(Clone, Debug)]
pub struct PeerServer {
    shared: Arc<Shared>,
    inbox_wait: Duration,
}

impl PeerServer {
    /// A server feeding `inbox`, losing envelopes as `unreliable` decides.
    pub fn new(inbox: mpsc::Sender<Envelope>, unreliable: Arc<Unreliable>) -> Self {
        PeerServer {
            shared: Arc::new(Shared {
                inbox,
                unreliable,
                counters: Counters::default(),
            }),
            inbox_wait: DEFAULT_INBOX_WAIT,
        }
    }

    /// Sets how long one call may wait in total for room in a full inbox (default
    /// 100 ms); once spent, the rest of the batch is dropped and counted.
    pub fn with_inbox_wait(mut self, wait: Duration) -> Self {
        self.inbox_wait = wait;
        self
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PeerServerStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PeerServerStats {
            connections: get(&c.connections),
            open_connections: get(&c.open_connections),
            calls: get(&c.calls),
            received: get(&c.received),
            dropped_inbox_full: get(&c.dropped_inbox_full),
            dropped_unreliable: get(&c.dropped_unreliable),
        }
    }

    /// Accepts peers on an already-bound `listener` until `shutdown` completes, then
    /// closes every connection. Connections must start with the [`mux::PEER`] tag.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let demux = mux::demux(listener)?;
        tracing::info!(addr = %demux.local_addr, "peer server listening");
        self.serve(demux.peers, shutdown).await;
        Ok(())
    }

    /// Serves peer connections handed over by a [`mux::demux`] until `shutdown`.
    pub async fn serve(
        self,
        mut streams: mpsc::Receiver<mux::Conn>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(stream) = streams.recv() => {
                    bump(&self.shared.counters.connections, 1);
                    let open = OpenConnection::new(&self.shared);
                    let transport = codec::framed::<ClientMessage<PeerServiceRequest>, Response<PeerServiceResponse>, _>(stream);
                    connections.spawn(self.clone().serve_connection(transport, open));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!(connections = connections.len(), "peer server shutting down");
        connections.shutdown().await;
    }

    /// Reads requests off one connection and answers each after handling it.
    async fn serve_connection(
        self,
        transport: ServerTransport<PeerServiceRequest, PeerServiceResponse>,
        _open: OpenConnection,
    ) {
        let remote = Some(transport.get_ref().remote());
        tracing::debug!(addr = ?remote, "peer connected");
        let mut channel = BaseChannel::with_defaults(transport);
        while let Some(next) = channel.next().await {
            let Request {
                id,
                context,
                message,
            } = match next {
                Ok(tracked) => tracked.request,
                Err(error) => {
                    tracing::debug!(addr = ?remote, %error, "peer connection failed");
                    return;
                }
            };
            let message = match message {
                PeerServiceRequest::Deliver { batch } => {
                    self.clone().deliver(context, batch).await;
                    PeerServiceResponse::Deliver(())
                }
            };
            let response = Response {
                request_id: id,
                message: Ok(message),
            };
            if let Err(error) = channel.send(response).await {
                tracing::debug!(addr = ?remote, %error, "cannot acknowledge delivery");
                return;
            }
        }
        tracing::debug!(addr = ?remote, "peer disconnected");
    }

    /// Pushes one batch into the inbox, applying the unreliable policy per envelope.
    async fn push_batch(&self, batch: Vec<Envelope>) {
        let shared = &*self.shared;
        let counters = &shared.counters;
        bump(&counters.calls, 1);
        let give_up_at = Instant::now() + self.inbox_wait;
        let mut dropped_full = 0;
        for env in batch {
            if shared.unreliable.on_request() == Fate::Drop {
                bump(&counters.dropped_unreliable, 1);
                continue;
            }
            let pushed = match shared.inbox.try_send(env) {
                Ok(()) => true,
                Err(TrySendError::Full(env)) => {
                    matches!(
                        tokio::time::timeout_at(give_up_at, shared.inbox.send(env)).await,
                        Ok(Ok(()))
                    )
                }
                Err(TrySendError::Closed(_)) => false,
            };
            if pushed {
                bump(&counters.received, 1);
            } else {
                dropped_full += 1;
            }
        }
        if dropped_full > 0 {
            bump(&counters.dropped_inbox_full, dropped_full);
            tracing::warn!(
                dropped = dropped_full,
                "peer inbox full or closed; envelopes dropped"
            );
        }
    }
}

impl PeerService for PeerServer {
    async fn deliver(self, _: context::Context, batch: Vec<Envelope>) {
        self.push_batch(batch).await;
    }
}

/// Runs a [`PeerServer`] on `listener` until `shutdown` completes (the shape of
/// mini-redis's `server::run`). Tests bind `127.0.0.1:0` and pass the listener.
pub async fn serve_peers(
    listener: TcpListener,
    inbox: mpsc::Sender<Envelope>,
    unreliable: Arc<Unreliable>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    PeerServer::new(inbox, unreliable)
        .run(listener, shutdown)
        .await
}
