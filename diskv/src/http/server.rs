//! The accept loop: HTTP/1.1 connections served by hyper with the API's router,
//! a deadline for request headers (slow clients), a cap on open connections, and
//! graceful shutdown (stop accepting, let requests in flight finish within a grace
//! period, then drop what is left).

use super::front::Front;
use super::routes::router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Tuning of the accept loop.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How long requests in flight may take to finish after shutdown starts (5 s).
    pub grace: Duration,
    /// How long a client may take to send a request's headers (10 s).
    pub header_timeout: Duration,
    /// Most connections open at once; more wait in the listen queue (4096).
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            grace: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
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
    let service = TowerToHyperService::new(router(front));
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
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
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%addr, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let mut stop = stop_rx.clone();
        let header_timeout = opts.header_timeout;
        conns.spawn(async move {
            let _slot = slot;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let stopping = async move {
                let _ = stop.wait_for(|&s| s).await;
            };
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stopping => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
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

/// A front door serving in the background (see [`spawn`]).
pub struct Running {
    addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts [`serve`] on `listener` in a task; [`Running::stop`] ends it.
pub fn spawn(listener: TcpListener, front: Arc<Front>) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let (stop, mut stop_rx) = watch::channel(false);
    let shutdown = async move {
        let _ = stop_rx.wait_for(|&s| s).await;
    };
    let task = tokio::spawn(serve(listener, front, shutdown));
    Ok(Running { addr, stop, task })
}

impl Running {
    /// The address the API listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for requests in flight (at most the grace period).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(addr = %self.addr, error = %e, "HTTP server failed"),
            Err(e) => tracing::warn!(addr = %self.addr, error = %e, "HTTP server task failed"),
        }
        tracing::info!(addr = %self.addr, "HTTP server stopped");
    }
}
