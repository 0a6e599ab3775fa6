//! Making a cluster's certificates (rcgen): a CA, and the node and client
//! certificates it signs.
//!
//! A CA directory holds `ca.crt` and `ca.key` (the key never leaves it). An
//! identity directory — what a process is given as `--tls-dir` — holds the CA's
//! certificate, the holder's certificate and its key ([`super::tls::TlsFiles`]).
//! Node certificates serve both ends of a connection (server and client
//! authentication) and name the hosts the node is dialled at; client
//! certificates authenticate a client only, which is their role
//! ([`super::role`]). Keys are ECDSA P-256; files are replaced atomically (temp
//! file + rename) and keys are readable by their owner only.

use super::role::Role;
use super::tls::{CA_FILE, CERT_FILE, KEY_FILE};
use crate::fs::durable;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The CA's private key in a CA directory.
pub const CA_KEY_FILE: &str = "ca.key";

/// How long a CA made by [`CertAuthority::create`] is valid.
pub const CA_VALID_DAYS: i64 = 3650;

/// How long a node or client certificate is valid unless asked otherwise.
pub const NODE_VALID_DAYS: i64 = 365;

/// Why certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A CA directory already holds a CA (making another would orphan every
    /// certificate it signed).
    #[error("{0} already holds a CA; use it, or pick another directory")]
    Exists(PathBuf),
    /// The CA's files do not parse.
    #[error("{path} is not a usable CA: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// rcgen's reason.
        reason: String,
    },
    /// A host is neither an IP address nor a DNS name.
    #[error("{0:?} is neither an IP address nor a DNS name")]
    BadHost(String),
    /// rcgen refused to make the certificate.
    #[error("cannot make the certificate: {0}")]
    Make(String),
}

/// A CA able to sign node and client certificates.
pub struct CertAuthority {
    cert: rcgen::Certificate,
    key: KeyPair,
    cert_pem: String,
}

impl CertAuthority {
    /// Makes a new CA named `name` in `dir` (created if missing). Refuses a
    /// directory that already holds one.
    pub fn create(dir: &Path, name: &str) -> Result<CertAuthority, CertError> {
        if dir.join(CA_KEY_FILE).exists() {
            return Err(CertError::Exists(dir.to_path_buf()));
        }
        let key = KeyPair::generate().map_err(make)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(make)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(CA_VALID_DAYS);
        let cert = params.self_signed(&key).map_err(make)?;
        let cert_pem = cert.pem();
        create_dir(dir)?;
        write_file(&dir.join(CA_KEY_FILE), key.serialize_pem().as_bytes(), true)?;
        write_file(&dir.join(CA_FILE), cert_pem.as_bytes(), false)?;
        Ok(CertAuthority {
            cert,
            key,
            cert_pem,
        })
    }

    /// Opens the CA of `dir`.
    pub fn open(dir: &Path) -> Result<CertAuthority, CertError> {
        let cert_path = dir.join(CA_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = read_string(&cert_path)?;
        let key = KeyPair::from_pem(&read_string(&key_path)?).map_err(|e| CertError::BadCa {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        let params =
            CertificateParams::from_ca_cert_pem(&cert_pem).map_err(|e| CertError::BadCa {
                path: cert_path.clone(),
                reason: e.to_string(),
            })?;
        // The issuer's name and key are all signing needs; this copy stands in
        // for the stored certificate.
        let cert = params.self_signed(&key).map_err(|e| CertError::BadCa {
            path: cert_path,
            reason: e.to_string(),
        })?;
        Ok(CertAuthority {
            cert,
            key,
            cert_pem,
        })
    }

    /// Opens the CA of `dir`, making it first if the directory has none.
    pub fn open_or_create(dir: &Path, name: &str) -> Result<CertAuthority, CertError> {
        if dir.join(CA_KEY_FILE).exists() {
            CertAuthority::open(dir)
        } else {
            CertAuthority::create(dir, name)
        }
    }

    /// The CA's certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes an identity directory `out` (created if missing) for `name` with
    /// `role`, valid for `hosts` (IP addresses or DNS names; a client needs
    /// none) from a day ago until `days` from now (a negative `days` makes an
    /// expired one, for tests): `ca.crt`, `node.crt`, `node.key`. Existing
    /// files are replaced: this is how a certificate is rotated.
    ///
    /// The role is the Extended Key Usage ([`super::role`]): serverAuth and
    /// clientAuth for a node, clientAuth alone for a client.
    pub fn issue(
        &self,
        out: &Path,
        name: &str,
        role: Role,
        hosts: &[String],
        days: i64,
    ) -> Result<(), CertError> {
        let key = KeyPair::generate().map_err(make)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(make)?;
        for host in hosts {
            params.subject_alt_names.push(san(host)?);
        }
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = match role {
            Role::Node => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1).max(Duration::days(1 - days));
        params.not_after = now + Duration::days(days);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(make)?;
        create_dir(out)?;
        write_file(&out.join(KEY_FILE), key.serialize_pem().as_bytes(), true)?;
        write_file(&out.join(CERT_FILE), cert.pem().as_bytes(), false)?;
        write_file(&out.join(CA_FILE), self.cert_pem.as_bytes(), false)
    }
}

fn san(host: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        return Err(CertError::BadHost(host.to_string()));
    }
    Ok(SanType::DnsName(
        host.to_string()
            .try_into()
            .map_err(|_| CertError::BadHost(host.to_string()))?,
    ))
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // a positive number
    SerialNumber::from_slice(&bytes)
}

fn make(e: rcgen::Error) -> CertError {
    CertError::Make(e.to_string())
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn read_string(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces `path` with `bytes` atomically and durably; `secret` files are
/// readable by their owner only ([`durable::replace_with_mode`]).
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CertError> {
    let mode = if secret { 0o600 } else { 0o644 };
    durable::replace_with_mode(path, bytes, mode).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}
