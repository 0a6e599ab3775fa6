//! Helpers shared by the in-process cluster tests.
//!
//! Every test binary compiles this module and each uses part of it; dead code is
//! judged per binary, so a helper that only some binaries use allows it on
//! itself and names its users.

use diskv::{KvServer, ServerOptions};
use shardmaster::server::{ServerOptions as MasterOptions, ShardmasterServer};
use std::path::{Path, PathBuf};

use diskv_testkit::{bind_again, listeners};

/// Starts `n` shardmaster replicas with `nshards` shards.
pub async fn masters(
    dir: &Path,
    n: usize,
    nshards: usize,
) -> (Vec<ShardmasterServer>, Vec<String>) {
    let (ls, addrs) = listeners(n).await;
    // All at once: a new replica waits for its peers to say the group is new too.
    let starts = ls.into_iter().enumerate().map(|(i, l)| {
        let mut o = MasterOptions::new(dir.join(format!("sm{i}")), i, addrs.clone());
        o.nshards = Some(nshards);
        ShardmasterServer::start(l, o)
    });
    let out = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|s| s.expect("shardmaster"))
        .collect();
    (out, addrs)
}

/// One KV replica group run in this process: the in-process counterpart of the
/// process tests' `Group` (tests/support/kv_group.rs), which runs `diskv server`
/// children so it can `kill -9` and `SIGSTOP` them; this one restarts replicas
/// within the test and reaches into them (their Paxos node, state machine and
/// halt flag). The two stay apart: a process and a value in memory are
/// stopped, restarted and looked into differently.
// attack_incr.rs and attack_local.rs start their replicas themselves.
#[allow(dead_code)]
pub struct Group {
    pub gid: u64,
    pub addrs: Vec<String>,
    pub servers: Vec<Option<KvServer>>,
    dir: PathBuf,
    masters: Vec<String>,
    join: bool,
}

// group.rs and disk_loss.rs stop, restart and find the leader; only disk_loss.rs
// loses a disk; attack_ops.rs and sharding.rs only start groups.
#[allow(dead_code)]
impl Group {
    /// Starts group `gid` with `n` replicas under `dir`.
    pub async fn start(dir: &Path, gid: u64, n: usize, masters: &[String], join: bool) -> Group {
        let (ls, addrs) = listeners(n).await;
        let mut g = Group {
            gid,
            addrs,
            servers: Vec::new(),
            dir: dir.to_path_buf(),
            masters: masters.to_vec(),
            join,
        };
        // All at once: a new replica waits for its peers to say the group is new too.
        let starts = ls
            .into_iter()
            .enumerate()
            .map(|(i, l)| KvServer::start(l, g.opts(i, false)));
        for s in futures::future::join_all(starts).await {
            g.servers.push(Some(s.expect("kv replica")));
        }
        g
    }

    fn opts(&self, me: usize, restart: bool) -> ServerOptions {
        ServerOptions {
            gid: self.gid,
            masters: self.masters.clone(),
            peers: self.addrs.clone(),
            me,
            dir: self.dir.join(format!("g{}-{me}", self.gid)),
            restart,
            join: self.join,
            unreliable: false,
            nshards: None,
        }
    }

    /// Stops replica `i` (its directory stays).
    pub fn stop(&mut self, i: usize) {
        self.servers[i] = None;
    }

    /// Deletes replica `i`'s directory (it must be stopped): a lost disk.
    pub fn lose_disk(&mut self, i: usize) {
        assert!(self.servers[i].is_none(), "stop replica {i} first");
        let dir = self.dir.join(format!("g{}-{i}", self.gid));
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
    }

    /// Restarts replica `i` from its directory.
    pub async fn restart(&mut self, i: usize) {
        let l = bind_again(&self.addrs[i]).await;
        self.servers[i] = Some(
            KvServer::start(l, self.opts(i, true))
                .await
                .expect("restart"),
        );
    }

    /// The replica that leads, if any.
    pub fn leader(&self) -> Option<usize> {
        self.servers
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.node().is_leader()))
    }
}
