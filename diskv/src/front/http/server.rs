//! The accept loop: HTTP/1.1 connections served by hyper with the API's router,
//! and what keeps abusive clients from hurting others:
//!
//! - a deadline for request headers ([`ServeOptions::header_timeout`]; the
//!   connection is closed), and limits on their count and size (431);
//! - bodies under [`BodyRules`] (408 once a body falls behind, 413 over the
//!   value limit; see [`super::body`]), read before a Clerk is borrowed, so a
//!   slow body never holds a store operation;
//! - a cap on open connections (more wait in the listen queue) and on
//!   connections per client address (more are answered 503 and closed);
//! - a lingering close after an answer that left a body unread
//!   ([`super::linger`]), so the client reads the answer instead of a reset;
//! - graceful shutdown: stop accepting, let requests in flight finish within a
//!   grace period, then drop what is left.

use super::body::BodyRules;
use super::front::Front;
use super::linger::{close_lingering, close_lingering_within};
use super::per_ip::PerIp;
use super::routes::router;
use axum::http::{header, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use paxos::transport::tls::accept_public;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

pub use crate::front::running::Running;

/// Tuning of the accept loop.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How long requests in flight may take to finish after shutdown starts (5 s).
    pub grace: Duration,
    /// How long a client may take to send a request's headers, counted from
    /// when the server starts waiting for them (10 s); then the connection is
    /// closed without an answer.
    pub header_timeout: Duration,
    /// Most header fields in a request (100); more is 431.
    pub max_headers: usize,
    /// Most bytes of request line and headers (64 KiB); more is 431.
    pub max_header_bytes: usize,
    /// How fast request bodies must arrive.
    pub body: BodyRules,
    /// Most connections open at once; more wait in the listen queue (4096).
    pub max_connections: usize,
    /// Most connections open at once from one IP address (half of
    /// `max_connections` when 0, the default); more are answered 503 and closed.
    pub max_per_ip: usize,
    /// HTTPS with this server configuration (no client certificate asked; the
    /// handshake must finish within `header_timeout`); `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            grace: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_header_bytes: 64 << 10,
            body: BodyRules::default(),
            max_connections: 4096,
            max_per_ip: 0,
            tls: None,
        }
    }
}

impl ServeOptions {
    /// The per-address cap in effect.
    pub fn per_ip_cap(&self) -> usize {
        if self.max_per_ip == 0 {
            (self.max_connections / 2).max(1)
        } else {
            self.max_per_ip
        }
    }
}

/// Serves the HTTP API of `front` on `listener` until `shutdown` resolves, then
/// stops accepting and waits (at most 5 s) for requests in flight.
pub async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, front, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit tuning.
pub async fn serve_with(
    listener: TcpListener,
    front: Arc<Front>,
    shutdown: impl Future<Output = ()>,
    opts: ServeOptions,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let service = TowerToHyperService::new(router(front, opts.body));
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let per_ip = PerIp::new(opts.per_ip_cap());
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .max_headers(opts.max_headers)
        .max_header_size(opts.max_header_bytes);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Some((stream, peer)) = crate::front::running::accepted(accepted, addr, "HTTP").await
        else {
            continue;
        };
        let Some(ip_slot) = per_ip.admit(peer.ip()) else {
            tracing::warn!(%addr, %peer, cap = opts.per_ip_cap(), "HTTP: too many connections from one address; refusing");
            conns.spawn(refuse(stream, peer, slot));
            continue;
        };
        let conn = Conn {
            http: http.clone(),
            service: service.clone(),
            stop: stop_rx.clone(),
            peer,
        };
        let tls = opts.tls.clone();
        let handshake_limit = opts.header_timeout;
        conns.spawn(async move {
            let _slots = (slot, ip_slot);
            let Some(config) = tls else {
                return conn.run(stream).await;
            };
            let accepted = accept_public(config, stream, peer, handshake_limit, "HTTP").await;
            if let Some(tls) = accepted {
                conn.run(tls).await;
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracing::info!(%addr, open = conns.len(), "HTTP: no longer accepting; finishing requests in flight");
    let drained = tokio::time::timeout(opts.grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(%addr, left = conns.len(), grace = ?opts.grace, "HTTP: requests still running after the grace period; dropping them");
        conns.shutdown().await;
    }
    Ok(())
}

/// The answer to a connection over its address's cap.
fn refusal(peer: SocketAddr) -> String {
    let body = format!("too many connections from {}; retry later\n", peer.ip());
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
}

/// Answers a connection over its address's cap with 503 and closes it, within
/// a second, holding its connection slot meanwhile.
async fn refuse(mut stream: TcpStream, peer: SocketAddr, _slot: OwnedSemaphorePermit) {
    let limit = Duration::from_secs(1);
    let sent = tokio::time::timeout(limit, stream.write_all(refusal(peer).as_bytes())).await;
    if matches!(sent, Ok(Ok(()))) {
        close_lingering_within(stream, limit, 64 << 10).await;
    }
}

/// One accepted connection and what serving it needs.
struct Conn {
    http: http1::Builder,
    service: TowerToHyperService<axum::Router>,
    stop: watch::Receiver<bool>,
    peer: SocketAddr,
}

impl Conn {
    /// Serves requests on `stream` until the client or the server ends the
    /// connection; then closes it, lingering if an answer left a body unread.
    async fn run<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            http,
            service,
            mut stop,
            peer,
        } = self;
        // Set when an answer says `Connection: close`: the handlers do that when
        // they leave a request body unread.
        let unread = Arc::new(AtomicBool::new(false));
        let flag = unread.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let call = service.call(req);
            let flag = flag.clone();
            Box::pin(async move {
                let resp: Response<_> = call.await?;
                if resp
                    .headers()
                    .get(header::CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
                {
                    flag.store(true, Ordering::Relaxed);
                }
                Ok::<_, std::convert::Infallible>(resp)
            })
        });
        let mut conn = http.serve_connection(TokioIo::new(stream), svc);
        let served = {
            let stopping = async move {
                let _ = stop.wait_for(|&s| s).await;
            };
            tokio::pin!(stopping);
            let first = tokio::select! {
                r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => Some(r),
                () = &mut stopping => None,
            };
            match first {
                Some(r) => r,
                None => {
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                    std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await
                }
            }
        };
        if let Err(e) = served {
            // Header deadline, malformed request (hyper answered 400/431), reset.
            tracing::debug!(%peer, error = %e, "connection ended with an error");
            return;
        }
        let mut stream = conn.into_parts().io.into_inner();
        if unread.load(Ordering::Relaxed) {
            let discarded = close_lingering(stream).await;
            tracing::debug!(%peer, discarded, "closed a connection whose request body was left unread");
        } else {
            let _ = stream.shutdown().await;
        }
    }
}

/// Starts [`serve`] on `listener` in a task; [`Running::stop`] ends it.
pub fn spawn(listener: TcpListener, front: Arc<Front>) -> std::io::Result<Running> {
    spawn_with(listener, front, ServeOptions::default())
}

/// [`spawn`] with explicit tuning (HTTPS among it).
pub fn spawn_with(
    listener: TcpListener,
    front: Arc<Front>,
    opts: ServeOptions,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    Ok(Running::spawn("HTTP", addr, move |shutdown| {
        serve_with(listener, front, shutdown, opts)
    }))
}
