//! etcd as a benchmark peer: [`EtcdCluster`] starts N `etcd` members on loopback
//! (Debian's `etcd-server`, v3.4), [`EtcdStore`] drives them through etcd's native
//! gRPC API (the `etcd-client` crate). With [`EtcdSecurity::Tls`] the members
//! speak TLS to each other and to clients, and demand client certificates on both
//! ports (`--client-cert-auth`, `--peer-client-cert-auth`): etcd's mutual TLS, set
//! up as its security guide describes, against which diskv's own mutual TLS is
//! measured.
//!
//! Operations map to etcd's KV service as a YCSB binding would: read is a Range on
//! one key and update/insert a Put. Reads are linearizable (etcd's default,
//! `serializable = false`: the member confirms with the leader through a ReadIndex
//! round before answering), so they pay a quorum round like diskv's reads. A scan of
//! `[start, end]` is one Range `[start, end + "\0")` with the limit, which etcd
//! returns sorted by key. Every benchmark client opens its own gRPC client, which
//! spreads requests over all members (followers forward writes to the leader).

use super::daemon::{wait_ready, Daemon};
use super::{free_ports, temp_dir, PeerError, READY_TIMEOUT};
use crate::store::{OpFuture, Store, StoreClient, StoreError};
use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, KvClient, TlsOptions,
};
use paxos::transport::certs::{CertAuthority, NODE_VALID_DAYS};
use paxos::transport::role::Role;
use paxos::transport::tls::TlsFiles;
use std::path::Path;

/// The etcd server program (Debian package `etcd-server`).
const ETCD: &str = "etcd";

/// How etcd's members talk to each other and to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdSecurity {
    /// Plain HTTP/2 on both ports.
    Plain,
    /// Mutual TLS on both ports, certificates from a CA made for the run.
    Tls,
}

/// The certificates of a TLS run: one identity every member presents (valid for
/// 127.0.0.1), one the benchmark's clients present, both from one CA.
struct EtcdCerts {
    member: TlsFiles,
    client: TlsFiles,
}

impl EtcdCerts {
    /// Makes a CA and the two identities under `dir`.
    fn make(dir: &Path) -> Result<EtcdCerts, PeerError> {
        let failed = |e: paxos::transport::certs::CertError| PeerError::Io {
            what: "make etcd's certificates".to_string(),
            source: std::io::Error::other(e.to_string()),
        };
        let ca = CertAuthority::create(&dir.join("ca"), "diskv bench etcd CA").map_err(failed)?;
        let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
        let (member, client) = (dir.join("member"), dir.join("client"));
        // Both with serverAuth and clientAuth, as before roles existed.
        ca.issue(&member, "etcd member", Role::Node, &hosts, NODE_VALID_DAYS)
            .map_err(failed)?;
        ca.issue(
            &client,
            "diskv bench client",
            Role::Node,
            &hosts,
            NODE_VALID_DAYS,
        )
        .map_err(failed)?;
        Ok(EtcdCerts {
            member: TlsFiles::in_dir(&member),
            client: TlsFiles::in_dir(&client),
        })
    }

    /// The flags that turn on mutual TLS on a member's client and peer ports.
    fn member_flags(&self) -> Vec<String> {
        let m = &self.member;
        let (ca, cert, key) = (m.ca.display(), m.cert.display(), m.key.display());
        vec![
            format!("--cert-file={cert}"),
            format!("--key-file={key}"),
            format!("--trusted-ca-file={ca}"),
            "--client-cert-auth".to_string(),
            format!("--peer-cert-file={cert}"),
            format!("--peer-key-file={key}"),
            format!("--peer-trusted-ca-file={ca}"),
            "--peer-client-cert-auth".to_string(),
        ]
    }

    /// The gRPC client's options: trust the CA, present the client identity.
    fn connect_options(&self) -> Result<ConnectOptions, PeerError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| PeerError::Io {
                what: format!("read {}", path.display()),
                source: e,
            })
        };
        let c = &self.client;
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&c.ca)?))
            .identity(Identity::from_pem(read(&c.cert)?, read(&c.key)?));
        Ok(ConnectOptions::new().with_tls(tls))
    }
}

