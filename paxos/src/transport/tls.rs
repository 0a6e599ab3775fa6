//! Mutual TLS on every connection between diskv processes (rustls, ring provider).
//!
//! A process has one [`Security`]: plaintext, or a TLS identity — the cluster's CA,
//! this process's certificate and its key ([`TlsFiles`]). With TLS, both ends of a
//! connection present a certificate signed by the cluster's CA and check the
//! other's: a peer without one, with one of another CA, or with an expired one is
//! refused at the handshake, and the refusal is one log line naming the peer's
//! address and the reason. The client also checks that the server's certificate
//! names the host it dialled (an IP address or a DNS name). A certificate also
//! has a role ([`super::role`]): a client's certificate cannot serve, and the
//! mux refuses it the replica-to-replica and probe services
//! ([`Stream::peer_holder`], [`super::mux::may_open`]).
//!
//! The mux's service tag and tarpc's frames travel inside the TLS stream: a
//! connection is a [`Stream`], plain or TLS, and everything above reads and writes
//! it the same way. The daemons install their security once at start
//! ([`install`]); [`super::mux::connect`] and [`super::mux::demux`] use it.

use super::role::{Holder, Role, RoleError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The file names of a TLS directory (`--tls-dir`), as `diskv certs` writes them.
pub const CA_FILE: &str = "ca.crt";
/// This process's certificate chain in a TLS directory.
pub const CERT_FILE: &str = "node.crt";
/// This process's private key in a TLS directory.
pub const KEY_FILE: &str = "node.key";

/// Where a process's TLS identity lives: the cluster's CA certificate, this
/// process's certificate chain and its private key, all PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA every peer's certificate must be signed by.
    pub ca: PathBuf,
    /// This process's certificate (then any intermediates).
    pub cert: PathBuf,
    /// This process's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files of a TLS directory: `ca.crt`, `node.crt` and `node.key`.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join(CA_FILE),
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
        }
    }
}

/// Why a TLS identity could not be loaded: each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source} (make certificates with `diskv certs init` and `diskv certs issue`)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error reading it.
        source: io::Error,
    },
    /// A file holds no PEM certificate.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A file holds no PEM private key.
    #[error("{path} holds no PEM private key")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The CA certificate was refused as a trust anchor.
    #[error("{path} is not a usable CA certificate: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// rustls's reason.
        reason: String,
    },
    /// The certificate's role cannot be read ([`Holder::of_certificate`]).
    #[error("{path}: {source}")]
    BadRole {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        source: RoleError,
    },
    /// The certificate and key do not make a usable identity.
    #[error("the certificate {cert} and key {key} cannot be used: {reason}")]
    BadIdentity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// A loaded TLS identity: the configurations of both ends of a connection.
#[derive(Clone)]
pub struct Tls {
    server: Arc<ServerConfig>,
    public: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    role: Role,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls {{ role: {}, .. }}", self.role)
    }
}

impl Tls {
    /// Loads the identity in `files`: every peer must present a certificate of
    /// that CA, and this process presents its own.
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let ca_pem = read(&files.ca)?;
        let mut roots = RootCertStore::empty();
        let mut cas = 0;
        for cert in CertificateDer::pem_slice_iter(&ca_pem).flatten() {
            roots.add(cert).map_err(|e| TlsError::BadCa {
                path: files.ca.clone(),
                reason: e.to_string(),
            })?;
            cas += 1;
        }
        if cas == 0 {
            return Err(TlsError::NoCertificate {
                path: files.ca.clone(),
            });
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&read(&files.cert)?)
                .flatten()
                .collect();
        let Some(own) = chain.first() else {
            return Err(TlsError::NoCertificate {
                path: files.cert.clone(),
            });
        };
        let role = Holder::of_certificate(own)
            .map_err(|source| TlsError::BadRole {
                path: files.cert.clone(),
                source,
            })?
            .role;
        let key =
            PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|_| TlsError::NoKey {
                path: files.key.clone(),
            })?;
        let bad_identity = |reason: String| TlsError::BadIdentity {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason,
        };
        let roots = Arc::new(roots);
        // ring, not aws-lc-rs: it builds with the C compiler alone (no cmake, no
        // long build on a two-core CI). rustls deprecates it for lacking
        // post-quantum key exchange; the classical suites it offers (TLS 1.3,
        // X25519, ECDSA P-256) are what etcd and TiKV peers use today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| bad_identity(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad_identity(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| bad_identity(e.to_string()))?;
        let mut public = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad_identity(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| bad_identity(e.to_string()))?;
        public.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad_identity(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad_identity(e.to_string()))?;
        Ok(Tls {
            server: Arc::new(server),
            public: Arc::new(public),
            client: Arc::new(client),
            role,
        })
    }

    /// The role of this process's own certificate: a daemon needs
    /// [`Role::Node`] (with a client's certificate it can serve no one).
    pub fn role(&self) -> Role {
        self.role
    }

    /// The server side's configuration between diskv processes (a client
    /// certificate of the CA required).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// The server side's configuration for the front doors (HTTPS, Redis over
    /// TLS): the same certificate, no client certificate asked (clients
    /// authenticate with tokens), ALPN `http/1.1`.
    pub fn public_server_config(&self) -> Arc<ServerConfig> {
        self.public.clone()
    }

    /// The client side's configuration.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// How a process's connections to other diskv processes are made.
