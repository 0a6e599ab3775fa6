//! Security with real processes (issue #14, docs/SECURITY.md): every process of
//! this test binary runs with mutual TLS — the CA and the identity are made once
//! with `diskv certs` and handed to every child through `DISKV_TLS_DIR` — so the
//! lost-disk, sharding and kill -9 paths are shown to work over TLS; strangers
//! (plaintext, another CA's certificate, another cluster's replica) are refused
//! and say why; a client's certificate opens client connections only; the HTTP
//! API serves HTTPS (curl) with bearer tokens.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::cluster::ShardCluster;
use support::kv_group::Group;
use support::line_client::wait_serving;
use support::process::{diskv_bin, reserve_addrs, run, wait_until, Process};

/// The directory holding every certificate of this test binary.
struct Certs {
    root: tempfile::TempDir,
}

impl Certs {
    /// The cluster's CA directory.
    fn ca(&self) -> PathBuf {
        self.root.path().join("ca")
    }
    /// The identity every process of the cluster uses.
    fn node(&self) -> PathBuf {
        self.root.path().join("node")
    }
    /// Another cluster's CA and a node of it.
    fn stranger(&self) -> PathBuf {
        self.root.path().join("other").join("node")
    }
    /// A client's identity of the cluster's CA (`--role client`).
    fn client(&self) -> PathBuf {
        self.root.path().join("client")
    }
}

/// Runs `diskv ARGS` and asserts that it succeeded.
fn diskv_ok(args: &[&str]) -> String {
    let out = run(diskv_bin(), args, Duration::from_secs(30));
    assert!(
        out.success(),
        "diskv {args:?}: {:?} {}",
        out.status,
        out.stderr
    );
    out.stdout
}

/// Makes the certificates once (with the CLI) and sets `DISKV_TLS_DIR`, which
/// every child of this test binary inherits. Every test calls it first, before
/// starting any process.
fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let certs = Certs {
            root: tempfile::tempdir().expect("tempdir"),
        };
        let ca = certs.ca().display().to_string();
        let node = certs.node().display().to_string();
        diskv_ok(&["certs", "init", "--dir", &ca]);
        diskv_ok(&[
            "certs",
            "issue",
            "--ca",
            &ca,
            "--name",
            "node",
            "--host",
            "127.0.0.1,localhost",
            "--out",
            &node,
        ]);
        let client = certs.client().display().to_string();
        let issued = diskv_ok(&[
            "certs", "issue", "--ca", &ca, "--name", "app", "--role", "client", "--out", &client,
        ]);
        assert!(
            issued.starts_with("client certificate for app "),
            "{issued}"
        );
        let other = certs.root.path().join("other").display().to_string();
        let stranger = certs.stranger().display().to_string();
        diskv_ok(&["certs", "init", "--dir", &other]);
        diskv_ok(&[
            "certs",
            "issue",
            "--ca",
            &other,
            "--name",
            "node",
            "--host",
            "127.0.0.1",
            "--out",
            &stranger,
        ]);
        // Set before any child starts; every test waits here until it is.
        std::env::set_var("DISKV_TLS_DIR", certs.node());
        certs
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Every log line of the directory `logs`.
fn all_logs(logs: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(logs).into_iter().flatten().flatten() {
        text.push_str(&read(&entry.path()));
    }
    support::cluster::strip_ansi(&text)
}

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

/// A token file in `dir` with a write token `app` and a read-only token
/// `dash`, made with the CLI: (file, app's token, dash's token).
fn token_file(dir: &Path) -> (String, String, String) {
    let tokens = dir.join("tokens").display().to_string();
    let writer = diskv_ok(&["token", "add", "--file", &tokens, "app"]);
    let reader = diskv_ok(&["token", "add", "--file", &tokens, "dash", "--read-only"]);
    (tokens, writer.trim().to_string(), reader.trim().to_string())
}