/// N etcd members on 127.0.0.1, killed (by pid) and their data removed when dropped.
pub struct EtcdCluster {
    endpoints: Vec<String>,
    /// The clients' TLS options (`None`: plaintext).
    options: Option<ConnectOptions>,
    // Field order matters: the members are killed before their directory goes.
    _members: Vec<Daemon>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `members` etcd members with fresh data directories and waits until
    /// the cluster has a leader and serves a linearizable read.
    pub async fn launch(members: usize, security: EtcdSecurity) -> Result<EtcdCluster, PeerError> {
        let dir = temp_dir("diskv-bench-etcd-")?;
        let certs = match security {
            EtcdSecurity::Plain => None,
            EtcdSecurity::Tls => Some(EtcdCerts::make(&dir.path().join("tls"))?),
        };
        let options = certs.as_ref().map(EtcdCerts::connect_options).transpose()?;
        let scheme = if certs.is_some() { "https" } else { "http" };
        let ports = free_ports(2 * members)?;
        let (client_ports, peer_ports) = ports.split_at(members);
        let url = |port: u16| format!("{scheme}://127.0.0.1:{port}");
        let initial_cluster = peer_ports
            .iter()
            .enumerate()
            .map(|(i, &p)| format!("etcd-{i}={}", url(p)))
            .collect::<Vec<_>>()
            .join(",");
        let mut daemons = Vec::with_capacity(members);
        for i in 0..members {
            let name = format!("etcd-{i}");
            let data = dir.path().join(&name);
            let mut args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={}", url(client_ports[i])),
                format!("--advertise-client-urls={}", url(client_ports[i])),
                format!("--listen-peer-urls={}", url(peer_ports[i])),
                format!("--initial-advertise-peer-urls={}", url(peer_ports[i])),
                format!("--initial-cluster={initial_cluster}"),
                "--initial-cluster-token=diskv-bench".to_string(),
                "--initial-cluster-state=new".to_string(),
                "--logger=zap".to_string(),
                "--log-outputs=stderr".to_string(),
            ];
            args.extend(certs.iter().flat_map(EtcdCerts::member_flags));
            daemons.push(Daemon::spawn(&name, ETCD, &args, dir.path())?);
        }
        let endpoints: Vec<String> = client_ports.iter().map(|&p| url(p)).collect();
        wait_ready("etcd cluster", &mut daemons, READY_TIMEOUT, || {
            serves_reads(&endpoints, options.clone())
        })
        .await?;
        tracing::info!(members, endpoints = ?endpoints, ?security, "etcd cluster ready");
        Ok(EtcdCluster {
            endpoints,
            options,
            _members: daemons,
            _dir: dir,
        })
    }

    /// A [`Store`] over this cluster (all members as endpoints).
    pub fn store(&self) -> EtcdStore {
        EtcdStore {
            endpoints: self.endpoints.clone(),
            options: self.options.clone(),
        }
    }
}

/// True when every member answers Status with a leader and a linearizable read succeeds.
async fn serves_reads(endpoints: &[String], options: Option<ConnectOptions>) -> bool {
    for endpoint in endpoints {
        let Ok(mut client) = Client::connect([endpoint], options.clone()).await else {
            return false;
        };
        match client.status().await {
            Ok(status) if status.leader() != 0 => {}
            _ => return false,
        }
        if client.get("diskv-bench-ready", None).await.is_err() {
            return false;
        }
    }
    true
}

/// A running etcd cluster as a benchmark store.
pub struct EtcdStore {
    endpoints: Vec<String>,
    options: Option<ConnectOptions>,
}

impl EtcdStore {
    /// The members' client URLs.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }
}

impl Store for EtcdStore {
    fn name(&self) -> String {
        let tls = if self.options.is_some() { " TLS" } else { "" };
        format!("etcd {}{tls}", self.endpoints.len())
    }

    fn connect(&self) -> OpFuture<'_, Box<dyn StoreClient>> {
        Box::pin(async move {
            let client = Client::connect(&self.endpoints, self.options.clone())
                .await
                .map_err(store_error)?;
            Ok(Box::new(EtcdClient {
                kv: client.kv_client(),
            }) as Box<dyn StoreClient>)
        })
    }
}

/// One benchmark client's gRPC connection to the cluster.
struct EtcdClient {
    kv: KvClient,
}

impl StoreClient for EtcdClient {
    fn read<'a>(&'a mut self, key: &'a str) -> OpFuture<'a, Option<String>> {
        Box::pin(async move {
            // No options: a linearizable (not serializable) Range.
            let resp = self.kv.get(key, None).await.map_err(store_error)?;
            match resp.kvs().first() {
                Some(kv) => Ok(Some(text(kv.value())?)),
                None => Ok(None),
            }
        })
    }

    fn update<'a>(&'a mut self, key: &'a str, value: &'a str) -> OpFuture<'a, ()> {
        Box::pin(async move {
            self.kv.put(key, value, None).await.map_err(store_error)?;
            Ok(())
        })
    }

    fn scan<'a>(
        &'a mut self,
        start: &'a str,
        end: &'a str,
        limit: usize,
    ) -> OpFuture<'a, Vec<(String, String)>> {
        Box::pin(async move {
            // etcd ranges are half-open: [start, end + "\0") holds `end` itself.
            let mut range_end = end.as_bytes().to_vec();
            range_end.push(0);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let options = GetOptions::new().with_range(range_end).with_limit(limit);
            let resp = self
                .kv
                .get(start, Some(options))
                .await
                .map_err(store_error)?;
            resp.kvs()
                .iter()
                .map(|kv| Ok((text(kv.key())?, text(kv.value())?)))
                .collect()
        })
    }
}

/// Bytes from etcd as a string (the benchmark writes only UTF-8).
fn text(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Store("etcd returned a non-UTF-8 key or value".to_string()))
}

/// gRPC status codes (the gRPC specification's numbers).
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_UNAVAILABLE: i32 = 14;

/// Transport failures and unavailable members are connection errors; the rest are
/// the store's own answers.
fn store_error(e: etcd_client::Error) -> StoreError {
    use etcd_client::Error;
    match e {
        Error::TransportError(t) => StoreError::Connection(t.to_string()),
        Error::IoError(io) => StoreError::Connection(io.to_string()),
        Error::GRpcStatus(s) if i32::from(s.code()) == GRPC_DEADLINE_EXCEEDED => {
            StoreError::Timeout
        }
        Error::GRpcStatus(s) if i32::from(s.code()) == GRPC_UNAVAILABLE => {
            StoreError::Connection(s.message().to_string())
        }
        other => StoreError::Store(other.to_string()),
    }
}
