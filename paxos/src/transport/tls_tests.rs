//! Handshakes over the real mux between identities of one CA, of two CAs,
//! without certificates, with expired ones and with the wrong host name; the
//! roles of certificates and the services each may open.

use super::*;
use crate::transport::certs::CertAuthority;
use crate::transport::guard::{Admission, FrameBudget, Limits};
use crate::transport::mux;
use crate::transport::role::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A node identity of `ca` for `hosts`, valid `days` days from now.
fn identity(ca: &CertAuthority, dir: &Path, name: &str, hosts: &[&str], days: i64) -> Security {
    identity_as(ca, dir, name, Role::Node, hosts, days)
}

/// An identity of `ca` with `role` for `hosts`, valid `days` days from now.
fn identity_as(
    ca: &CertAuthority,
    dir: &Path,
    name: &str,
    role: Role,
    hosts: &[&str],
    days: i64,
) -> Security {
    let out = dir.join(name);
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    ca.issue(&out, name, role, &hosts, days).unwrap();
    Security::Tls(Tls::load(&TlsFiles::in_dir(&out)).unwrap())
}

/// A mux listener with `security` that echoes one byte on each client connection.
async fn echo_server(security: Security) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admission = Admission::new(Limits::default(), FrameBudget::new(1 << 20));
    let mut demux = mux::demux_secured(listener, admission, security).unwrap();
    let addr = demux.local_addr.to_string();
    tokio::spawn(async move {
        while let Some(mut conn) = demux.clients.recv().await {
            tokio::spawn(async move {
                let mut b = [0u8; 1];
                if conn.read_exact(&mut b).await.is_ok() {
                    let _ = conn.write_all(&b).await;
                    let _ = conn.flush().await;
                }
            });
        }
    });
    addr
}

/// One byte there and back through the mux, or the error on the way.
async fn round_trip(security: &Security, addr: &str) -> io::Result<()> {
    let mut s = mux::connect_with(security, addr, mux::CLIENT).await?;
    s.write_all(b"x").await?;
    s.flush().await?;
    let mut b = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no echo"))??;
    if &b != b"x" {
        // A plaintext client reads the TLS alert the server sent instead.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("got {b:?}"),
        ));
    }
    Ok(())
}

#[tokio::test]
async fn identities_of_one_ca_talk_and_everyone_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let other_ca = CertAuthority::create(&dir.path().join("other"), "cluster B").unwrap();
    let server = identity(&ca, dir.path(), "server", &["127.0.0.1"], 30);
    let addr = echo_server(server).await;

    let friend = identity(&ca, dir.path(), "friend", &["127.0.0.1"], 30);
    round_trip(&friend, &addr).await.expect("same CA");

    let plain = round_trip(&Security::Plain, &addr).await;
    assert!(
        plain.is_err(),
        "a plaintext client got an answer from a TLS port"
    );

    let stranger = identity(&other_ca, dir.path(), "stranger", &["127.0.0.1"], 30);
    let e = round_trip(&stranger, &addr).await.unwrap_err();
    assert!(
        e.to_string().contains("not signed by this cluster's CA"),
        "another CA's client: {e}"
    );

    // Another CA that happens to carry the same name.
    let twin_ca = CertAuthority::create(&dir.path().join("twin"), "cluster A").unwrap();
    let twin = identity(&twin_ca, dir.path(), "twin", &["127.0.0.1"], 30);
    let e = round_trip(&twin, &addr).await.unwrap_err();
    assert!(
        e.to_string().contains("not signed by this cluster's CA"),
        "a namesake CA's client: {e}"
    );

    let expired = identity(&ca, dir.path(), "expired", &["127.0.0.1"], -2);
    assert!(
        round_trip(&expired, &addr).await.is_err(),
        "an expired client certificate was accepted"
    );
}

