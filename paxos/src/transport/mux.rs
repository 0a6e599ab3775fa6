//! One port per process: every connection starts with a one-byte tag saying which
//! service it is for, and [`demux`] routes accepted connections accordingly.
//!
//! The daemons listen on one address (`peers[me]`) for both replica-to-replica
//! traffic ([`PEER`]) and client requests ([`CLIENT`]). With TLS ([`super::tls`])
//! the handshake comes first and the tag travels inside the encrypted stream;
//! then the tag is checked against the role of the other end's certificate
//! ([`super::role`]): replica-to-replica and probe connections are for node
//! certificates only ([`may_open`]).

use super::codec::MAX_FRAME_LEN;
use super::guard::{Admission, FrameBudget, Guarded, Limits};
use super::role::{Holder, Role};
use super::tls::{self, Security, Stream};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Tag of replica-to-replica connections (the peer service).
pub const PEER: u8 = b'P';
/// Tag of client connections (the process's own service).
pub const CLIENT: u8 = b'C';
/// Tag of disk-loss probes (see [`crate::probe`]): answered before the replica runs.
pub const PROBE: u8 = b'Q';

/// How long an accepted connection may take to finish its TLS handshake and send
/// its tag.
const TAG_TIMEOUT: Duration = Duration::from_secs(5);

/// A peer connection silent this long is closed (a follower's connection to
/// another follower may carry nothing for a while; the sender reconnects on use).
pub const PEER_IDLE: Duration = Duration::from_secs(120);

/// A client connection silent this long is closed (clients reconnect on use).
pub const CLIENT_IDLE: Duration = Duration::from_secs(300);

/// The largest frame a client connection may send: a request carries at most one
/// 16 MiB value (`diskv::op::MAX_VALUE_BYTES`) and its key.
pub const CLIENT_MAX_FRAME: usize = 64 << 20;

/// An accepted connection, held to its listener's limits.
pub type Conn = Guarded<Stream>;

/// Connects to `addr` (`host:port`) for the service `tag`, with `TCP_NODELAY`
/// set, with this process's security ([`tls::process`]).
pub async fn connect(addr: &str, tag: u8) -> io::Result<Stream> {
    connect_with(&tls::process(), addr, tag).await
}

/// [`connect`] with the given security.
pub async fn connect_with(security: &Security, addr: &str, tag: u8) -> io::Result<Stream> {
    let mut stream = tls::connect(security, addr).await?;
    stream.write_all(&[tag]).await?;
    stream.flush().await?;
    Ok(stream)
}

/// Accepted connections, sorted by service.
pub struct Demux {
    /// Connections tagged [`PEER`].
    pub peers: mpsc::Receiver<Conn>,
    /// Connections tagged [`CLIENT`].
    pub clients: mpsc::Receiver<Conn>,
    /// Connections tagged [`PROBE`].
    pub probes: mpsc::Receiver<Conn>,
    /// The address the listener is bound to.
    pub local_addr: SocketAddr,
}

/// Accepts connections on `listener` and routes them by their tag. A connection
/// with another tag, or none within a few seconds, is closed. The accept task ends
/// when both receivers are dropped. Connections are held to the default
/// [`Limits`] and the process's [`FrameBudget`].
pub fn demux(listener: TcpListener) -> io::Result<Demux> {
    demux_with(
        listener,
        Admission::new(Limits::default(), FrameBudget::process()),
    )
}

/// [`demux`] with the connection limits of `admission`.
pub fn demux_with(listener: TcpListener, admission: Admission) -> io::Result<Demux> {
    demux_secured(listener, admission, tls::process())
}

