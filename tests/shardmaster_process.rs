//! The shardmaster as users run it: three `diskv shardmaster` processes driven by
//! `diskv admin` processes, with SIGKILL, restarts and invalid arguments.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::process::{diskv_bin, reserve_addrs, run, wait_for, Output, Process};

/// Longest any single admin command may take.
const ADMIN_LIMIT: Duration = Duration::from_secs(60);

/// A shardmaster group of three processes.
struct Masters {
    // Declared first, so the processes are killed (and their logs printed on a
    // panic) before the directory holding the logs is deleted.
    procs: Vec<Option<Process>>,
    addrs: Vec<String>,
    root: tempfile::TempDir,
}

impl Masters {
    fn start() -> Masters {
        let root = tempfile::tempdir().expect("tempdir");
        let mut m = Masters {
            procs: vec![None, None, None],
            addrs: reserve_addrs(3),
            root,
        };
        for i in 0..3 {
            m.spawn(i, Some(10));
        }
        m
    }

    fn dir(&self, i: usize) -> std::path::PathBuf {
        self.root.path().join(format!("sm{i}"))
    }

    /// Starts replica `i` (again) on its directory.
    fn spawn(&mut self, i: usize, shards: Option<usize>) {
        let p = self.launch(i, shards, &format!("sm{i}"));
        self.procs[i] = Some(p);
    }

    fn launch(&self, i: usize, shards: Option<usize>, name: &str) -> Process {
        let mut args = vec![
            "shardmaster".to_string(),
            "--me".into(),
            i.to_string(),
            "--peers".into(),
            self.addrs.join(","),
            "--dir".into(),
            self.dir(i).display().to_string(),
        ];
        if let Some(n) = shards {
            args.extend(["--shards".into(), n.to_string()]);
        }
        Process::spawn_with(
            name,
            &self.root.path().join("logs"),
            diskv_bin(),
            args,
            |c| {
                c.env("RUST_LOG", "info,tarpc=warn");
            },
        )
    }

    fn proc(&mut self, i: usize) -> &mut Process {
        self.procs[i].as_mut().expect("replica is running")
    }

    fn all(&self) -> String {
        self.addrs.join(",")
    }
}

/// Runs `diskv admin --masters MASTERS ARGS...`.
fn admin(masters: &str, args: &[&str]) -> Output {
    let mut all = vec!["admin", "--masters", masters, "--timeout", "20"];
    all.extend_from_slice(args);
    run(diskv_bin(), all, ADMIN_LIMIT)
}

/// Runs an admin command that must succeed.
fn admin_ok(masters: &str, args: &[&str]) -> String {
    let out = admin(masters, args);
    assert!(
        out.success(),
        "admin {args:?} failed ({:?}): {}",
        out.status,
        out.stderr
    );
    out.stdout
}

/// `admin query NUM`: checks the output is exactly one line of the contract's JSON
/// and returns that line.
fn query(masters: &str, num: i64) -> String {
    let stdout = admin_ok(masters, &["query", &num.to_string()]);
    let line = stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("query output does not end with a newline: {stdout:?}"));
    assert!(
        !line.contains('\n'),
        "query printed more than one line: {stdout:?}"
    );
    let v: Value = serde_json::from_str(line).expect("query prints JSON");
    let obj = v.as_object().expect("a JSON object");
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3, "{line}");
    assert!(obj["num"].is_u64(), "{line}");
    assert!(obj["shards"]
        .as_array()
        .is_some_and(|s| s.iter().all(Value::is_u64)));
    let groups = obj["groups"].as_object().expect("groups is an object");
    for (gid, servers) in groups {
        assert!(gid.parse::<u64>().is_ok(), "gid key {gid:?}");
        assert!(servers
            .as_array()
            .is_some_and(|s| s.iter().all(Value::is_string)));
    }
    // Byte for byte the contract's form (field order, no spaces).
    let parsed = shardmaster::Config::from_json(line).expect("a configuration");
    assert_eq!(parsed.to_json(), line);
    line.to_string()
}

fn num_of(line: &str) -> i64 {
    let v: Value = serde_json::from_str(line).expect("JSON");
    v["num"].as_i64().expect("num")
}

fn groups_of(line: &str) -> Vec<u64> {
    let v: Value = serde_json::from_str(line).expect("JSON");
    v["groups"]
        .as_object()
        .expect("groups")
        .keys()
        .map(|k| k.parse().expect("gid"))
        .collect()
}

/// Waits until the group answers a query (start-up, elections).
fn wait_ready(masters: &str) {
    wait_for(Duration::from_secs(60), "the shardmasters answer", || {
        let out = run(
            diskv_bin(),
            ["admin", "--masters", masters, "--timeout", "3", "query"],
            ADMIN_LIMIT,
        );
        out.success().then_some(())
    });
}

/// Every configuration 0..=latest as the masters answer now.
fn history(masters: &str) -> Vec<String> {
    let latest = num_of(&query(masters, -1));
    (0..=latest).map(|n| query(masters, n)).collect()
}

