//! One port per process: every connection starts with a one-byte tag saying which
//! service it is for, and [`demux`] routes accepted connections accordingly.
//!
//! The daemons listen on one address (`peers[me]`) for both replica-to-replica
//! traffic ([`PEER`]) and client requests ([`CLIENT`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;

/// Tag of replica-to-replica connections (the peer service).
pub const PEER: u8 = b'P';
/// Tag of client connections (the process's own service).
pub const CLIENT: u8 = b'C';
/// Tag of disk-loss probes (see [`crate::probe`]): answered before the replica runs.
pub const PROBE: u8 = b'Q';

/// How long an accepted connection may take to send its tag.
const TAG_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `addr` for the service `tag`, with `TCP_NODELAY` set.
pub async fn connect(addr: impl ToSocketAddrs, tag: u8) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(&[tag]).await?;
    Ok(stream)
}

/// Accepted connections, sorted by service.
pub struct Demux {
    /// Connections tagged [`PEER`].
    pub peers: mpsc::Receiver<TcpStream>,
    /// Connections tagged [`CLIENT`].
    pub clients: mpsc::Receiver<TcpStream>,
    /// Connections tagged [`PROBE`].
    pub probes: mpsc::Receiver<TcpStream>,
    /// The address the listener is bound to.
    pub local_addr: SocketAddr,
}

/// Accepts connections on `listener` and routes them by their tag. A connection
/// with another tag, or none within a few seconds, is closed. The accept task ends
/// when both receivers are dropped.
pub fn demux(listener: TcpListener) -> io::Result<Demux> {
    let local_addr = listener.local_addr()?;
    let (peer_tx, peers) = mpsc::channel(64);
    let (client_tx, clients) = mpsc::channel(256);
    let (probe_tx, probes) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let both_closed = async {
                peer_tx.closed().await;
                client_tx.closed().await;
            };
            let (mut stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                // Nobody serves this listener any more: close it.
                () = both_closed => return,
            };
            let (peer_tx, client_tx) = (peer_tx.clone(), client_tx.clone());
            let probe_tx = probe_tx.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut tag = [0u8; 1];
                match tokio::time::timeout(TAG_TIMEOUT, stream.read_exact(&mut tag)).await {
                    Ok(Ok(_)) if tag[0] == PEER => {
                        let _ = peer_tx.send(stream).await;
                    }
                    Ok(Ok(_)) if tag[0] == CLIENT => {
                        let _ = client_tx.send(stream).await;
                    }
                    Ok(Ok(_)) if tag[0] == PROBE => {
                        // Never wait for room: a probe nobody answers is retried.
                        let _ = probe_tx.try_send(stream);
                    }
                    _ => {
                        tracing::debug!(%remote, tag = tag[0], "connection without a valid service tag closed")
                    }
                }
            });
        }
    });
    Ok(Demux {
        peers,
        clients,
        probes,
        local_addr,
    })
}