#[tokio::test]
async fn a_client_refuses_servers_of_another_ca_expired_or_misnamed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let other_ca = CertAuthority::create(&dir.path().join("other"), "cluster B").unwrap();
    let client = identity(&ca, dir.path(), "client", &["127.0.0.1"], 30);

    let impostor = echo_server(identity(
        &other_ca,
        dir.path(),
        "impostor",
        &["127.0.0.1"],
        30,
    ))
    .await;
    let e = round_trip(&client, &impostor).await.unwrap_err();
    assert!(
        e.to_string().contains("not signed by this cluster's CA"),
        "{e}"
    );

    let stale = echo_server(identity(&ca, dir.path(), "stale", &["127.0.0.1"], -2)).await;
    let e = round_trip(&client, &stale).await.unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");

    let misnamed = echo_server(identity(&ca, dir.path(), "misnamed", &["10.9.9.9"], 30)).await;
    let e = round_trip(&client, &misnamed).await.unwrap_err();
    assert!(e.to_string().contains("does not name the address"), "{e}");

    let plain = echo_server(Security::Plain).await;
    assert!(
        round_trip(&client, &plain).await.is_err(),
        "TLS client accepted a plaintext server"
    );
}

#[test]
fn missing_or_wrong_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Tls::load(&TlsFiles::in_dir(dir.path())).unwrap_err();
    assert!(e.to_string().contains("ca.crt"), "{e}");
    std::fs::write(dir.path().join(CA_FILE), "not a certificate").unwrap();
    let e = Tls::load(&TlsFiles::in_dir(dir.path())).unwrap_err();
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    assert!(CertAuthority::create(&dir.path().join("ca"), "x").is_ok());
    let again = CertAuthority::create(&dir.path().join("ca"), "x");
    assert!(matches!(
        again,
        Err(crate::transport::certs::CertError::Exists(_))
    ));
    let ca = CertAuthority::open(&dir.path().join("ca")).unwrap();
    let bad = ca.issue(
        &dir.path().join("n"),
        "n",
        Role::Node,
        &["not a host!".to_string()],
        1,
    );
    assert!(matches!(
        bad,
        Err(crate::transport::certs::CertError::BadHost(_))
    ));
}

/// Attack on issue #14 (docs/attacks/tls-auth.md finding 2): a stranger that
/// connects and never finishes its TLS handshake holds a slot of the listener
/// like one that never sends its tag, and one evicted to make room must be
/// closed at once. Without TLS the tag read notices the eviction; the handshake
/// reads the TCP stream under the guard and did not, so every such connection
/// stayed open for the whole 5 s handshake limit, past the listener's cap.
#[tokio::test]
async fn attack_connections_evicted_during_their_handshake_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let server = identity(&ca, dir.path(), "server", &["127.0.0.1"], 30);
    for (what, security) in [("plaintext", Security::Plain), ("TLS", server)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let limits = Limits {
            max_connections: 4,
            max_per_ip: 4,
            frame_deadline: Duration::from_secs(5),
            evictable_after: Duration::ZERO,
        };
        let admission = Admission::new(limits, FrameBudget::new(1 << 20));
        let demux = mux::demux_secured(listener, admission.clone(), security).unwrap();
        let mut strangers = Vec::new();
        for _ in 0..40 {
            strangers.push(
                tokio::net::TcpStream::connect(demux.local_addr)
                    .await
                    .unwrap(),
            );
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let open = admission.open();
        assert!(
            open <= 5,
            "{what}: {open} silent strangers still hold connections on a listener capped at 4"
        );
        drop(strangers);
        drop(demux);
    }
}