/// `diskv serve ARGS --data-dir DIR/data`, once it printed `ready`.
fn start_serve(dir: &Path, args: &[&str], ready: &str) -> Process {
    let data = dir.join("data").display().to_string();
    let mut all = vec!["serve", "--data-dir", &data];
    all.extend_from_slice(args);
    let mut serve = Process::spawn("serve", &dir.join("logs"), diskv_bin(), all);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !serve.stdout().contains(ready) {
        assert!(
            Instant::now() < deadline && serve.is_running(),
            "serve did not start: {}",
            serve.stderr_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve
}

/// curl against `url` with `args`: (status code, body). Status 0: no HTTP answer.
fn curl(args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl (apt-get install curl; .ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `diskv serve` with `--http-tls` and `--tokens`: HTTPS with curl `--cacert`;
/// a write token writes, a read-only one reads and gets 403 on writes, no token
/// or a revoked one gets 401, `/health` stays open, plain HTTP gets nothing.
#[test]
fn https_with_tokens_and_roles() {
    let certs = certs();
    let dir = tempfile::tempdir().expect("tempdir");
    let (tokens, writer, reader) = token_file(dir.path());
    assert_eq!(
        diskv_ok(&["token", "list", "--file", &tokens]),
        "app write\ndash read\n"
    );
    let listen = reserve_addrs(1).remove(0);
    let mut serve = start_serve(
        dir.path(),
        &["--listen", &listen, "--tokens", &tokens, "--http-tls"],
        "Server listening",
    );
    let ca = certs.node().join("ca.crt").display().to_string();
    let url = |path: &str| format!("https://{listen}{path}");
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let tls = ["--cacert", ca.as_str()];

    assert_eq!(curl(&tls, &url("/health")).0, 200, "/health needs no token");
    assert_eq!(
        curl(
            &[&tls[..], &["-X", "PUT", "-d", "v1", "-H", &bearer(&writer)]].concat(),
            &url("/kv/a")
        )
        .0,
        200
    );
    assert_eq!(
        curl(
            &[&tls[..], &["-H", &bearer(&reader)]].concat(),
            &url("/kv/a")
        ),
        (200, "v1".to_string())
    );
    let (code, body) = curl(
        &[&tls[..], &["-X", "PUT", "-d", "v2", "-H", &bearer(&reader)]].concat(),
        &url("/kv/a"),
    );
    assert_eq!((code, body.trim()), (403, "token 'dash' is read-only"));
    let (code, body) = curl(&tls, &url("/kv/a"));
    assert_eq!(code, 401, "no token: {body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    assert_eq!(
        curl(&tls, &url("/metrics")).0,
        401,
        "/metrics is protected by default"
    );
    assert_eq!(
        curl(
            &[&tls[..], &["-H", &bearer("dkv_guess")]].concat(),
            &url("/kv/a")
        )
        .0,
        401
    );

    diskv_ok(&["token", "revoke", "--file", &tokens, "app"]);
    let (code, body) = curl(
        &[&tls[..], &["-X", "PUT", "-d", "v3", "-H", &bearer(&writer)]].concat(),
        &url("/kv/a"),
    );
    assert_eq!((code, body.trim()), (401, "unknown or revoked token"));
    assert_eq!(
        curl(
            &[&tls[..], &["-H", &bearer(&reader)]].concat(),
            &url("/kv/a")
        ),
        (200, "v1".to_string())
    );

    assert_eq!(
        curl(&[], &format!("http://{listen}/health")).0,
        0,
        "plain HTTP answered on the HTTPS port"
    );
    assert_eq!(
        curl(&[], &url("/health")).0,
        0,
        "curl trusted a certificate without --cacert"
    );
    serve.sigterm();
    assert!(serve
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
}

/// redis-cli ARGS against `port`; its stdout, trimmed, then its stderr if any.
fn redis_cli(port: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", port, "--no-auth-warning"])
        .args(args)
        .output()
        .expect("redis-cli (apt-get install redis-tools; .ci/run installs it)");
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        text.push_str(&format!(" [stderr: {}]", stderr.trim()));
    }
    text
}

/// `diskv serve --resp --resp-tls --tokens`: redis-cli over TLS must AUTH;
/// a read-only token reads and gets NOPERM on writes; plaintext gets nothing.
#[test]
fn redis_protocol_over_tls_with_tokens() {
    let certs = certs();
    if Command::new("redis-cli").arg("--version").output().is_err() {
        eprintln!("skipped: redis-cli is not installed (apt-get install redis-tools)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (tokens, writer, reader) = token_file(dir.path());
    let addrs = reserve_addrs(2);
    let mut serve = start_serve(
        dir.path(),
        &[
            "--listen",
            &addrs[0],
            "--resp",
            &addrs[1],
            "--tokens",
            &tokens,
            "--resp-tls",
        ],
        "Redis protocol listening",
    );
    let port = addrs[1].rsplit_once(':').expect("port").1;
    let ca = certs.node().join("ca.crt").display().to_string();
    let tls = ["--tls", "--cacert", ca.as_str()];
    assert_eq!(
        redis_cli(port, &[&tls[..], &["GET", "k"]].concat()),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        redis_cli(
            port,
            &[&tls[..], &["-a", &writer, "SET", "k", "v"]].concat()
        ),
        "OK"
    );
    assert_eq!(
        redis_cli(port, &[&tls[..], &["-a", &reader, "GET", "k"]].concat()),
        "v"
    );
    assert!(
        redis_cli(port, &[&tls[..], &["-a", &reader, "DEL", "k"]].concat())
            .starts_with("NOPERM token 'dash' is read-only"),
        "a read-only token deleted"
    );
    assert!(
        redis_cli(port, &[&tls[..], &["-a", "dkv_guess", "GET", "k"]].concat())
            .contains("WRONGPASS")
    );
    let plain = redis_cli(port, &["-a", &writer, "GET", "k"]);
    assert!(
        !plain.starts_with('v'),
        "plaintext answered on the TLS port: {plain}"
    );
    serve.sigterm();
    assert!(serve
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
}

/// One RESP command over a fresh connection; the first reply line ("" if the
/// connection gave none).
fn resp_call(addr: &str, args: &[&str]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    if s.write_all(cmd.as_bytes()).is_err() {
        return String::new();
    }
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    line.trim_end().to_string()
}

/// Attack on issue #14 (docs/attacks/tls-auth.md finding 1): `--tokens` must
/// not leave a door open. With `--resp`, the Redis protocol front door shares
/// the store and had no token check at all: anyone who reached it wrote and
/// read every key, and emptied the store, while the HTTP API answered 401. The
/// node must either refuse to start or refuse the command without AUTH.
#[test]
fn attack_tokens_leave_no_door_open_with_resp() {
    certs();
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens").display().to_string();
    let writer = diskv_ok(&["token", "add", "--file", &tokens, "app"])
        .trim()
        .to_string();
    let addrs = reserve_addrs(2);
    let (listen, resp) = (addrs[0].clone(), addrs[1].clone());
    let data = dir.path().join("data").display().to_string();
    let mut serve = Process::spawn(
        "serve",
        &dir.path().join("logs"),
        diskv_bin(),
        [
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            &data,
            "--tokens",
            &tokens,
            "--resp",
            &resp,
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !serve.stdout().contains("Redis protocol listening") {
        if !serve.is_running() {
            // Refusing to start is a fix: say why.
            let stderr = support::cluster::strip_ansi(&serve.stderr());
            assert!(
                stderr.contains("--resp") && stderr.contains("--tokens"),
                "serve exited without naming --tokens and --resp: {stderr}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not start: {}",
            serve.stderr_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let set = resp_call(&resp, &["SET", "k", "from-resp"]);
    let get = resp_call(&resp, &["GET", "k"]);
    let flush = resp_call(&resp, &["FLUSHALL"]);
    let http = curl(
        &["-H", &format!("Authorization: Bearer {writer}")],
        &format!("http://{listen}/kv/k"),
    );
    serve.kill9();
    assert!(
        !set.starts_with('+') && !get.starts_with('$') && !flush.starts_with('+'),
        "the Redis door served commands without a token: SET {set:?}, GET {get:?}, FLUSHALL {flush:?} (HTTP with the token: {http:?})"
    );
}
