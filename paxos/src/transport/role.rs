//! The role a certificate gives its holder: a `node` (a replica, a shardmaster,
//! `diskv serve`, a launcher) or a `client` (`diskv client`, `diskv admin`, an
//! application). See docs/SECURITY.md "Roles".
//!
//! The role is the certificate's Extended Key Usage, not a mark of our own: a
//! node certificate lists serverAuth and clientAuth (a node both serves and
//! dials), a client certificate clientAuth only. So a certificate's role is
//! exactly what TLS already lets it do: one without serverAuth cannot serve a
//! diskv port (every diskv client requires serverAuth of the server, as rustls
//! checks it), so it cannot be a node on either end of a connection. The same
//! convention is what etcd asks of its peer and client certificates and what
//! ordinary PKI tools (openssl, cfssl, Vault) issue as "server/peer" and
//! "client" profiles, so certificates made outside `diskv certs` carry a role
//! too. A certificate with no Extended Key Usage at all may serve (RFC 5280:
//! any purpose), so it is a node; every certificate diskv issued before roles
//! existed lists both purposes, so each stays a node until it is reissued.

use std::fmt;
use std::str::FromStr;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// What a certificate of the cluster's CA lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A diskv process that serves a port: it may open every service of a port,
    /// replica-to-replica ([`super::mux::PEER`]) and probes ([`super::mux::PROBE`])
    /// included.
    Node,
    /// A user's client: it may open client connections ([`super::mux::CLIENT`])
    /// only.
    Client,
}

impl Role {
    /// The role's name, as `diskv certs issue --role` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Client => "client",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Role, RoleError> {
        match s {
            "node" => Ok(Role::Node),
            "client" => Ok(Role::Client),
            other => Err(RoleError::UnknownName(other.to_string())),
        }
    }
}

/// Why a role could not be known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// A role's name is neither `node` nor `client`.
    #[error("{0:?} is not a role (node or client)")]
    UnknownName(String),
    /// The certificate's DER or its Extended Key Usage does not parse (the TLS
    /// handshake accepted it, so this is a certificate we cannot read, not a
    /// forgery; refused all the same).
    #[error("the certificate cannot be read for its role: {0}")]
    Unreadable(String),
    /// A TLS connection without the peer's certificate (the server side always
    /// asks for one, so this does not happen after a successful handshake).
    #[error("the peer presented no certificate")]
    NoCertificate,
}

/// A certificate's holder as far as the mux needs it: its role and the name
/// it was issued to (the subject's common name, for the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// What the certificate allows.
    pub role: Role,
    /// The subject's common name, if it has one.
    pub name: Option<String>,
}

impl Holder {
    /// Reads the holder of a DER certificate: the role from its Extended Key
    /// Usage (serverAuth listed, or no Extended Key Usage at all: a node; else a
    /// client), the name from its subject. Never panics on any input.
    pub fn of_certificate(der: &[u8]) -> Result<Holder, RoleError> {
        let unreadable = |e: &dyn fmt::Display| RoleError::Unreadable(e.to_string());
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| unreadable(&e))?;
        let role = match cert.extended_key_usage().map_err(|e| unreadable(&e))? {
            None => Role::Node,
            Some(eku) => {
                let eku = eku.value;
                // An empty list restricts nothing (rustls accepts it to serve).
                let lists_nothing = !(eku.any
                    || eku.server_auth
                    || eku.client_auth
                    || eku.code_signing
                    || eku.email_protection
                    || eku.time_stamping
                    || eku.ocsp_signing)
                    && eku.other.is_empty();
                if eku.server_auth || lists_nothing {
                    Role::Node
                } else {
                    Role::Client
                }
            }
        };
        let name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Ok(Holder { role, name })
    }
}