/// Attack on issue #14 (docs/attacks/tls-auth.md finding 4): a node key must be
/// readable by its owner only even when an earlier, interrupted `issue` left its
/// temporary file behind. The key and the certificate shared one temporary name
/// (`node.tmp`), created with 0644 for the certificate; the key was then
/// written through the existing file, which kept its 0644.
#[test]
fn attack_a_stale_temporary_file_does_not_leave_the_key_readable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let out = dir.path().join("node");
    std::fs::create_dir_all(&out).unwrap();
    // What a crash while writing node.crt leaves behind.
    let stale = out.join("node.tmp");
    std::fs::write(&stale, "-----BEGIN CERTIFICATE-----\n").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
    ca.issue(&out, "node", Role::Node, &["127.0.0.1".to_string()], 30)
        .unwrap();
    let mode = std::fs::metadata(out.join(KEY_FILE))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o077, 0, "node.key written with mode {mode:o}");
    Tls::load(&TlsFiles::in_dir(&out)).expect("the identity still loads");
}

/// Attack on issue #14 (docs/attacks/tls-auth.md finding 5): every certificate
/// of the cluster's CA was believed for every service of the port, so the
/// identity `diskv cluster` makes for the user's clients (and any `certs
/// issue` for an application) could open a replica-to-replica connection and
/// speak Paxos to a replica. Fixed by roles: a client certificate is refused
/// the peer service after its handshake.
#[tokio::test]
async fn attack_a_client_certificate_cannot_open_a_peer_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let server = identity(&ca, dir.path(), "group-1-replica-0", &["127.0.0.1"], 30);
    let client = identity_as(&ca, dir.path(), "client", Role::Client, &[], 30);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admission = Admission::new(Limits::default(), FrameBudget::new(1 << 20));
    let mut demux = mux::demux_secured(listener, admission, server).unwrap();
    let addr = demux.local_addr.to_string();
    let _conn = mux::connect_with(&client, &addr, mux::PEER).await;
    let routed = tokio::time::timeout(Duration::from_secs(2), demux.peers.recv()).await;
    assert!(
        routed.is_err(),
        "a client's certificate was handed to the replica-to-replica service"
    );
}

#[test]
fn roles_are_read_from_the_extended_key_usage() {
    use crate::transport::role::{Holder, RoleError};
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let holder = |name: &str, role: Role, hosts: &[String]| {
        let out = dir.path().join(name);
        ca.issue(&out, name, role, hosts, 30).unwrap();
        let pem = std::fs::read(out.join(CERT_FILE)).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        (Holder::of_certificate(&der).unwrap(), out)
    };
    let (node, node_dir) = holder("replica", Role::Node, &["127.0.0.1".to_string()]);
    assert_eq!(node.role, Role::Node);
    assert_eq!(node.name.as_deref(), Some("replica"));
    let (client, client_dir) = holder("app", Role::Client, &[]);
    assert_eq!(client.role, Role::Client);
    assert_eq!(client.name.as_deref(), Some("app"));
    // A process knows its own role.
    assert_eq!(
        Tls::load(&TlsFiles::in_dir(&node_dir)).unwrap().role(),
        Role::Node
    );
    assert_eq!(
        Tls::load(&TlsFiles::in_dir(&client_dir)).unwrap().role(),
        Role::Client
    );

    // No Extended Key Usage at all (not made by diskv): it may serve, so a node.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "old");
    let bare = params.clone().self_signed(&key).unwrap();
    assert_eq!(Holder::of_certificate(bare.der()).unwrap().role, Role::Node);
    // serverAuth alone (not made by diskv) may serve too.
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_only = params.self_signed(&key).unwrap();
    assert_eq!(
        Holder::of_certificate(server_only.der()).unwrap().role,
        Role::Node
    );

    // Garbage is an error, never a panic, and never a role.
    for junk in [&b""[..], b"\x30", b"\x30\x82\xff\xff", &[0xffu8; 64]] {
        assert!(matches!(
            Holder::of_certificate(junk),
            Err(RoleError::Unreadable(_))
        ));
    }
    let der = bare.der().to_vec();
    for cut in [1, der.len() / 2, der.len() - 1] {
        assert!(Holder::of_certificate(&der[..cut]).is_err(), "cut at {cut}");
    }

    assert_eq!("node".parse::<Role>(), Ok(Role::Node));
    assert_eq!("client".parse::<Role>(), Ok(Role::Client));
    assert_eq!(
        "admin".parse::<Role>(),
        Err(RoleError::UnknownName("admin".to_string()))
    );
    assert_eq!(Role::Client.to_string(), "client");
}

