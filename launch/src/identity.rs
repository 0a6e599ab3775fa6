//! Certificates for the processes of a local cluster or node: one CA per
//! directory (`DIR/tls/ca`, made on first use) and one identity per process
//! (`DIR/tls/<name>`), so `diskv cluster`, `diskv serve` and `diskv bench --spawn`
//! get mutual TLS with no ceremony (docs/SECURITY.md).

use anyhow::Context;
use paxos::transport::certs::{CertAuthority, NODE_VALID_DAYS};
use paxos::transport::role::Role;
use paxos::transport::tls::{Security, Tls, TlsFiles};
use std::path::{Path, PathBuf};

/// The name of the CA directory under a local cluster's or node's `tls/`.
const LOCAL_CA: &str = "ca";

/// The hosts a local identity is valid for: every process of `diskv cluster`
/// and `diskv serve` listens on loopback.
fn local_hosts() -> Vec<String> {
    vec!["127.0.0.1".to_string(), "localhost".to_string()]
}

/// Issues `name` a fresh identity with `role` from the CA in `base/ca` (made on
/// first use) and returns its directory, `base/name`. Issued again at every
/// start, so local certificates never expire while the CA lives (ten years),
/// and a client identity made before roles existed becomes a client's.
pub fn local_identity(base: &Path, name: &str, role: Role) -> anyhow::Result<PathBuf> {
    local_identity_naming(base, name, role, &[])
}

/// [`local_identity`] whose node certificate also names `hosts` (the host a
/// cluster is advertised by, `diskv cluster --advertise-host`), so that clients
/// dialling it there accept it.
pub fn local_identity_naming(
    base: &Path,
    name: &str,
    role: Role,
    hosts: &[String],
) -> anyhow::Result<PathBuf> {
    let ca = CertAuthority::open_or_create(
        &base.join(LOCAL_CA),
        &format!("diskv local CA {:08x}", rand::random::<u32>()),
    )
    .with_context(|| format!("cannot open or make the CA in {}", base.display()))?;
    let out = base.join(name);
    // A client is never dialled: its certificate names no host.
    let hosts = match role {
        Role::Node => {
            let mut all = local_hosts();
            for host in hosts {
                if !all.contains(host) {
                    all.push(host.clone());
                }
            }
            all
        }
        Role::Client => Vec::new(),
    };
    ca.issue(&out, name, role, &hosts, NODE_VALID_DAYS)
        .with_context(|| format!("cannot issue a certificate in {}", out.display()))?;
    Ok(out)
}

/// A node [`local_identity`], loaded as a [`Security`] for this process.
pub fn local_security(base: &Path, name: &str) -> anyhow::Result<Security> {
    let dir = local_identity(base, name, Role::Node)?;
    let tls = Tls::load(&TlsFiles::in_dir(&dir))
        .with_context(|| format!("cannot load the identity made in {}", dir.display()))?;
    Ok(Security::Tls(tls))
}

/// The flags that give a child process its own node identity under `base`.
pub fn local_child_flags(base: &Path, name: &str) -> anyhow::Result<Vec<String>> {
    let dir = local_identity(base, name, Role::Node)?;
    Ok(vec!["--tls-dir".into(), dir.display().to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_of_one_directory_share_their_ca() {
        let dir = tempfile::tempdir().unwrap();
        let a = local_identity(dir.path(), "a", Role::Node).unwrap();
        let b = local_identity(dir.path(), "b", Role::Client).unwrap();
        let ca = |d: &Path| std::fs::read(TlsFiles::in_dir(d).ca).unwrap();
        assert_eq!(ca(&a), ca(&b));
        assert_ne!(
            std::fs::read(TlsFiles::in_dir(&a).cert).unwrap(),
            std::fs::read(TlsFiles::in_dir(&b).cert).unwrap()
        );
        let role = |d: &Path| Tls::load(&TlsFiles::in_dir(d)).unwrap().role();
        assert_eq!((role(&a), role(&b)), (Role::Node, Role::Client));
        assert!(matches!(
            local_security(dir.path(), "c").unwrap(),
            Security::Tls(tls) if tls.role() == Role::Node
        ));
        let flags = local_child_flags(dir.path(), "d").unwrap();
        assert_eq!(
            flags,
            [
                "--tls-dir".to_string(),
                dir.path().join("d").display().to_string()
            ]
        );
    }

    #[test]
    fn a_node_identity_also_names_the_advertised_host() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = ["db1.example.com".to_string(), "localhost".to_string()];
        let names = |role: Role| {
            let d = local_identity_naming(dir.path(), "n", role, &hosts).unwrap();
            let pem = std::fs::read(TlsFiles::in_dir(&d).cert).unwrap();
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
            let cert = pem.parse_x509().unwrap();
            cert.subject_alternative_name()
                .unwrap()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let node = names(Role::Node);
        assert_eq!(node.len(), 3, "{node:?}");
        assert!(
            node.iter().any(|n| n.contains("\"db1.example.com\"")),
            "{node:?}"
        );
        assert!(node.iter().any(|n| n.contains("\"localhost\"")), "{node:?}");
        assert!(names(Role::Client).is_empty());
    }
}
