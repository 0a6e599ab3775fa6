//! A sharded cluster of real processes for the sharding tests: one `diskv
//! shardmaster`, replica groups of `diskv server` processes started with `--join`,
//! `diskv admin` for Join / Leave / Move / Query, and `diskv client` processes.
//!
//! Replicas are killed with SIGKILL and restarted with `--restart` on the same
//! directory; every spawn gets its own log files (`g<G>r<I>-<N>.stderr.log`), so a
//! group's whole history stays readable for [`ShardCluster::wait_settled`].

use super::line_client::Client;
use super::process::{diskv_bin, reserve_addrs, run, wait_for, wait_until, Output, Process};
use shardmaster::Config;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// One replica group: its addresses and its running replicas.
struct Group {
    peers: Vec<String>,
    replicas: Vec<Option<Process>>,
    unreliable: bool,
}

/// How a replica process starts.
#[derive(Clone, Copy)]
enum Start {
    /// The group's first start: `--join`.
    Join,
    /// On its own directory again: `--restart`.
    Restart,
    /// On an empty directory, claiming a seat an operator made for it.
    Claim,
}

/// One shardmaster and any number of replica groups, each a set of processes.
pub struct ShardCluster {
    // Declared first, so the processes are killed (and their logs printed on a
    // panic) before the directory holding the logs is deleted.
    groups: BTreeMap<u64, Group>,
    master: Option<Process>,
    /// The shardmaster's address (`--masters`).
    pub masters: String,
    /// Shards of the cluster.
    pub nshards: usize,
    spawns: usize,
    /// Configurations already fetched (they never change).
    configs: RefCell<BTreeMap<u64, Config>>,
    root: tempfile::TempDir,
}

/// Removes ANSI colour codes from a log text.
pub fn strip_ansi(s: &str) -> String {
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

/// The value of `name=` in a structured log line, if present.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let pat = format!(" {name}=");
    let at = line.find(&pat)? + pat.len();
    line[at..].split_whitespace().next()
}

impl ShardCluster {
    /// Starts the shardmaster of a cluster of `nshards` shards; no group yet.
    pub fn start(nshards: usize) -> ShardCluster {
        let root = tempfile::tempdir().expect("tempdir");
        let masters = reserve_addrs(1).remove(0);
        let mut c = ShardCluster {
            groups: BTreeMap::new(),
            master: None,
            masters,
            nshards,
            spawns: 0,
            configs: RefCell::new(BTreeMap::new()),
            root,
        };
        let sm_dir = c.root.path().join("sm");
        let args = [
            "shardmaster".to_string(),
            "--me".into(),
            "0".into(),
            "--peers".into(),
            c.masters.clone(),
            "--dir".into(),
            sm_dir.display().to_string(),
            "--shards".into(),
            nshards.to_string(),
        ];
        c.master = Some(Process::spawn_with(
            "sm0",
            &c.logs(),
            diskv_bin(),
            args,
            |cmd| {
                cmd.env("RUST_LOG", "info,tarpc=warn");
            },
        ));
        c
    }

    /// Where every process's logs go.
    pub fn logs(&self) -> PathBuf {
        self.root.path().join("logs")
    }

    /// Starts group `gid` of `n` replicas, each with `--join` (and `--unreliable`
    /// if asked).
    pub fn start_group(&mut self, gid: u64, n: usize, unreliable: bool) {
        let group = Group {
            peers: reserve_addrs(n),
            replicas: (0..n).map(|_| None).collect(),
            unreliable,
        };
        self.groups.insert(gid, group);
        for i in 0..n {
            self.spawn(gid, i, Start::Join);
        }
    }

