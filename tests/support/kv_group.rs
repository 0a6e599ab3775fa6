//! One KV replica group as users run it: a `diskv shardmaster` process and `n`
//! `diskv server` processes (gid 1, `--join`), with SIGKILL, SIGSTOP, `--restart`
//! and lost disks (the replica's directory wiped while it is down).

use super::line_client::Client;
use super::process::{diskv_bin, reserve_addrs, Process};
use std::path::PathBuf;
use std::time::Duration;

/// The log line a replica writes once a lost disk is recovered (diskv/src/replica/recovery.rs).
pub const RECOVERED: &str = "recovered from a lost disk; voting again";

/// The log line a replica writes when it halts because a majority lost their disks.
pub const MAJORITY_LOST: &str = "a majority of this group lost their disks";

/// One shardmaster and one replica group (gid 1) of `n` servers.
pub struct Group {
    // Declared first, so the processes are killed (and their logs printed on a
    // panic) before the directory holding the logs is deleted.
    servers: Vec<Option<Process>>,
    master: Option<Process>,
    /// The shardmaster address (`--masters`).
    pub masters: String,
    peers: Vec<String>,
    root: tempfile::TempDir,
    spawns: usize,
    /// Start every replica with `--unreliable`.
    unreliable: bool,
}

impl Group {
    /// Starts a shardmaster and `n` replicas on a reliable network.
    pub fn start(n: usize) -> Group {
        Group::start_with(n, false)
    }

    /// Like [`Group::start`]; `unreliable` starts every replica with `--unreliable`.
    pub fn start_with(n: usize, unreliable: bool) -> Group {
        let root = tempfile::tempdir().expect("tempdir");
        let mut addrs = reserve_addrs(n + 1);
        let masters = addrs.remove(0);
        let mut g = Group {
            servers: (0..n).map(|_| None).collect(),
            master: None,
            masters,
            peers: addrs,
            root,
            spawns: 0,
            unreliable,
        };
        let sm_dir = g.root.path().join("sm");
        g.master = Some(Process::spawn_with(
            "sm0",
            &g.logs(),
            diskv_bin(),
            [
                "shardmaster".to_string(),
                "--me".into(),
                "0".into(),
                "--peers".into(),
                g.masters.clone(),
                "--dir".into(),
                sm_dir.display().to_string(),
                "--shards".into(),
                "4".into(),
            ],
            |c| {
                c.env("RUST_LOG", "info,tarpc=warn");
            },
        ));
        for i in 0..n {
            g.spawn(i, false);
        }
        g
    }

    /// How many replicas the group has.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Where every process writes its logs.
    pub fn logs(&self) -> PathBuf {
        self.root.path().join("logs")
    }

    /// Replica `i`'s directory.
    pub fn dir(&self, i: usize) -> PathBuf {
        self.root.path().join(format!("g{i}"))
    }

    /// Starts replica `i` (again) on its directory; `restart` passes `--restart`.
    pub fn spawn(&mut self, i: usize, restart: bool) {
        assert!(self.servers[i].is_none(), "replica {i} is already running");
        let args = self.server_args(i, restart);
        self.spawns += 1;
        let name = format!("s{i}-{}", self.spawns);
        let p = Process::spawn_with(&name, &self.logs(), diskv_bin(), args, |c| {
            c.env("RUST_LOG", "info,tarpc=warn");
        });
        self.servers[i] = Some(p);
    }

    /// The `diskv server` arguments of replica `i`.
    pub fn server_args(&self, i: usize, restart: bool) -> Vec<String> {
        let mut args = vec![
            "server".to_string(),
            "--gid".into(),
            "1".into(),
            "--masters".into(),
            self.masters.clone(),
            "--peers".into(),
            self.peers.join(","),
            "--me".into(),
            i.to_string(),
            "--dir".into(),
            self.dir(i).display().to_string(),
            "--join".into(),
        ];
        if restart {
            args.push("--restart".into());
        }
        if self.unreliable {
            args.push("--unreliable".into());
        }
        args
    }

    /// SIGKILLs replica `i`; its directory stays as it was.
    pub fn kill9(&mut self, i: usize) {
        let mut p = self.servers[i].take().expect("replica is running");
        p.kill9();
        // Keep nothing: its logs stay on disk under its unique name.
    }

    /// SIGKILLs replica `i` if it runs, then loses its disk: its directory is
    /// replaced by an empty one (as the 6.824 tester's `kill1(.., true)`).
    pub fn lose_disk(&mut self, i: usize) {
        if let Some(mut p) = self.servers[i].take() {
            p.kill9();
        }
        let dir = self.dir(i);
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot wipe {}: {e}", dir.display()));
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot recreate {}: {e}", dir.display()));
    }

    /// Whether replica `i` has a running process.
    pub fn is_up(&self, i: usize) -> bool {
        self.servers[i].is_some()
    }

    /// The running process of replica `i`.
    pub fn server(&mut self, i: usize) -> &mut Process {
        self.servers[i].as_mut().expect("replica is running")
    }

    /// Waits until replica `i` (restarted on an empty directory) logs that it was
    /// admitted as a new incarnation and votes again.
    pub fn wait_recovered(&mut self, i: usize, limit: Duration) {
        let p = self.server(i);
        super::process::wait_until(
            limit,
            &format!("replica {i} recovering its lost disk"),
            || p.stderr().contains(RECOVERED),
        );
    }

    /// SIGSTOPs replica `i`.
    pub fn sigstop(&mut self, i: usize) {
        self.server(i).sigstop();
    }

    /// SIGCONTs replica `i`.
    pub fn sigcont(&mut self, i: usize) {
        self.server(i).sigcont();
    }

    /// A `diskv client` of this cluster.
    pub fn client(&self, name: &str) -> Client {
        Client::spawn(name, &self.masters, &self.logs())
    }
}
