//! A shardmaster replica that lost its disk (or whose state is damaged) rejoins as
//! a new acceptor incarnation, like a KV replica (see `paxos::probe`,
//! `paxos::quarantine`, `paxos::recovery`):
//!
//! - **Detection** (`open_dir`): a directory whose log, checkpoint or cluster
//!   record fails its checks, or whose cluster record has no log beside it (a
//!   replica creates its log before its record, so the log was lost), is moved to
//!   `DIR/quarantine-<time>/` and treated as lost. An empty directory is lost under `--restart`; without it the replica
//!   asks its peers and is lost if any of them votes in a group that has started
//!   (else it starts fresh once enough peers say they are new too, or waits).
//! - **Recovery**: the cluster record says `recovering NONCE` (so a crash midway
//!   resumes recovery, never a fresh start); the Paxos replica votes in nothing until
//!   the group decided its reincarnation; meanwhile it installs a snapshot (configs,
//!   duplicate table, applied instance, membership) from a voting peer if the group
//!   forgot log instances it needs, then catches up from the log.
//! - **Halt**: if a majority of the replicas is recovering, the replica stops with
//!   [`paxos::recovery::MAJORITY_LOST`].

use crate::error::ShardmasterError;
use crate::machine::ShardmasterMachine;
use crate::persist::{self, Checkpoint, ClusterRecord, LOCK_FILE};
use crate::rpc::{MachineSnapshot, ShardmasterRpcClient};
use crate::server::ServerOptions;
use futures::future::BoxFuture;
use paxos::core::Membership;
use paxos::fs::{FileSystem, SharedFs};
use paxos::host::Host;
use paxos::quarantine::LogRescue;
use paxos::recovery::{Snapshot, SnapshotRpc, Watch};
use paxos::replica_dir::ReplicaDir;
use paxos::rsm::{MachineError, Rsm};
use paxos::transport::{codec, mux};
use paxos::Slot;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::{client, context};
use tokio::sync::watch;

const CALL: Duration = Duration::from_secs(2);

/// The replica's directory, opened: its cluster record and checkpoint.
#[derive(Debug)]
pub struct Opened {
    /// The cluster record (`recovering` set while the replica recovers a lost disk).
    pub cluster: ClusterRecord,
    /// The checkpoint, if one was written.
    pub ckpt: Option<Checkpoint>,
}

/// The directory of a replica that ran before, checked against `opts`; `None` if
/// it is new or lost (nothing in it). [`ShardmasterError::CorruptFile`] if
/// anything in it is damaged (see [`inspect`]): the caller quarantines it and
/// recovers like a lost disk. The part of `open_dir` that needs no peer.
pub fn open_known(fs: &SharedFs, opts: &ServerOptions) -> Result<Option<Opened>, ShardmasterError> {
    let (cluster, ckpt) = inspect(fs, &opts.dir)?;
    let Some(cluster) = cluster else {
        return Ok(None);
    };
    persist::check_cluster(&opts.dir, &cluster, opts.nshards, opts.me, opts.peers.len())?;
    Ok(Some(Opened { cluster, ckpt }))
}

/// Makes `opts.dir` the directory of a new replica of a new group (after its
/// peers said so, see `paxos::probe`).
pub fn create_fresh(fs: &SharedFs, opts: &ServerOptions) -> Result<Opened, ShardmasterError> {
    let cluster = ClusterRecord {
        nshards: opts.nshards.unwrap_or(crate::config::DEFAULT_SHARDS),
        me: opts.me,
        peers: opts.peers.len(),
        recovering: None,
    };
    create(fs, &opts.dir, &cluster)?;
    tracing::info!(
        node = opts.me,
        "a new replica of a new group: starting fresh"
    );
    Ok(Opened {
        cluster,
        ckpt: None,
    })
}

/// Makes `opts.dir` the directory of a replica that lost its disk: a cluster of
/// `nshards` shards, its record marked `recovering nonce`.
pub fn create_lost(
    fs: &SharedFs,
    opts: &ServerOptions,
    nshards: usize,
    nonce: u64,
) -> Result<Opened, ShardmasterError> {
    let cluster = ClusterRecord {
        nshards,
        me: opts.me,
        peers: opts.peers.len(),
        recovering: Some(nonce),
    };
    create(fs, &opts.dir, &cluster)?;
    Ok(Opened {
        cluster,
        ckpt: None,
    })
}

