//! What `diskv cluster` shows and where it puts its processes (docs/REFERENCE.md
//! §5, issue #15 items 7 and 2): with its output piped, the launcher prints no
//! ANSI escape and announces each child once (its own log goes to
//! DIR/logs/launcher.log), while `RUST_LOG` still brings tracing to stderr; and a
//! cluster advertised under a host name serves clients that know it by that name,
//! the shardmaster recording its groups under it.

mod support;

use std::path::Path;
use std::time::Duration;
use support::http::{must_put, value};
use support::launcher::{self, interrupt, Orphans};
use support::process::{diskv_bin, reserve_addrs, run, run_with_input};

/// One shardmaster and one group of one replica: the fastest whole cluster.
const SMALL: [&str; 6] = ["--groups", "1", "--replicas", "1", "--masters", "1"];

/// The children of [`SMALL`].
const CHILDREN: [&str; 2] = ["shardmaster-0", "group-1-replica-0"];

/// Fails if `text` (`what` of the launcher) holds an ESC byte.
fn assert_no_escape(what: &str, text: &str) {
    assert!(
        !text.contains('\x1b'),
        "an ANSI escape in the launcher's {what}:\n{text:?}"
    );
}

#[test]
fn a_piped_launcher_prints_each_child_once_and_no_escape_codes() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cluster");
    let logs = root.path().join("logs");
    let http = reserve_addrs(1).remove(0);
    let quiet = |c: &mut std::process::Command| {
        c.env_remove("RUST_LOG").env_remove("NO_COLOR");
    };
    let (mut p, pids) = launcher::launch_with(&dir, &http, &logs, "quiet", &SMALL, quiet);
    let _orphans = Orphans(pids.clone());
    assert_eq!(pids.len(), 2, "{}", p.stdout());
    interrupt(&mut p, &pids);
    let (stdout, stderr) = (p.stdout(), p.stderr());
    assert_no_escape("stdout", &stdout);
    assert_no_escape("stderr", &stderr);
    for name in CHILDREN {
        let lines = stdout
            .lines()
            .chain(stderr.lines())
            .filter(|l| l.contains(name))
            .count();
        assert_eq!(
            lines, 1,
            "{name} announced {lines} times:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        !stderr.contains(" INFO "),
        "INFO tracing on stderr without RUST_LOG:\n{stderr}"
    );
    // The rest went to the launcher's log, next to its children's.
    let launcher_log = dir.join("logs").join("launcher.log");
    assert!(
        stdout.contains(&format!("log {}\n", launcher_log.display())),
        "{stdout}"
    );
    let log = std::fs::read_to_string(&launcher_log).unwrap();
    assert_no_escape("log file", &log);
    assert!(log.contains("name=shardmaster-0"), "{log}");

    // RUST_LOG decides what stderr shows, as before; still no escape codes.
    let http = reserve_addrs(1).remove(0);
    let verbose = |c: &mut std::process::Command| {
        c.env("RUST_LOG", "info").env_remove("NO_COLOR");
    };
    let (mut p, pids) = launcher::launch_with(&dir, &http, &logs, "verbose", &[], verbose);
    let _orphans2 = Orphans(pids.clone());
    interrupt(&mut p, &pids);
    let stderr = p.stderr();
    assert_no_escape("stderr under RUST_LOG", &stderr);
    for name in CHILDREN {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(" INFO ") && l.contains(&format!("name={name}"))),
            "no INFO tracing line about {name} under RUST_LOG=info:\n{stderr}"
        );
    }
}

/// The addresses `DIR/cluster.json` records: the shardmasters', the replicas'.
fn recorded(dir: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(dir.join("cluster.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    (list(&v["masters"]), list(&v["groups"][0]["replicas"]))
}

#[test]
fn a_cluster_advertised_by_host_name_serves_under_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cluster");
    let logs = root.path().join("logs");
    let http = reserve_addrs(1).remove(0);
    let mut args = SMALL.to_vec();
    args.extend(["--advertise-host", "localhost"]);
    let (mut p, pids) = launcher::launch(&dir, &http, &logs, "advertised", &args);
    let _orphans = Orphans(pids.clone());
    assert_eq!(pids.len(), 2, "{}", p.stdout());
    let (masters, replicas) = recorded(&dir);
    assert!(masters[0].starts_with("localhost:"), "{masters:?}");
    let port = replicas[0].strip_prefix("localhost:").unwrap();
    // Bound on loopback (--listen-host's default), advertised by name.
    assert!(
        p.stdout().contains(&format!(
            "listening on 127.0.0.1:{port} as localhost:{port}, pid"
        )),
        "{}",
        p.stdout()
    );

    must_put(&http, "via:http", "ok");
    assert_eq!(value(&http, "via:http").as_deref(), Some("ok"));
    let tls = dir.join("tls").join("client").display().to_string();
    let client = run_with_input(
        diskv_bin(),
        ["client", "--masters", &masters[0], "--tls-dir", &tls],
        Some(b"PUT a 1\nGET a\nGET via:http\nSTOP\n".to_vec()),
        Duration::from_secs(30),
    );
    assert!(client.success(), "{client:?}");
    let answers: Vec<&str> = client.stdout.lines().collect();
    assert_eq!(
        answers,
        ["PUT a not_found", "GET a 1", "GET via:http ok", "STOP"],
        "{}",
        client.stderr
    );
    let config = run(
        diskv_bin(),
        [
            "admin",
            "--masters",
            &masters[0],
            "--tls-dir",
            &tls,
            "query",
        ],
        Duration::from_secs(30),
    );
    assert!(config.success(), "{config:?}");
    assert!(
        config
            .stdout
            .contains(&format!("\"1\":[\"{}\"]", replicas[0])),
        "the shardmaster should record group 1 at {}:\n{}",
        replicas[0],
        config.stdout
    );
    interrupt(&mut p, &pids);
}