/// An admin command that must fail, mention `needle` on stderr and change nothing.
fn refused(masters: &str, args: &[&str], needle: &str) {
    let before = query(masters, -1);
    let out = admin(masters, args);
    assert!(
        out.status.is_some_and(|s| !s.success()),
        "admin {args:?} should fail: {out:?}"
    );
    assert!(
        out.stderr.contains(needle),
        "admin {args:?}: stderr does not mention {needle:?}: {}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "admin {args:?} printed {:?}",
        out.stdout
    );
    assert_eq!(
        query(masters, -1),
        before,
        "admin {args:?} changed the config"
    );
}

fn exists_nonempty(p: &Path) -> bool {
    p.exists()
        && std::fs::read_dir(p)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
}

#[test]
fn shardmaster_processes_survive_sigkill_and_refuse_bad_admin_commands() {
    let mut m = Masters::start();
    let all = m.all();
    wait_ready(&all);
    assert_eq!(
        query(&all, -1),
        r#"{"num":0,"shards":[0,0,0,0,0,0,0,0,0,0],"groups":{}}"#
    );
    assert!(
        exists_nonempty(&m.dir(0).join("log")),
        "the log lives under --dir"
    );

    let out = admin_ok(
        &all,
        &["join", "1", "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"],
    );
    assert!(out.contains("configuration 1"), "{out}");
    admin_ok(
        &all,
        &["join", "2", "127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203"],
    );
    admin_ok(&all, &["join", "3", "h3a:7301,h3b:7302,h3c:7303"]);
    admin_ok(&all, &["leave", "2"]);
    admin_ok(&all, &["move", "0", "3"]);
    let out = admin_ok(&all, &["move", "0", "3"]);
    assert!(out.contains("nothing changed"), "{out}");
    let before = history(&all);
    assert_eq!(before.len(), 6);
    assert_eq!(
        query(&all, 99),
        before[5],
        "a number past the latest reads the latest"
    );
    assert_eq!(groups_of(&before[5]), vec![1, 3]);

    // Invalid arguments: a clear message, a non-zero exit, nothing changed.
    refused(&all, &["move", "0", "99"], "Join it first");
    refused(&all, &["move", "10", "1"], "shard 10 does not exist");
    refused(&all, &["join", "0", "a:1"], "gid 0 is reserved");
    refused(&all, &["join", "4", "a:1,,b:2"], "is not host:port");
    refused(&all, &["join", "4", "localhost"], "is not host:port");
    refused(
        &all,
        &["join", "5", "127.0.0.1:7101"],
        "already belongs to group 1",
    );
    refused(&all, &["leave", "42"], "not in the latest configuration");
    refused(&all, &["query", "-5"], "invalid");
    refused(&all, &["leave", "notanumber"], "invalid value");

    // SIGKILL one replica; the others go on; it comes back with the same directory.
    m.proc(0).kill9();
    admin_ok(&all, &["join", "4", "127.0.0.1:7401"]);
    m.spawn(0, None);
    let only0 = m.addrs[0].clone();
    wait_ready(&only0);
    let after = history(&only0);
    assert_eq!(
        after[..before.len()],
        before[..],
        "replica 0 answers every old config identically"
    );
    assert_eq!(groups_of(after.last().unwrap()), vec![1, 3, 4]);

    // SIGKILL everyone right after an acknowledged Join: nothing is lost.
    admin_ok(&all, &["join", "6", "127.0.0.1:7601"]);
    let acknowledged = history(&all);
    for i in 0..3 {
        m.proc(i).kill9();
    }
    for i in 0..3 {
        m.spawn(i, None);
    }
    wait_ready(&all);
    assert_eq!(history(&all), acknowledged);
    for i in 0..3 {
        let one = m.addrs[i].clone();
        wait_ready(&one);
        assert_eq!(
            query(&one, -1),
            *acknowledged.last().unwrap(),
            "replica {i}"
        );
    }

    // A different --shards on restart is refused, loudly.
    m.proc(2).kill9();
    let mut wrong = m.launch(2, Some(12), "sm2-wrong-shards");
    let status = wrong
        .wait_exit(Duration::from_secs(20))
        .expect("a replica with a different --shards must exit");
    assert!(!status.success());
    let stderr = wrong.stderr();
    assert!(
        stderr.contains("--shards 10") && stderr.contains("12"),
        "unclear message: {stderr}"
    );
    m.spawn(2, Some(10));
    let only2 = m.addrs[2].clone();
    wait_ready(&only2);

    // SIGTERM: a clean exit with status 0.
    for i in 0..3 {
        m.proc(i).sigterm();
    }
    for i in 0..3 {
        let status = m
            .proc(i)
            .wait_exit(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("replica {i} ignored SIGTERM"));
        assert!(status.success(), "replica {i} exited with {status}");
    }
}

#[test]
fn admin_gives_up_when_no_shardmaster_is_reachable() {
    let addrs = reserve_addrs(2).join(",");
    let out = run(
        diskv_bin(),
        [
            "admin",
            "--masters",
            &addrs,
            "--timeout",
            "1",
            "join",
            "1",
            "a:1",
        ],
        ADMIN_LIMIT,
    );
    assert!(out.status.is_some_and(|s| !s.success()), "{out:?}");
    assert!(
        out.stderr.contains("no shardmaster reachable at"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}
