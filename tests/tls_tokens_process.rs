//! Security with real processes (issue #14, docs/SECURITY.md), at the front
//! doors: `diskv serve` with mutual TLS inside (the test identity of
//! `support::tls`, handed to it through `DISKV_TLS_DIR`) serves HTTPS (curl)
//! and the Redis protocol over TLS (redis-cli) with bearer tokens and roles, and
//! `--tokens` leaves no door open. Replica-to-replica TLS is
//! `tests/tls_process.rs`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::process::{diskv_bin, reserve_addrs, Process};
use support::tls::{certs, diskv_ok};

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