#[test]
fn node_only_services_are_peer_and_probe() {
    for tag in [mux::PEER, mux::PROBE, mux::CLIENT, b'Z'] {
        assert!(mux::may_open(Role::Node, tag), "tag {tag}");
    }
    assert!(!mux::may_open(Role::Client, mux::PEER));
    assert!(!mux::may_open(Role::Client, mux::PROBE));
    assert!(mux::may_open(Role::Client, mux::CLIENT));
}

/// A demux with a node identity; what it routes is left in its receivers.
async fn node_port(ca: &CertAuthority, dir: &Path) -> mux::Demux {
    let server = identity(ca, dir, "replica", &["127.0.0.1"], 30);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admission = Admission::new(Limits::default(), FrameBudget::new(1 << 20));
    mux::demux_secured(listener, admission, server).unwrap()
}

/// Connects with `tag` and returns whether the server closed the connection
/// (within 2 s) rather than keeping it for its service.
async fn closed_by_server(security: &Security, addr: &str, tag: u8) -> bool {
    let mut s = mux::connect_with(security, addr, tag)
        .await
        .expect("the handshake succeeds");
    let mut b = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => panic!("the server sent bytes on a {tag} connection"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_client_certificate_is_refused_peer_and_probe_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let mut port = node_port(&ca, dir.path()).await;
    let addr = port.local_addr.to_string();
    let client = identity_as(&ca, dir.path(), "app", Role::Client, &[], 30);
    for tag in [mux::PEER, mux::PROBE] {
        assert!(
            closed_by_server(&client, &addr, tag).await,
            "a client certificate kept a {tag} connection"
        );
    }
    assert!(
        port.peers.try_recv().is_err(),
        "a peer connection was routed"
    );
    assert!(port.probes.try_recv().is_err(), "a probe was routed");
}

#[tokio::test]
async fn a_client_certificate_opens_client_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let server = identity(&ca, dir.path(), "server", &["127.0.0.1"], 30);
    let addr = echo_server(server).await;
    let client = identity_as(&ca, dir.path(), "app", Role::Client, &[], 30);
    round_trip(&client, &addr)
        .await
        .expect("a client certificate on a client connection");
}

#[tokio::test]
async fn a_node_certificate_opens_peer_and_probe_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let mut port = node_port(&ca, dir.path()).await;
    let addr = port.local_addr.to_string();
    let node = identity(&ca, dir.path(), "peer", &["127.0.0.1"], 30);
    let _peer = mux::connect_with(&node, &addr, mux::PEER).await.unwrap();
    let routed = tokio::time::timeout(Duration::from_secs(5), port.peers.recv()).await;
    assert!(matches!(routed, Ok(Some(_))), "a node's peer connection");
    let _probe = mux::connect_with(&node, &addr, mux::PROBE).await.unwrap();
    let routed = tokio::time::timeout(Duration::from_secs(5), port.probes.recv()).await;
    assert!(matches!(routed, Ok(Some(_))), "a node's probe");
}

#[tokio::test]
async fn a_client_certificate_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::create(&dir.path().join("ca"), "cluster A").unwrap();
    let impostor = identity_as(&ca, dir.path(), "app", Role::Client, &["127.0.0.1"], 30);
    let addr = echo_server(impostor).await;
    let node = identity(&ca, dir.path(), "node", &["127.0.0.1"], 30);
    let e = round_trip(&node, &addr).await.unwrap_err();
    assert!(e.to_string().contains("not for this use"), "{e}");
}