#[derive(Clone, Debug, Default)]
pub enum Security {
    /// Plaintext: anyone who reaches the port is believed (`--insecure`, tests).
    #[default]
    Plain,
    /// Mutual TLS with this identity.
    Tls(Tls),
}

/// The process's security; `None` until [`install`] or [`replace`] sets it.
static PROCESS: RwLock<Option<Security>> = RwLock::new(None);

/// Sets this process's security; the first call wins (a daemon calls it once
/// at start, before it opens any connection). Returns false if another was set.
pub fn install(security: Security) -> bool {
    let mut process = PROCESS.write().unwrap_or_else(|e| e.into_inner());
    if process.is_some() {
        return false;
    }
    *process = Some(security);
    true
}

/// Sets this process's security even if one was set: for a program that talks
/// to one set of processes after another with different security (`diskv bench
/// compare` measures a plaintext cluster, then one with mutual TLS). Connections
/// already open keep the security they were made with; a daemon never calls it.
///
/// ```
/// use paxos::transport::certs::{CertAuthority, NODE_VALID_DAYS};
/// use paxos::transport::role::Role;
/// use paxos::transport::tls::{self, Security, Tls, TlsFiles};
/// let dir = tempfile::tempdir().unwrap();
/// let ca = CertAuthority::create(&dir.path().join("ca"), "example CA").unwrap();
/// let me = dir.path().join("me");
/// let hosts = ["127.0.0.1".to_string()];
/// ca.issue(&me, "me", Role::Node, &hosts, NODE_VALID_DAYS).unwrap();
/// let identity = Tls::load(&TlsFiles::in_dir(&me)).unwrap();
///
/// assert!(tls::install(Security::Plain));
/// assert!(!tls::install(Security::Tls(identity.clone())), "the first install wins");
/// assert!(matches!(tls::process(), Security::Plain));
/// tls::replace(Security::Tls(identity));
/// assert!(matches!(tls::process(), Security::Tls(_)));
/// ```
pub fn replace(security: Security) {
    *PROCESS.write().unwrap_or_else(|e| e.into_inner()) = Some(security);
}

/// This process's security: what [`install`] or [`replace`] set, else plaintext.
pub fn process() -> Security {
    PROCESS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// A connection between diskv processes: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum Stream {
    /// Plaintext.
    Plain(TcpStream),
    /// TLS, either end.
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    /// The holder of the certificate the other end presented in the handshake
    /// (its role and name): `None` over plaintext, where nobody is
    /// authenticated.
    pub fn peer_holder(&self) -> Result<Option<Holder>, RoleError> {
        let Stream::Tls(tls) = self else {
            return Ok(None);
        };
        let (_, state) = tls.get_ref();
        let cert = state
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or(RoleError::NoCertificate)?;
        Holder::of_certificate(cert).map(Some)
    }
}

