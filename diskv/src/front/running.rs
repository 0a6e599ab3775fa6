//! What the HTTP and RESP front doors share: [`Running`], a front door serving
//! in a background task until [`Running::stop`] ([`crate::front::http::spawn`],
//! [`crate::front::resp::spawn`]); [`accepted`], one turn of their accept loops.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A connection from `listener.accept()`, with `TCP_NODELAY` set. After an
/// accept error (out of file descriptors and the like) `None`, once a 50 ms pause
/// has passed, so the loop backs off instead of spinning; `what` names the front
/// door in the warning.
pub async fn accepted(
    result: std::io::Result<(TcpStream, SocketAddr)>,
    addr: SocketAddr,
    what: &str,
) -> Option<(TcpStream, SocketAddr)> {
    match result {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "{what}: accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Resolves when [`Running::stop`] is called: the `shutdown` future a front
/// door's `serve` takes.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A front door serving in the background.
pub struct Running {
    what: &'static str,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Runs `serve(shutdown)` in a task; `what` (`"HTTP"`, `"RESP"`) names it in
    /// the logs, `addr` is where it listens.
    pub fn spawn<F>(
        what: &'static str,
        addr: SocketAddr,
        serve: impl FnOnce(Shutdown) -> F,
    ) -> Running
    where
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, mut stop_rx) = watch::channel(false);
        let shutdown: Shutdown = Box::pin(async move {
            let _ = stop_rx.wait_for(|&s| s).await;
        });
        let task = tokio::spawn(serve(shutdown));
        Running {
            what,
            addr,
            stop,
            task,
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for requests in flight (at most the front
    /// door's grace period).
    pub async fn stop(self) {
        let what = self.what;
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(addr = %self.addr, error = %e, "{what} server failed"),
            Err(e) => tracing::warn!(addr = %self.addr, error = %e, "{what} server task failed"),
        }
        tracing::info!(addr = %self.addr, "{what} server stopped");
    }
}