/// Clears the cluster record's `recovering` mark once the replica votes again.
pub fn finish_recovery(
    fs: &dyn FileSystem,
    dir: &Path,
    cluster: &ClusterRecord,
) -> Result<ClusterRecord, ShardmasterError> {
    let done = ClusterRecord {
        recovering: None,
        ..*cluster
    };
    persist::write_cluster(fs, dir, &done)?;
    Ok(done)
}

/// Opens the directory on `fs`, deciding whether this replica is new, known, or
/// lost (see the module docs; the decisions are `paxos::replica_dir::open`'s). May
/// wait for the peers.
pub(crate) async fn open_dir(
    fs: &SharedFs,
    opts: &ServerOptions,
    host: &Host,
) -> Result<Opened, ShardmasterError> {
    let dir = MasterDir { fs, opts };
    paxos::replica_dir::open(&dir, &**fs, host, opts.me, &opts.peers, opts.restart).await
}

/// A shardmaster replica's directory, as `paxos::replica_dir` sees it.
struct MasterDir<'a> {
    fs: &'a SharedFs,
    opts: &'a ServerOptions,
}

impl ReplicaDir for MasterDir<'_> {
    type Opened = Opened;
    type Error = ShardmasterError;

    fn dir(&self) -> &Path {
        &self.opts.dir
    }

    fn keep(&self) -> &[&str] {
        &[LOCK_FILE]
    }

    fn open_known(&self) -> Result<Option<Opened>, ShardmasterError> {
        open_known(self.fs, self.opts)
    }

    fn is_damage(&self, e: &ShardmasterError) -> bool {
        matches!(e, ShardmasterError::CorruptFile { .. })
    }

    fn is_recovering(&self, opened: &Opened) -> bool {
        opened.cluster.recovering.is_some()
    }

    fn quarantine_failed(&self, e: std::io::Error) -> ShardmasterError {
        ShardmasterError::Storage {
            action: "quarantine".into(),
            path: self.opts.dir.display().to_string(),
            reason: e.to_string(),
        }
    }

    fn create_fresh(&self) -> BoxFuture<'_, Result<Opened, ShardmasterError>> {
        Box::pin(async move { create_fresh(self.fs, self.opts) })
    }

    /// Records that this replica recovers a lost disk and returns its fresh state.
    fn create_lost<'a>(&'a self, why: &'a str) -> BoxFuture<'a, Result<Opened, ShardmasterError>> {
        Box::pin(async move {
            let opts = self.opts;
            tracing::warn!(
                node = opts.me,
                dir = %opts.dir.display(),
                why,
                "this shardmaster replica lost its disk: it will rejoin as a new incarnation and \
                 take its state from its peers"
            );
            let nshards = match opts.nshards {
                Some(n) => n,
                None => shard_count(opts).await,
            };
            create_lost(self.fs, opts, nshards, rand::random::<u64>() | 1)
        })
    }
}

/// The cluster record (`None`: a new directory) and checkpoint of `dir`.
/// [`ShardmasterError::CorruptFile`] if anything fails its checks: the log, the
/// checkpoint, the record, or a log missing although the record says this replica
/// ran (it creates its log before its record: see [`create`]).
pub fn inspect(
    fs: &SharedFs,
    dir: &Path,
) -> Result<(Option<ClusterRecord>, Option<Checkpoint>), ShardmasterError> {
    let cluster = persist::read_cluster(&**fs, dir)?;
    let ckpt = persist::load_checkpoint(&**fs, dir)?;
    let log = persist::log_dir(dir);
    let checked = match &cluster {
        Some(rec) => {
            let rescue = if rec.peers > 1 || rec.recovering.is_some() {
                LogRescue::FromPeers
            } else {
                LogRescue::None
            };
            let applied = ckpt.as_ref().map_or(0, |c| c.applied);
            paxos::quarantine::check_known_log_on(fs.clone(), &log, applied, rescue)
        }
        None => paxos::quarantine::check_log_on(fs.clone(), &log),
    };
    checked.map_err(|e| {
        if paxos::quarantine::is_corrupt(&e) {
            ShardmasterError::CorruptFile {
                path: log.display().to_string(),
                reason: e.to_string(),
            }
        } else {
            ShardmasterError::Paxos {
                reason: e.to_string(),
            }
        }
    })?;
    Ok((cluster, ckpt))
}

/// Makes `dir` the directory of a replica: its log first, then its cluster record,
/// so a record without a log means the log was lost.
pub fn create(fs: &SharedFs, dir: &Path, cluster: &ClusterRecord) -> Result<(), ShardmasterError> {
    paxos::quarantine::create_log_on(fs.clone(), &persist::log_dir(dir)).map_err(|e| {
        ShardmasterError::Paxos {
            reason: e.to_string(),
        }
    })?;
    persist::write_cluster(&**fs, dir, cluster)
}

