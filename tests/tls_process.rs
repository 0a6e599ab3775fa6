//! Security with real processes (issue #14, docs/SECURITY.md), between
//! replicas: every process of this test binary runs with mutual TLS — the CA
//! and the identity are made once with `diskv certs` and handed to every child
//! through `DISKV_TLS_DIR` (`support::tls`) — so the lost-disk, sharding and
//! kill -9 paths are shown to work over TLS; strangers (plaintext, another CA's
//! certificate, another cluster's replica) are refused and say why; a client's
//! certificate opens client connections only. The front doors (HTTPS, the Redis
//! protocol over TLS, tokens) are `tests/tls_tokens_process.rs`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::cluster::ShardCluster;
use support::kv_group::Group;
use support::line_client::wait_serving;
use support::process::{diskv_bin, reserve_addrs, wait_until, Process};
use support::tls::{all_logs, certs};

/// Every daemon whose log is in `logs` ran with the test's TLS identity: none
/// warned that its port is plaintext, and none refused one of our handshakes.
fn assert_over_tls(logs: &str) {
    assert!(logs.contains("replica started"), "no daemon log read");
    assert!(
        !logs.contains("plaintext and unauthenticated"),
        "a daemon ran without TLS:\n{logs}"
    );
}

/// A replica loses its disk and recovers from its peers, then another is
/// killed with SIGKILL: every write stays, all over mutual TLS.
#[test]
fn a_lost_disk_and_a_kill_9_over_tls() {
    certs();
    let mut g = Group::start(3);
    let mut c = g.client("ck");
    wait_serving(&mut c);
    for i in 0..10 {
        assert!(c
            .req(&format!("PUT k{i} v{i}"))
            .starts_with(&format!("PUT k{i} ")));
    }
    g.lose_disk(1);
    assert_eq!(c.req("PUT after-loss 1"), "PUT after-loss not_found");
    g.spawn(1, true);
    g.wait_recovered(1, Duration::from_secs(60));
    g.kill9(0);
    for i in 0..10 {
        assert_eq!(c.req(&format!("GET k{i}")), format!("GET k{i} v{i}"));
    }
    assert_eq!(c.req("GET after-loss"), "GET after-loss 1");
    let logs = all_logs(&g.logs());
    assert_over_tls(&logs);
    assert!(
        !logs.contains("TLS handshake refused"),
        "a handshake between our own processes failed:\n{logs}"
    );
}

/// Two groups over TLS; one leaves, its shards move to the other (group to
/// group over TLS), and every key is still there.
#[test]
fn shards_move_between_groups_over_tls() {
    certs();
    let mut cluster = ShardCluster::start(10);
    cluster.start_group(1, 3, false);
    cluster.start_group(2, 3, false);
    cluster.wait_groups(&[1, 2]);
    let mut c = cluster.client("ck");
    wait_serving(&mut c);
    for i in 0..20 {
        c.req(&format!("PUT key{i} value{i}"));
    }
    cluster.admin_ok(&["leave", "1"]);
    cluster.wait_groups(&[2]);
    cluster.wait_settled(Duration::from_secs(60));
    for i in 0..20 {
        assert_eq!(
            c.req(&format!("GET key{i}")),
            format!("GET key{i} value{i}")
        );
    }
    assert_over_tls(&all_logs(&cluster.logs()));
}

/// `diskv ARGS` with `tls_flags` instead of the test's identity; its output
/// once it exits (within 30 s).
fn diskv_as(logs: &Path, name: &str, args: &[&str]) -> (Option<std::process::ExitStatus>, String) {
    let mut p = Process::spawn_with(name, logs, diskv_bin(), args, |cmd: &mut Command| {
        cmd.env_remove("DISKV_TLS_DIR");
    });
    let status = p.wait_exit(Duration::from_secs(30));
    (status, p.stderr())
}

