//! A shardmaster group of in-process replicas on 127.0.0.1, with the helpers the
//! integration tests share.
//!
//! Every test binary compiles this module and each uses part of it; dead code is
//! judged per binary, so a helper that only some binaries use allows it on
//! itself and names its users.

pub mod proxy;

use proxy::LinkProxy;
use shardmaster::{
    Clerk, ClerkOptions, Config, ConfigNum, Gid, ServerOptions, ShardmasterServer, NO_GROUP,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// How a test group is set up.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of replicas.
    pub replicas: usize,
    /// Shard count given at first start.
    pub nshards: usize,
    /// Start every replica with the unreliable switch on.
    pub unreliable: bool,
    /// Route replica-to-replica traffic through proxies, so replicas can be isolated.
    pub proxied: bool,
    /// Checkpoint at the latest after this many instances.
    pub checkpoint_every: u64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            replicas: 3,
            nshards: 10,
            unreliable: false,
            proxied: false,
            checkpoint_every: 16,
        }
    }
}

/// A group of shardmaster replicas, each with its own directory in a tempdir.
pub struct Cluster {
    pub opts: ClusterOptions,
    pub tmp: tempfile::TempDir,
    /// Where clients reach replica `i`.
    pub addrs: Vec<String>,
    /// The `peers` list replica `i` is started with.
    peer_views: Vec<Vec<String>>,
    /// `links[i][j]`: the proxy replica `i` uses to reach replica `j` (if proxied).
    links: Vec<Vec<Option<LinkProxy>>>,
    pub servers: Vec<Option<ShardmasterServer>>,
}

impl Cluster {
    /// Starts a group.
    pub async fn start(opts: ClusterOptions) -> Cluster {
        diskv_testkit::init_logs();
        let n = opts.replicas;
        let (listeners, addrs) = diskv_testkit::listeners(n).await;
        let mut links: Vec<Vec<Option<LinkProxy>>> = Vec::new();
        let mut peer_views = Vec::new();
        for i in 0..n {
            let mut row = Vec::new();
            let mut view = Vec::new();
            for (j, addr) in addrs.iter().enumerate() {
                if opts.proxied && i != j {
                    let p = LinkProxy::start(addr.clone()).await;
                    view.push(p.addr.clone());
                    row.push(Some(p));
                } else {
                    view.push(addr.clone());
                    row.push(None);
                }
            }
            links.push(row);
            peer_views.push(view);
        }
        let mut cluster = Cluster {
            opts,
            tmp: tempfile::tempdir().expect("tempdir"),
            addrs,
            peer_views,
            links,
            servers: Vec::new(),
        };
        // All at once: a new replica waits for its peers to say the group is new too.
        let starts = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| ShardmasterServer::start(l, cluster.server_options(i, true)));
        for s in futures::future::join_all(starts).await {
            cluster.servers.push(Some(s.expect("start replica")));
        }
        cluster
    }

    /// The directory of replica `i`.
    pub fn dir(&self, i: usize) -> PathBuf {
        self.tmp.path().join(format!("sm{i}"))
    }

    /// The options replica `i` starts with.
    pub fn server_options(&self, i: usize, with_shards: bool) -> ServerOptions {
        let mut o = ServerOptions::new(self.dir(i), i, self.peer_views[i].clone());
        o.nshards = with_shards.then_some(self.opts.nshards);
        o.unreliable = self.opts.unreliable;
        o.checkpoint_every = self.opts.checkpoint_every;
        o.idle_after = Duration::from_millis(100);
        o
    }

    /// Stops replica `i` (its directory stays).
    pub async fn stop(&mut self, i: usize) {
        if let Some(s) = self.servers[i].take() {
            s.shutdown().await;
        }
    }

    /// A Clerk for every replica, with short attempt deadlines.
    pub fn clerk(&self) -> Clerk {
        Clerk::with_options(self.addrs.clone(), fast_clerk())
    }

    /// A Clerk for some replicas only.
    pub fn clerk_for(&self, replicas: &[usize]) -> Clerk {
        let addrs = replicas.iter().map(|&i| self.addrs[i].clone()).collect();
        Clerk::with_options(addrs, fast_clerk())
    }

    /// Stops every replica.
    pub async fn shutdown(mut self) {
        for i in 0..self.servers.len() {
            self.stop(i).await;
        }
    }
}