/// [`demux_with`] with the given security: with TLS, a connection is routed only
/// once its handshake succeeded (within the tag's time limit).
pub fn demux_secured(
    listener: TcpListener,
    admission: Admission,
    security: Security,
) -> io::Result<Demux> {
    let local_addr = listener.local_addr()?;
    let (peer_tx, peers) = mpsc::channel(64);
    let (client_tx, clients) = mpsc::channel(256);
    let (probe_tx, probes) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut last_refusal_logged: Option<Instant> = None;
        loop {
            let both_closed = async {
                peer_tx.closed().await;
                client_tx.closed().await;
            };
            let (stream, remote) = tokio::select! {
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
            let _ = stream.set_nodelay(true);
            let admitted = match admission.admit(stream, remote) {
                Ok(conn) => conn,
                Err(refused) => {
                    // One line a second at most: a flood must not flood the log.
                    if last_refusal_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        last_refusal_logged = Some(Instant::now());
                        tracing::warn!(addr = %remote, reason = %refused.0, "connection refused");
                    }
                    continue;
                }
            };
            let (peer_tx, client_tx) = (peer_tx.clone(), client_tx.clone());
            let probe_tx = probe_tx.clone();
            let security = security.clone();
            tokio::spawn(async move {
                let handshake_and_tag = async {
                    let mut stream = admitted
                        .upgrade(|tcp| tls::accept(&security, tcp, remote))
                        .await?;
                    let mut tag = [0u8; 1];
                    stream.read_exact(&mut tag).await?;
                    io::Result::Ok((stream, tag[0]))
                };
                let (mut stream, tag) = match tokio::time::timeout(TAG_TIMEOUT, handshake_and_tag)
                    .await
                {
                    Ok(Ok(routed)) => routed,
                    Ok(Err(error)) => {
                        tracing::debug!(%remote, %error, "connection closed before its service tag");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote, "no TLS handshake and service tag in time: closed");
                        return;
                    }
                };
                if let Err(refusal) = authorize(stream.get_ref(), tag) {
                    refusal.log(remote, tag);
                    return;
                }
                match tag {
                    PEER => {
                        stream.set_idle(PEER_IDLE);
                        stream.expect_frames(MAX_FRAME_LEN);
                        let _ = peer_tx.send(stream).await;
                    }
                    CLIENT => {
                        stream.set_idle(CLIENT_IDLE);
                        stream.expect_frames(CLIENT_MAX_FRAME);
                        let _ = client_tx.send(stream).await;
                    }
                    PROBE => {
                        // Never wait for room: a probe nobody answers is retried.
                        let _ = probe_tx.try_send(stream);
                    }
                    tag => {
                        tracing::debug!(%remote, tag, "connection with an unknown service tag closed")
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

/// Whether a certificate of `role` may open the service `tag`: replica-to-replica
/// ([`PEER`]) and probe ([`PROBE`]) connections are for nodes only; client
/// connections ([`CLIENT`]) are for every certificate of the cluster's CA.
pub fn may_open(role: Role, tag: u8) -> bool {
    role == Role::Node || !matches!(tag, PEER | PROBE)
}

/// The service of `tag`, in words, for the log.
fn service(tag: u8) -> &'static str {
    match tag {
        PEER => "replica-to-replica",
        PROBE => "disk-loss probe",
        CLIENT => "client",
        _ => "unknown",
    }
}

/// Why a connection that finished its handshake was refused its service.
#[derive(Debug)]
struct Refusal {
    /// The certificate's holder, when it could be read.
    holder: Option<Holder>,
    /// What to tell the operator.
    reason: String,
}

/// When a role refusal was last logged (at most one line a second).
static ROLE_REFUSAL_LOGGED: AtomicU64 = AtomicU64::new(0);

impl Refusal {
    /// One warning (at most one a second) naming the remote address, the
    /// service asked for, the certificate's role and name, and the reason.
    fn log(&self, remote: SocketAddr, tag: u8) {
        if !tls::should_log(&ROLE_REFUSAL_LOGGED) {
            return;
        }
        let role = self.holder.as_ref().map_or("unknown", |h| h.role.as_str());
        let name = self
            .holder
            .as_ref()
            .and_then(|h| h.name.as_deref())
            .unwrap_or("");
        tracing::warn!(
            addr = %remote,
            service = %service(tag),
            role = %role,
            // Escaped: a name is the CA's choice, but still no line breaks.
            name = %name.escape_debug(),
            reason = %self.reason,
            "connection refused"
        );
    }
}

/// Checks the certificate the other end of `stream` presented against the
/// service `tag` asks for ([`may_open`]). Plaintext passes: nobody is
/// authenticated there (`--insecure`). A certificate whose role cannot be read
/// is refused the node-only services.
fn authorize(stream: &Stream, tag: u8) -> Result<(), Refusal> {
    if may_open(Role::Client, tag) {
        return Ok(());
    }
    match stream.peer_holder() {
        Ok(None) => Ok(()),
        Ok(Some(holder)) if may_open(holder.role, tag) => Ok(()),
        Ok(Some(holder)) => Err(Refusal {
            reason: format!(
                "a {} certificate may not open {} connections: they are for node \
                 certificates only (replicas, shardmasters and serve need one: \
                 diskv certs issue --role node)",
                holder.role,
                service(tag)
            ),
            holder: Some(holder),
        }),
        Err(e) => Err(Refusal {
            holder: None,
            reason: format!(
                "{e}; {} connections are for node certificates only",
                service(tag)
            ),
        }),
    }
}