    /// Starts a process for seat `i` of group `gid` at `addr` on an empty
    /// directory (a new machine): a seat an operator added or moved there
    /// (`diskv admin replica add|replace`), which the process claims the way a
    /// replica that lost its disk rejoins. The seat's old process, if any, must
    /// be stopped first.
    pub fn start_seat(&mut self, gid: u64, i: usize, addr: &str) {
        let g = self.groups.get_mut(&gid).expect("group started");
        if i == g.peers.len() {
            g.peers.push(addr.to_string());
            g.replicas.push(None);
        }
        g.peers[i] = addr.to_string();
        let dir = self.replica_dir(gid, i);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("wipe the seat's old directory");
        }
        self.spawn(gid, i, Start::Claim);
    }

    /// A cluster of `nshards` shards whose group 1 of `n` replicas has joined,
    /// and a line client it serves (named `client`).
    pub fn serving_group_1(nshards: usize, n: usize, client: &str) -> (ShardCluster, Client) {
        let mut c = ShardCluster::start(nshards);
        c.start_group(1, n, false);
        c.wait_started(1);
        c.wait_groups(&[1]);
        let mut client = c.client(client);
        super::line_client::wait_serving(&mut client);
        (c, client)
    }

    /// Waits until every replica of group `gid` has decided how to start (its
    /// identity record is written). A brand-new group starts fresh only once every
    /// replica answered its peers' probes, so a replica killed before that leaves the
    /// others waiting (see ARCHITECTURE.md, "Disk-loss recovery").
    pub fn wait_started(&self, gid: u64) {
        let n = self.groups[&gid].replicas.len();
        wait_until(
            Duration::from_secs(60),
            "every replica wrote its identity",
            || (0..n).all(|i| self.replica_dir(gid, i).join("identity").exists()),
        );
    }

    /// The replica addresses of group `gid`.
    pub fn peers(&self, gid: u64) -> Vec<String> {
        self.groups[&gid].peers.clone()
    }

    /// The directory of replica `i` of group `gid`.
    pub fn replica_dir(&self, gid: u64, i: usize) -> PathBuf {
        self.root.path().join(format!("g{gid}-{i}"))
    }

    fn spawn(&mut self, gid: u64, i: usize, start: Start) {
        self.spawns += 1;
        let dir = self.replica_dir(gid, i);
        let logs = self.logs();
        let masters = self.masters.clone();
        let g = self.groups.get_mut(&gid).expect("group started");
        assert!(g.replicas[i].is_none(), "replica {i} of group {gid} runs");
        let mut args = vec![
            "server".to_string(),
            "--gid".into(),
            gid.to_string(),
            "--masters".into(),
            masters,
            "--peers".into(),
            g.peers.join(","),
            "--me".into(),
            i.to_string(),
            "--dir".into(),
            dir.display().to_string(),
        ];
        // A restarted replica does not join: its group joined at first start, and a
        // test may have made it leave since.
        match start {
            Start::Join => args.push("--join".into()),
            Start::Restart => args.push("--restart".into()),
            Start::Claim => {}
        }
        if g.unreliable {
            args.push("--unreliable".into());
        }
        let name = format!("g{gid}r{i}-{}", self.spawns);
        g.replicas[i] = Some(Process::spawn_with(&name, &logs, diskv_bin(), args, |c| {
            c.env("RUST_LOG", "info,tarpc=warn");
        }));
    }

    /// SIGKILLs replica `i` of group `gid`.
    pub fn kill9(&mut self, gid: u64, i: usize) {
        let g = self.groups.get_mut(&gid).expect("group started");
        g.replicas[i].take().expect("replica is running").kill9();
    }

    /// Restarts replica `i` of group `gid` on its directory, with `--restart`.
    pub fn restart(&mut self, gid: u64, i: usize) {
        self.spawn(gid, i, Start::Restart);
    }

    /// SIGSTOPs replica `i` of group `gid` (it keeps its ports, answers nothing).
    pub fn sigstop(&mut self, gid: u64, i: usize) {
        self.replica(gid, i).sigstop();
    }

    /// SIGCONTs replica `i` of group `gid`.
    pub fn sigcont(&mut self, gid: u64, i: usize) {
        self.replica(gid, i).sigcont();
    }

    fn replica(&mut self, gid: u64, i: usize) -> &mut Process {
        let g = self.groups.get_mut(&gid).expect("group started");
        g.replicas[i].as_mut().expect("replica is running")
    }

    /// Whether replica `i` of group `gid` runs.
    pub fn is_up(&self, gid: u64, i: usize) -> bool {
        self.groups[&gid].replicas[i].is_some()
    }

    /// Replica count of group `gid`.
    pub fn size(&self, gid: u64) -> usize {
        self.groups[&gid].replicas.len()
    }

    /// SIGKILLs every running replica of group `gid`.
    pub fn kill_group(&mut self, gid: u64) {
        for i in 0..self.size(gid) {
            if self.is_up(gid, i) {
                self.kill9(gid, i);
            }
        }
    }

    /// Restarts every replica of group `gid` that is down.
    pub fn restart_group(&mut self, gid: u64) {
        for i in 0..self.size(gid) {
            if !self.is_up(gid, i) {
                self.restart(gid, i);
            }
        }
    }

    /// A line-protocol client that knows only the shardmaster.
    pub fn client(&self, name: &str) -> Client {
        Client::spawn(name, &self.masters, &self.logs())
    }

    /// Runs `diskv admin ARGS` against the shardmaster.
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut all = vec!["admin", "--masters", &self.masters, "--timeout", "20"];
        all.extend_from_slice(args);
        run(diskv_bin(), all, Duration::from_secs(40))
    }

    /// Runs `diskv admin ARGS` and asserts that it succeeded.
    pub fn admin_ok(&self, args: &[&str]) {
        let out = self.admin(args);
        assert!(
            out.success(),
            "admin {args:?} failed ({:?}): {}",
            out.status,
            out.stderr
        );
    }

    /// Runs `diskv admin ARGS`, asserts that it succeeded, and returns its stdout.
    pub fn admin_out(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.success(),
            "admin {args:?} failed ({:?}): {}{}",
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// `admin replica list GID`: one line per seat, `index addr Voter|Learner|Removed`.
    pub fn seats(&self, gid: u64) -> String {
        self.admin_out(&["replica", "list", &gid.to_string()])
    }

    /// Waits until seat `i` of group `gid` is claimed by its process (the list
    /// no longer says vacant).
    pub fn wait_claimed(&self, gid: u64, i: usize) {
        let prefix = format!("{i}\t");
        wait_until(
            Duration::from_secs(60),
            "the new process claims its seat",
            || {
                self.seats(gid)
                    .lines()
                    .any(|l| l.starts_with(&prefix) && !l.contains("vacant"))
            },
        );
    }

    /// Joins group `gid` (already started) again after it left.
    pub fn join(&self, gid: u64) {
        let peers = self.peers(gid).join(",");
        self.admin_ok(&["join", &gid.to_string(), &peers]);
    }

    /// Asks the shardmaster to move `shard` to group `gid`.
    pub fn move_shard(&self, shard: usize, gid: u64) {
        self.admin_ok(&["move", &shard.to_string(), &gid.to_string()]);
    }

    /// Configuration `num` (-1: the latest), as `admin query` prints it.
    pub fn query_num(&self, num: i64) -> Option<Config> {
        if let Some(c) = self.configs.borrow().get(&(num as u64)) {
            if num >= 0 {
                return Some(c.clone());
            }
        }
        let out = run(
            diskv_bin(),
            [
                "admin",
                "--masters",
                &self.masters,
                "--timeout",
                "5",
                "query",
                &num.to_string(),
            ],
            Duration::from_secs(20),
        );
        if !out.success() {
            return None;
        }
        let c = Config::from_json(out.stdout.trim_end()).ok()?;
        self.configs.borrow_mut().insert(c.num, c.clone());
        Some(c)
    }

    /// The latest configuration.
    pub fn query(&self) -> Option<Config> {
        self.query_num(-1)
    }

    /// Waits until the latest config has exactly the groups `want`, every shard
    /// assigned to one of them; returns it.
    pub fn wait_groups(&self, want: &[u64]) -> Config {
        wait_for(
            Duration::from_secs(60),
            &format!("the config has exactly groups {want:?}"),
            || {
                let c = self.query()?;
                let have: Vec<u64> = c.groups.keys().copied().collect();
                (have == want && c.shards.iter().all(|g| want.contains(g))).then_some(c)
            },
        )
    }

    /// Everything every spawn of group `gid` logged, colour codes removed.
    pub fn group_log(&self, gid: u64) -> String {
        let prefix = format!("g{gid}r");
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.logs())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        n.starts_with(&prefix) && n.ends_with(".stderr.log")
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|p| strip_ansi(&std::fs::read_to_string(p).unwrap_or_default()))
            .collect()
    }

    /// What group `gid`'s replicas logged so far: the highest configuration applied
    /// and the (shard, config) pairs it installed and deleted.
    pub fn progress(&self, gid: u64) -> GroupProgress {
        let mut p = GroupProgress::default();
        for line in self.group_log(gid).lines() {
            let num = |f: &str| field(line, f).and_then(|v| v.parse::<u64>().ok());
            if line.contains("applied configuration") {
                p.config = p.config.max(num("config").unwrap_or(0));
            } else if line.contains("installed shard") || line.contains("deleted handed-over") {
                if let (Some(s), Some(c)) = (num("shard"), num("config")) {
                    let set = if line.contains("installed shard") {
                        &mut p.installed
                    } else {
                        &mut p.deleted
                    };
                    set.insert((s as usize, c));
                }
            }
        }
        p
    }

    /// Whether every handoff up to config `latest` is complete: every group of
    /// `latest` applied it, and every shard that moved between two groups was
    /// installed by its new owner and deleted by its old one.
    pub fn settled_at(&self, latest: &Config) -> bool {
        let mut progress: BTreeMap<u64, GroupProgress> = BTreeMap::new();
        let mut get = |gid: u64| {
            progress
                .entry(gid)
                .or_insert_with(|| self.progress(gid))
                .clone()
        };
        for &gid in latest.groups.keys() {
            if get(gid).config < latest.num {
                return false;
            }
        }
        let mut prev = match self.query_num(0) {
            Some(c) => c,
            None => return false,
        };
        for num in 1..=latest.num {
            let Some(cur) = self.query_num(num as i64) else {
                return false;
            };
            for (shard, (&from, &to)) in prev.shards.iter().zip(&cur.shards).enumerate() {
                if from == to || from == shardmaster::NO_GROUP || to == shardmaster::NO_GROUP {
                    continue;
                }
                if !get(to).installed.contains(&(shard, num))
                    || !get(from).deleted.contains(&(shard, num))
                {
                    return false;
                }
            }
            prev = cur;
        }
        true
    }

    /// Waits until every handoff of the latest configuration is complete (see
    /// [`ShardCluster::settled_at`]); returns that configuration.
    pub fn wait_settled(&self, limit: Duration) -> Config {
        wait_for(limit, "every shard handoff completes", || {
            let latest = self.query()?;
            self.settled_at(&latest).then_some(latest)
        })
    }

    /// The group owning `key` in `config`.
    pub fn owner(&self, config: &Config, key: &str) -> u64 {
        config.shards[shardmaster::shard_of(key.as_bytes(), self.nshards)]
    }

    /// The shard of `key`.
    pub fn shard_of(&self, key: &str) -> usize {
        shardmaster::shard_of(key.as_bytes(), self.nshards)
    }

    /// Groups started so far.
    pub fn gids(&self) -> BTreeSet<u64> {
        self.groups.keys().copied().collect()
    }
}

/// What a group's logs show of its reconfiguration work.
#[derive(Clone, Debug, Default)]
pub struct GroupProgress {
    /// The highest configuration applied by any of its replicas.
    pub config: u64,
    /// (shard, config) pairs installed.
    pub installed: BTreeSet<(usize, u64)>,
    /// (shard, config) pairs of handed-over shards deleted.
    pub deleted: BTreeSet<(usize, u64)>,
}