/// Opens a connection to `addr` (`host:port`): TCP with `TCP_NODELAY`, then the
/// TLS handshake if `security` asks for it, checking that the server's
/// certificate names `host`.
pub async fn connect(security: &Security, addr: &str) -> io::Result<Stream> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let Security::Tls(tls) = security else {
        return Ok(Stream::Plain(tcp));
    };
    let name = server_name(addr)?;
    let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
    match connector.connect(name, tcp).await {
        Ok(s) => Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(s)))),
        Err(e) => {
            let reason = reason(&e);
            if should_log(&CLIENT_LOGGED) {
                tracing::warn!(addr, %reason, "TLS handshake with the server failed");
            }
            Err(io::Error::new(
                e.kind(),
                format!("TLS handshake with {addr} failed: {reason}"),
            ))
        }
    }
}

/// The server side of an accepted connection from `remote`: the TLS handshake
/// if `security` asks for it. A refused handshake is logged (at most one line a
/// second per process) with the peer's address and the reason.
pub async fn accept(security: &Security, tcp: TcpStream, remote: SocketAddr) -> io::Result<Stream> {
    let Security::Tls(tls) = security else {
        return Ok(Stream::Plain(tcp));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    match acceptor.accept(tcp).await {
        Ok(s) => Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(s)))),
        Err(e) => {
            let reason = reason(&e);
            if should_log(&SERVER_LOGGED) {
                tracing::warn!(addr = %remote, %reason, "TLS handshake refused");
            }
            Err(io::Error::new(e.kind(), reason))
        }
    }
}

/// The server side of a front door's TLS (HTTPS, the Redis protocol): the
/// handshake with `config` (see [`Tls::public_server_config`]) within `limit`.
/// A failure is logged at debug level with the reason (`door` names the
/// listener) and gives `None`: a client's broken handshake is its own affair.
pub async fn accept_public(
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    remote: SocketAddr,
    limit: Duration,
    door: &str,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%remote, door, reason = %reason(&e), "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, door, ?limit, "TLS handshake not finished in time");
            None
        }
    }
}

/// The name the server's certificate must carry: the host part of `addr`.
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr}: {host:?} is neither an IP address nor a DNS name"),
        )
    })
}

/// A handshake error in words an operator can act on.
pub fn reason(e: &io::Error) -> String {
    use rustls::{CertificateError, Error};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the peer closed the connection during the handshake (it may not trust our \
                 certificate, or not speak TLS)"
                    .to_string()
            }
            _ => e.to_string(),
        };
    };
    match tls {
        Error::NoCertificatesPresented => {
            "the peer presented no certificate (every diskv process must present one \
             signed by the cluster's CA)"
                .to_string()
        }
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the peer's certificate is not signed by this cluster's CA".to_string()
        }
        // An issuer of the same name whose key did not sign it: another CA
        // that happens to share the name.
        Error::InvalidCertificate(CertificateError::BadSignature) => {
            "the peer's certificate is not signed by this cluster's CA (but by another of \
             the same name)"
                .to_string()
        }
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the peer's certificate has expired".to_string(),
        Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => "the peer's certificate is not valid yet (check the clocks)".to_string(),
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the server's certificate does not name the address dialled (issue it with \
              --host for that address)"
            .to_string(),
        // A certificate without serverAuth (a client's) offered as a server's,
        // or one without clientAuth offered as a client's.
        Error::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
        ) => "the peer's certificate is not for this use (its Extended Key Usage): a \
              process that serves a port needs a node certificate, not a client's \
              (diskv certs issue --role node)"
            .to_string(),
        Error::InvalidMessage(_) => {
            "the peer does not speak TLS (a plaintext client on a TLS port, or --insecure \
             on one side only)"
                .to_string()
        }
        Error::AlertReceived(alert) => format!(
            "the peer refused our certificate ({alert:?}): it trusts another CA, or ours \
             has expired"
        ),
        other => other.to_string(),
    }
}

static SERVER_LOGGED: AtomicU64 = AtomicU64::new(0);
static CLIENT_LOGGED: AtomicU64 = AtomicU64::new(0);

/// At most one line a second for each side: a flood must not flood the log.
pub(crate) fn should_log(last: &AtomicU64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64;
    let before = last.load(Ordering::Relaxed);
    now.saturating_sub(before) >= 1000
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
