//! Several replica groups as users run them: one `diskv shardmaster` process, groups
//! of `diskv server` processes that `--join`, `diskv admin leave`, and `diskv client`
//! processes — the 6.824 Lab 4 / MadKV P2 sharding scenarios with real processes.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::line_client::{wait_serving, Client};
use support::process::{diskv_bin, reserve_addrs, run, wait_for, Process};

const NSHARDS: usize = 10;

/// One shardmaster process; the groups are started separately.
struct Cluster {
    // Declared first, so the processes are killed before the logs directory goes.
    groups: Vec<(u64, Vec<Option<Process>>)>,
    master: Option<Process>,
    masters: String,
    root: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let masters = reserve_addrs(1).remove(0);
        let mut c = Cluster {
            groups: Vec::new(),
            master: None,
            masters,
            root,
        };
        let sm_dir = c.root.path().join("sm");
        c.master = Some(Process::spawn_with(
            "sm0",
            &c.logs(),
            diskv_bin(),
            [
                "shardmaster".to_string(),
                "--me".into(),
                "0".into(),
                "--peers".into(),
                c.masters.clone(),
                "--dir".into(),
                sm_dir.display().to_string(),
                "--shards".into(),
                NSHARDS.to_string(),
            ],
            |c| {
                c.env("RUST_LOG", "info,tarpc=warn");
            },
        ));
        c
    }

    fn logs(&self) -> PathBuf {
        self.root.path().join("logs")
    }

    /// Starts group `gid` of `n` replicas, each with `--join`.
    fn start_group(&mut self, gid: u64, n: usize) {
        let peers = reserve_addrs(n);
        let mut procs = Vec::new();
        for i in 0..n {
            let dir = self.root.path().join(format!("g{gid}-{i}"));
            let args = vec![
                "server".to_string(),
                "--gid".into(),
                gid.to_string(),
                "--masters".into(),
                self.masters.clone(),
                "--peers".into(),
                peers.join(","),
                "--me".into(),
                i.to_string(),
                "--dir".into(),
                dir.display().to_string(),
                "--join".into(),
            ];
            let name = format!("g{gid}s{i}");
            procs.push(Some(Process::spawn_with(
                &name,
                &self.logs(),
                diskv_bin(),
                args,
                |c| {
                    c.env("RUST_LOG", "info,tarpc=warn");
                },
            )));
        }
        self.groups.push((gid, procs));
    }

    fn group(&mut self, gid: u64) -> &mut Vec<Option<Process>> {
        &mut self
            .groups
            .iter_mut()
            .find(|(g, _)| *g == gid)
            .expect("group started")
            .1
    }

    fn client(&self, name: &str) -> Client {
        Client::spawn(name, &self.masters, &self.logs())
    }

    /// The latest configuration, as `admin query` prints it.
    fn query(&self) -> Option<shardmaster::Config> {
        let out = run(
            diskv_bin(),
            [
                "admin",
                "--masters",
                &self.masters,
                "--timeout",
                "5",
                "query",
            ],
            Duration::from_secs(20),
        );
        if !out.success() {
            return None;
        }
        shardmaster::Config::from_json(out.stdout.trim_end()).ok()
    }

    fn wait_groups(&self, want: &[u64]) -> shardmaster::Config {
        wait_for(
            Duration::from_secs(30),
            &format!("the config has exactly groups {want:?}"),
            || {
                let c = self.query()?;
                let have: Vec<u64> = c.groups.keys().copied().collect();
                (have == want && c.shards.iter().all(|g| want.contains(g))).then_some(c)
            },
        )
    }

    fn admin_ok(&self, args: &[&str]) {
        let mut all = vec!["admin", "--masters", &self.masters, "--timeout", "20"];
        all.extend_from_slice(args);
        let out = run(diskv_bin(), all, Duration::from_secs(40));
        assert!(
            out.success(),
            "admin {args:?} failed ({:?}): {}",
            out.status,
            out.stderr
        );
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn joins_and_leaves_keep_every_key() {
    let t0 = Instant::now();
    let mut cl = Cluster::start();
    cl.start_group(1, 3);
    cl.wait_groups(&[1]);
    let mut c = cl.client("writer");
    wait_serving(&mut c);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert_eq!(
            c.req(&format!("PUT {k} v{k}")),
            format!("PUT {k} not_found")
        );
    }

    cl.start_group(2, 3);
    cl.start_group(3, 3);
    cl.wait_groups(&[1, 2, 3]);
    for k in &keys {
        assert_eq!(
            c.req(&format!("APPEND {k} +a")),
            format!("APPEND {k} found")
        );
    }

    let before = cl.query().expect("query");
    let on1 = before.shards_of(1);
    cl.admin_ok(&["leave", "1"]);
    cl.wait_groups(&[2, 3]);
    // As 6.824's "allow time for shards to transfer", but exact: group 1 deletes a
    // shard only once its new owner has installed it, so wait for every deletion.
    wait_for(
        Duration::from_secs(30),
        "group 1 handed over all its shards",
        || {
            let logs: String = cl
                .group(1)
                .iter()
                .map(|p| strip_ansi(&p.as_ref().expect("running").stderr()))
                .collect();
            on1.iter()
                .all(|s| {
                    logs.lines().any(|l| {
                        l.contains("deleted handed-over shard")
                            && l.contains(&format!(" shard={s} "))
                    })
                })
                .then_some(())
        },
    );
    for k in &keys {
        assert_eq!(c.req(&format!("GET {k}")), format!("GET {k} v{k}+a"));
    }

    for p in cl.group(1).iter_mut() {
        p.take().expect("running").kill9();
    }
    for k in &keys {
        eprintln!("after kill: writer GET {k}");
        assert_eq!(c.req(&format!("GET {k}")), format!("GET {k} v{k}+a"));
    }
    let mut c2 = cl.client("reader");
    for k in &keys {
        eprintln!("after kill: reader GET {k}");
        assert_eq!(c2.req(&format!("GET {k}")), format!("GET {k} v{k}+a"));
    }
    eprintln!("joins_and_leaves_keep_every_key: {:?}", t0.elapsed());
}

