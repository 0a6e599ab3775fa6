//! The flags of the front doors (HTTP API, Redis protocol) that concern who may
//! use them: `--tokens FILE`, `--http-tls`, `--resp-tls`, `--open-metrics`
//! (docs/SECURITY.md).
//! Without them the HTTP API keeps its documented contract: plain HTTP, no
//! token.

use anyhow::Context;
use diskv::access::Tokens;
use diskv::http::{FrontOptions, ServeOptions};
use diskv::resp::RespOptions;
use paxos::transport::tls::Security;
use std::path::PathBuf;
use std::sync::Arc;

/// Access to the HTTP API.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FrontDoorArgs {
    /// Require a bearer token from this file on every request but GET /health
    /// (make tokens with `diskv token add --file FILE NAME`).
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Serve the HTTP API over TLS (HTTPS) with this process's certificate.
    #[arg(long)]
    pub http_tls: bool,
    /// Serve the Redis protocol over TLS with this process's certificate.
    #[arg(long)]
    pub resp_tls: bool,
    /// Leave GET /metrics open when --tokens is set.
    #[arg(long, requires = "tokens")]
    pub open_metrics: bool,
}

impl FrontDoorArgs {
    /// The front door's options: the token file, opened now (a missing or
    /// malformed file fails the start).
    pub fn front_options(&self) -> anyhow::Result<FrontOptions> {
        let tokens = match &self.tokens {
            Some(path) => Some(Arc::new(Tokens::open(path).context("--tokens")?)),
            None => None,
        };
        Ok(FrontOptions {
            tokens,
            open_metrics: self.open_metrics,
            ..FrontOptions::default()
        })
    }

    /// The HTTP listener's options: HTTPS with `security`'s certificate if
    /// asked for (which needs one).
    pub fn serve_options(&self, security: &Security) -> anyhow::Result<ServeOptions> {
        Ok(ServeOptions {
            tls: public_tls(self.http_tls, "--http-tls", security)?,
            ..ServeOptions::default()
        })
    }

    /// The Redis protocol's options: the same tokens, TLS if asked for.
    pub fn resp_options(
        &self,
        front: &FrontOptions,
        security: &Security,
    ) -> anyhow::Result<RespOptions> {
        Ok(RespOptions {
            tokens: front.tokens.clone(),
            tls: public_tls(self.resp_tls, "--resp-tls", security)?,
            ..RespOptions::default()
        })
    }
}

/// The server configuration of a front door's TLS, if `wanted` (by `flag`).
fn public_tls(
    wanted: bool,
    flag: &str,
    security: &Security,
) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    match (wanted, security) {
        (false, _) => Ok(None),
        (true, Security::Tls(tls)) => Ok(Some(tls.public_server_config())),
        (true, Security::Plain) => anyhow::bail!(
            "{flag} needs a certificate: give --tls-dir (or --ca/--cert/--key), not --insecure"
        ),
    }
}