/// Restarts: disk_loss.rs and durability.rs.
#[allow(dead_code)]
impl Cluster {
    /// Replica `i`, which must be running.
    pub fn server(&self, i: usize) -> &ShardmasterServer {
        self.servers[i].as_ref().expect("replica is running")
    }

    /// Starts replica `i` again on its directory and address.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.servers[i].is_none(), "replica {i} is running");
        let listener = diskv_testkit::bind_again(&self.addrs[i]).await;
        let s = ShardmasterServer::start(listener, self.server_options(i, false))
            .await
            .expect("restart replica");
        self.servers[i] = Some(s);
    }
}

/// Partitions of a proxied cluster: join_leave_move_query.rs.
#[allow(dead_code)]
impl Cluster {
    /// Cuts every link to and from replica `i` (clients still reach it).
    pub fn isolate(&self, i: usize) {
        self.set_links(i, true);
    }

    /// Restores every link to and from replica `i`.
    pub fn heal(&self, i: usize) {
        self.set_links(i, false);
    }

    /// Cuts (or restores) only the links *into* replica `i`: it still sends.
    pub fn cut_inbound(&self, i: usize, cut: bool) {
        for row in &self.links {
            if let Some(Some(p)) = row.get(i) {
                p.set_cut(cut);
            }
        }
    }

    fn set_links(&self, i: usize, cut: bool) {
        assert!(
            self.opts.proxied,
            "isolating a replica needs a proxied cluster"
        );
        self.cut_inbound(i, cut);
        for p in self.links[i].iter().flatten() {
            p.set_cut(cut);
        }
    }
}

/// Clerk options for tests: short attempts, so lost requests cost little.
pub fn fast_clerk() -> ClerkOptions {
    ClerkOptions {
        attempt_timeout: Duration::from_millis(700),
        ..ClerkOptions::default()
    }
}

/// Three distinct addresses for group `gid`.
pub fn servers(gid: Gid) -> Vec<String> {
    (0..3)
        .map(|r| format!("g{gid}-r{r}:{}", 7000 + r))
        .collect()
}

/// The 6.824 `check`: exactly `groups` are joined, every shard is on a joined group
/// (on gid 0 when there are none), and loads differ by at most one.
#[allow(dead_code)] // used by join_leave_move_query.rs only
pub fn check(c: &Config, groups: &[Gid]) {
    let want: BTreeSet<Gid> = groups.iter().copied().collect();
    let have: BTreeSet<Gid> = c.groups.keys().copied().collect();
    assert_eq!(have, want, "wrong groups in config {}", c.num);
    for (s, g) in c.shards.iter().enumerate() {
        if want.is_empty() {
            assert_eq!(*g, NO_GROUP, "config {}: shard {s} on {g}", c.num);
        } else {
            assert!(
                want.contains(g),
                "config {}: shard {s} on unjoined gid {g}",
                c.num
            );
        }
    }
    let loads: Vec<usize> = want
        .iter()
        .map(|g| c.shards.iter().filter(|&x| x == g).count())
        .collect();
    if let (Some(min), Some(max)) = (loads.iter().min(), loads.iter().max()) {
        assert!(
            max - min <= 1,
            "config {} unbalanced: {:?}",
            c.num,
            c.shards
        );
    }
}

/// Every configuration from 0 to the latest, as `ck` answers through the log.
#[allow(dead_code)] // used by disk_loss.rs and durability.rs
pub async fn history(ck: &Clerk) -> Vec<Config> {
    let latest = ck.query(ConfigNum::Latest).await.unwrap();
    let mut all = Vec::new();
    for num in 0..=latest.num {
        all.push(ck.query(ConfigNum::Num(num)).await.unwrap());
    }
    all
}

/// Joins groups `base..base + 6`, a Move and two Leaves: more instances than
/// `checkpoint_every`, so the logs forget their prefix behind checkpoints (and a
/// replica that lost its disk needs a snapshot).
#[allow(dead_code)] // used by disk_loss.rs and durability.rs
pub async fn churn(cl: &Cluster, base: u64) {
    let ck = cl.clerk();
    for g in base..base + 6 {
        ck.join(g, servers(g)).await.unwrap();
        ck.query(ConfigNum::Latest).await.unwrap();
    }
    ck.move_shard(0, base + 5).await.unwrap();
    ck.leave(base + 1).await.unwrap();
    ck.leave(base + 3).await.unwrap();
}