#[test]
fn a_stopped_group_blocks_only_its_shards() {
    let t0 = Instant::now();
    let mut cl = Cluster::start();
    for gid in 1..=3 {
        cl.start_group(gid, 1);
    }
    let cfg = cl.wait_groups(&[1, 2, 3]);
    let mut c = cl.client("writer");
    wait_serving(&mut c);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert_eq!(
            c.req(&format!("PUT {k} v{k}")),
            format!("PUT {k} not_found")
        );
    }
    let owner = |k: &str| cfg.shards[shardmaster::shard_of(k.as_bytes(), NSHARDS)];
    // The config must not have changed since (no joins/leaves after it).
    assert_eq!(cl.query().expect("query").num, cfg.num);
    let on3 = keys
        .iter()
        .find(|k| owner(k) == 3)
        .expect("a key on group 3")
        .clone();
    let others: Vec<&String> = keys.iter().filter(|k| owner(k) != 3).collect();
    assert!(others.iter().any(|k| owner(k) == 1) && others.iter().any(|k| owner(k) == 2));
    assert_eq!(
        c.req(&format!("PUT {on3} latest")),
        format!("PUT {on3} found")
    );

    cl.group(3)[0].as_mut().expect("running").sigstop();
    let mut blocked = cl.client("blocked");
    blocked.send(&format!("GET {on3}"));
    assert_eq!(
        blocked.try_recv(Duration::from_secs(2)),
        None,
        "a GET on a stopped group's shard answered"
    );
    for k in &others {
        assert_eq!(c.req(&format!("GET {k}")), format!("GET {k} v{k}"));
    }
    cl.group(3)[0].as_mut().expect("running").sigcont();
    assert_eq!(blocked.recv(), format!("GET {on3} latest"));
    eprintln!("a_stopped_group_blocks_only_its_shards: {:?}", t0.elapsed());
}