/// Asks the peers for the cluster's shard count until one answers.
async fn shard_count(opts: &ServerOptions) -> usize {
    let mut warned = Instant::now();
    loop {
        for (i, addr) in opts.peers.iter().enumerate() {
            if i == opts.me {
                continue;
            }
            if let Some(c) = connect(addr).await {
                if let Ok(n) = c.shard_count(deadline()).await {
                    return n;
                }
            }
        }
        if warned.elapsed() > Duration::from_secs(5) {
            warned = Instant::now();
            tracing::warn!(
                node = opts.me,
                "waiting for a peer to tell the cluster's shard count"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn deadline() -> context::Context {
    let mut ctx = context::current();
    ctx.deadline = Instant::now() + CALL;
    ctx
}

async fn connect(addr: &str) -> Option<ShardmasterRpcClient> {
    let stream = tokio::time::timeout(CALL, mux::connect(addr, mux::CLIENT))
        .await
        .ok()?
        .ok()?;
    Some(ShardmasterRpcClient::new(client::Config::default(), codec::framed(stream)).spawn())
}

/// Snapshots through the shardmaster RPC (a fresh connection each time).
struct RpcSnapshots;

impl SnapshotRpc for RpcSnapshots {
    type Machine = ShardmasterMachine;
    type Snapshot = MachineSnapshot;

    fn snapshot<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, Option<MachineSnapshot>> {
        Box::pin(async move { connect(addr).await?.snapshot(deadline()).await.ok()?.ok() })
    }
}

impl Snapshot<ShardmasterMachine> for MachineSnapshot {
    fn applied(&self) -> Slot {
        self.applied
    }

    fn membership(&self) -> Membership {
        self.membership.clone()
    }

    fn install(&self, machine: &mut ShardmasterMachine) -> Result<(), MachineError> {
        machine.replace_with(self).map_err(MachineError::state)
    }
}

/// Watches the replica for its whole life: fetches snapshots when the group forgot
/// what it needs and, if it recovers a lost disk, clears the cluster record's mark
/// once it votes again, or halts it (setting `halted`) if a majority is lost (the
/// watcher every service shares, [`paxos::recovery::watch`], with keep-up).
pub(crate) fn spawn(
    rsm: Rsm<ShardmasterMachine>,
    opts: ServerOptions,
    cluster: ClusterRecord,
    fs: SharedFs,
    halted: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let watch = Watch {
            me: opts.me,
            peers: opts.peers.clone(),
            rpc: RpcSnapshots,
            recovering: cluster.recovering.is_some(),
            keep_up: true,
            halted,
        };
        let finish = |_| finish_recovery(&*fs, &opts.dir, &cluster).map(drop);
        paxos::recovery::watch(&rsm, watch, finish, stop).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::fs::{FileSystem, SimFs};

    /// A shardmaster directory `/sm` on a simulated disk.
    fn disk() -> (SimFs, SharedFs, &'static Path) {
        let sim = SimFs::new();
        let dir = Path::new("/sm");
        sim.create_dir_all(dir).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let fs: SharedFs = Arc::new(sim.clone());
        (sim, fs, dir)
    }

    fn record() -> ClusterRecord {
        ClusterRecord {
            nshards: 4,
            me: 0,
            peers: 3,
            recovering: None,
        }
    }

    #[test]
    fn a_cluster_record_without_a_log_is_damaged() {
        let (sim, fs, dir) = disk();
        persist::write_cluster(&sim, dir, &record()).unwrap();
        assert!(matches!(
            inspect(&fs, dir),
            Err(ShardmasterError::CorruptFile { .. })
        ));
        sim.create_dir_all(&persist::log_dir(dir)).unwrap();
        assert!(matches!(
            inspect(&fs, dir),
            Err(ShardmasterError::CorruptFile { .. })
        ));
    }

    #[test]
    fn a_created_directory_is_known_after_a_crash_and_an_unfinished_one_is_new() {
        let (sim, fs, dir) = disk();
        // Crashed between the log and the record: new.
        paxos::quarantine::create_log_on(fs.clone(), &persist::log_dir(dir)).unwrap();
        sim.crash_losing_unsynced();
        assert!(matches!(inspect(&fs, dir), Ok((None, None))));
        create(&fs, dir, &record()).unwrap();
        sim.crash_losing_unsynced();
        assert!(matches!(inspect(&fs, dir), Ok((Some(r), None)) if r == record()));
    }
}
