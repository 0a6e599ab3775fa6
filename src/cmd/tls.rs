//! The TLS flags every command that talks to diskv processes shares, and how
//! they become the process's [`Security`] (docs/SECURITY.md).
//!
//! `--tls-dir DIR` (or `DISKV_TLS_DIR`) names a directory made by `diskv certs
//! issue`; `--ca/--cert/--key` name the three files one by one. `--insecure`
//! asks for plaintext explicitly. With neither, the contract daemons and clients
//! (`server`, `shardmaster`, `client`, `admin`) keep their documented plaintext
//! behaviour and say so with a warning at start.

use anyhow::Context;
use paxos::transport::role::Role;
use paxos::transport::tls::{self, Security, Tls, TlsFiles};
use std::path::PathBuf;

/// TLS between diskv processes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Mutual TLS with the identity in DIR (ca.crt, node.crt, node.key; made by
    /// `diskv certs issue`).
    #[arg(long, env = "DISKV_TLS_DIR", value_name = "DIR", conflicts_with_all = ["ca", "insecure"])]
    pub tls_dir: Option<PathBuf>,
    /// The cluster's CA certificate (PEM), with --cert and --key.
    #[arg(long, value_name = "FILE", requires_all = ["cert", "key"], conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// This process's certificate (PEM), with --ca and --key.
    #[arg(long, value_name = "FILE", requires_all = ["ca", "key"])]
    pub cert: Option<PathBuf>,
    /// This process's private key (PEM), with --ca and --cert.
    #[arg(long, value_name = "FILE", requires_all = ["ca", "cert"])]
    pub key: Option<PathBuf>,
    /// Plaintext between processes: anyone who reaches a port is believed
    /// (tests and benchmarks on loopback).
    #[arg(long)]
    pub insecure: bool,
}

impl TlsArgs {
    /// The identity files asked for, if any.
    pub fn files(&self) -> Option<TlsFiles> {
        if let Some(dir) = &self.tls_dir {
            return Some(TlsFiles::in_dir(dir));
        }
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    /// Loads the identity asked for and makes it this process's security; with
    /// none, plaintext and a warning naming what is exposed (`what`: "this
    /// replica's port", ...).
    pub fn install(&self, what: &str) -> anyhow::Result<Security> {
        self.install_as(Some(what))
    }

    /// [`TlsArgs::install`] for a client, which exposes no port: plaintext
    /// without a warning (the servers it talks to warn).
    pub fn install_client(&self) -> anyhow::Result<Security> {
        self.install_as(None)
    }

    fn install_as(&self, what: Option<&str>) -> anyhow::Result<Security> {
        let security = match self.files() {
            Some(files) => {
                let tls =
                    Tls::load(&files).context("cannot load the TLS identity (--tls-dir/--ca)")?;
                if what.is_some() && tls.role() != Role::Node {
                    // It could serve no one: clients refuse a server without
                    // serverAuth, and peers refuse it their peer service.
                    anyhow::bail!(
                        "{} is a {} certificate: a process that serves a port needs a node \
                         certificate (diskv certs issue --role node --host ...)",
                        files.cert.display(),
                        tls.role()
                    );
                }
                Security::Tls(tls)
            }
            None => {
                let Some(what) = what else {
                    install(Security::Plain);
                    return Ok(Security::Plain);
                };
                if self.insecure {
                    tracing::warn!(
                        "--insecure: {what} and every connection to other diskv processes \
                         are plaintext and unauthenticated"
                    );
                } else {
                    tracing::warn!(
                        "no TLS identity (--tls-dir, --ca/--cert/--key or DISKV_TLS_DIR): \
                         {what} and every connection to other diskv processes are plaintext \
                         and unauthenticated; see docs/SECURITY.md"
                    );
                }
                Security::Plain
            }
        };
        install(security.clone());
        Ok(security)
    }
}

/// Makes `security` this process's (once; later calls keep the first).
pub fn install(security: Security) {
    if !tls::install(security) {
        tracing::debug!("the process's TLS security was set already");
    }
}

pub use diskv_launch::identity::local_identity;

impl TlsArgs {
    /// True if the user gave an identity of their own.
    pub fn given(&self) -> bool {
        self.files().is_some()
    }

    /// The security of a launcher that makes its own certificates (`diskv
    /// cluster`, `diskv serve`): the identity given, else plaintext with
    /// `--insecure`, else `name`'s identity under `base` (made on first use).
    pub fn install_local(&self, base: &std::path::Path, name: &str) -> anyhow::Result<Security> {
        if self.given() || self.insecure {
            return self.install("its ports");
        }
        let security = diskv_launch::identity::local_security(base, name)?;
        install(security.clone());
        Ok(security)
    }

    /// The flags that give a child process `name` the same kind of security:
    /// the user's identity, `--insecure`, or `name`'s own node identity under
    /// `base`, valid for loopback and `hosts` (the host it is advertised by).
    pub fn child_flags(
        &self,
        base: &std::path::Path,
        name: &str,
        hosts: &[String],
    ) -> anyhow::Result<Vec<String>> {
        self.flags_as(base, name, Role::Node, hosts)
    }

    /// The flags for the user's own clients (`diskv client`, `diskv admin`):
    /// as [`TlsArgs::child_flags`], but an identity made under `base` is a
    /// client's, which cannot open replica-to-replica connections.
    pub fn client_flags(&self, base: &std::path::Path, name: &str) -> anyhow::Result<Vec<String>> {
        self.flags_as(base, name, Role::Client, &[])
    }

    fn flags_as(
        &self,
        base: &std::path::Path,
        name: &str,
        role: Role,
        hosts: &[String],
    ) -> anyhow::Result<Vec<String>> {
        if self.insecure {
            return Ok(vec!["--insecure".into()]);
        }
        let dir = match (&self.tls_dir, self.files()) {
            (Some(dir), _) => dir.clone(),
            (None, Some(files)) => {
                return Ok(vec![
                    "--ca".into(),
                    files.ca.display().to_string(),
                    "--cert".into(),
                    files.cert.display().to_string(),
                    "--key".into(),
                    files.key.display().to_string(),
                ])
            }
            (None, None) => diskv_launch::identity::local_identity_naming(base, name, role, hosts)?,
        };
        Ok(vec!["--tls-dir".into(), dir.display().to_string()])
    }
}