/// A plaintext client, a client with another CA's certificate and a replica of
/// another cluster are refused at the handshake; the refusal names the reason;
/// the stranger replica never joins.
#[test]
fn strangers_are_refused_and_told_why() {
    let certs = certs();
    let mut cluster = ShardCluster::start(10);
    cluster.start_group(1, 3, false);
    cluster.wait_groups(&[1]);
    let logs = cluster.logs();
    let masters = cluster.masters.clone();

    let (status, _) = diskv_as(
        &logs,
        "plain-admin",
        &[
            "admin",
            "--masters",
            &masters,
            "--timeout",
            "3",
            "--insecure",
            "query",
        ],
    );
    assert!(
        !status.is_some_and(|s| s.success()),
        "a plaintext admin got an answer"
    );
    let stranger = certs.stranger().display().to_string();
    let (status, stderr) = diskv_as(
        &logs,
        "stranger-admin",
        &[
            "admin",
            "--masters",
            &masters,
            "--timeout",
            "3",
            "--tls-dir",
            &stranger,
            "query",
        ],
    );
    assert!(
        !status.is_some_and(|s| s.success()),
        "another CA's admin got an answer"
    );
    assert!(
        stderr.contains("not signed by this cluster's CA"),
        "the stranger is not told why: {stderr}"
    );
    // The shardmaster names each refusal: the plaintext client, and the
    // stranger, which gave up on our certificate first.
    wait_until(
        Duration::from_secs(10),
        "the refusals are logged with their reasons",
        || {
            let sm = all_logs(&logs);
            sm.contains("does not speak TLS") && sm.contains("the peer refused our certificate")
        },
    );

    // Another cluster's replica asks to join this cluster's shardmaster.
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = reserve_addrs(1).remove(0);
    let gid_dir = dir.path().join("r").display().to_string();
    let mut rogue = Process::spawn_with(
        "rogue",
        &logs,
        diskv_bin(),
        [
            "server",
            "--gid",
            "9",
            "--masters",
            &masters,
            "--peers",
            &addr,
            "--me",
            "0",
            "--dir",
            &gid_dir,
            "--join",
            "--tls-dir",
            &stranger,
        ],
        |cmd: &mut Command| {
            cmd.env_remove("DISKV_TLS_DIR");
        },
    );
    wait_until(
        Duration::from_secs(20),
        "the rogue replica is refused several times",
        || {
            support::cluster::strip_ansi(&rogue.stderr())
                .matches("not signed by this cluster's CA")
                .count()
                >= 2
                && all_logs(&logs)
                    .matches("the peer refused our certificate")
                    .count()
                    >= 4
        },
    );
    let config = cluster.query().expect("query");
    assert!(
        !config.groups.contains_key(&9),
        "a stranger's group joined: {config:?}"
    );
    rogue.kill9();
}

/// Connects to `addr` for the service `tag` with `identity` and reports whether
/// the server closed the connection (within 3 s) instead of keeping it.
async fn closed_by_server(identity: &Path, addr: &str, tag: u8) -> bool {
    use paxos::transport::{mux, tls};
    use tokio::io::AsyncReadExt;
    let files = tls::TlsFiles::in_dir(identity);
    let security = tls::Security::Tls(tls::Tls::load(&files).expect("identity"));
    let mut stream = mux::connect_with(&security, addr, tag)
        .await
        .expect("the handshake succeeds: the certificate is the cluster's");
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut byte)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => panic!("{addr} sent a byte first on service {tag}"),
        Err(_) => false,
    }
}

/// Attack on issue #14 (docs/attacks/tls-auth.md finding 5), with real
/// processes: a client's certificate (`diskv certs issue --role client`) runs
/// `diskv admin` but cannot start a daemon, and a replica and a shardmaster
/// close the replica-to-replica and probe connections it opens, and log why; a
/// node's certificate keeps its replica-to-replica connection. Before roles every certificate of the CA was
/// handed to the Paxos peer service.
#[test]
fn attack_a_client_certificate_cannot_open_a_peer_connection() {
    use paxos::transport::mux::{PEER, PROBE};
    let certs = certs();
    let mut cluster = ShardCluster::start(10);
    cluster.start_group(1, 3, false);
    cluster.wait_groups(&[1]);
    let logs = cluster.logs();
    let masters = cluster.masters.clone();

    let client = certs.client().display().to_string();
    let (status, stderr) = diskv_as(
        &logs,
        "client-admin",
        &[
            "admin",
            "--masters",
            &masters,
            "--timeout",
            "10",
            "--tls-dir",
            &client,
            "query",
        ],
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "a client certificate cannot query the shardmaster: {status:?} {stderr}"
    );

    // A daemon given a client's certificate could serve no one: it refuses to start.
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = reserve_addrs(1).remove(0);
    let sm_dir = dir.path().join("sm").display().to_string();
    let (status, stderr) = diskv_as(
        &logs,
        "client-shardmaster",
        &[
            "shardmaster",
            "--me",
            "0",
            "--peers",
            &addr,
            "--dir",
            &sm_dir,
            "--tls-dir",
            &client,
        ],
    );
    assert!(
        status.is_some_and(|s| !s.success()) && stderr.contains("needs a node certificate"),
        "a shardmaster started with a client's certificate: {status:?} {stderr}"
    );

    let replica = cluster.peers(1).remove(0);
    let master = masters.split(',').next().expect("a master").to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for (addr, tag) in [(&replica, PEER), (&replica, PROBE), (&master, PEER)] {
            assert!(
                closed_by_server(&certs.client(), addr, tag).await,
                "{addr} kept a connection for service {tag} from a client's certificate"
            );
        }
        assert!(
            !closed_by_server(&certs.node(), &replica, PEER).await,
            "a node's replica-to-replica connection was closed"
        );
    });
    wait_until(
        Duration::from_secs(10),
        "the replica and the shardmaster log the refusal with the address and the reason",
        || {
            let text = all_logs(&logs);
            let refusals: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("connection refused") && l.contains("role=client"))
                .collect();
            refusals.len() >= 2
                && refusals.iter().all(|l| {
                    l.contains("addr=127.0.0.1:")
                        && l.contains("name=app")
                        && l.contains("may not open")
                })
        },
    );
}
