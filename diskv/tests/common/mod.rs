//! Helpers shared by the in-process cluster tests.
#![allow(dead_code)]

use diskv::{KvServer, ServerOptions};
use shardmaster::server::{ServerOptions as MasterOptions, ShardmasterServer};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use diskv_testkit::listeners;

/// Logs to the test's output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// Binds `addr` again, retrying while the old socket lingers.
pub async fn bind(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => assert!(Instant::now() < deadline, "cannot bind {addr}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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

/// One KV replica group run in this process.
pub struct Group {
    pub gid: u64,
    pub addrs: Vec<String>,
    pub servers: Vec<Option<KvServer>>,
    dir: PathBuf,
    masters: Vec<String>,
    join: bool,
}

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
        let l = bind(&self.addrs[i]).await;
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
