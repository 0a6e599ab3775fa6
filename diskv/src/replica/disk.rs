//! Opening a replica's directory, and deciding whether it is new, known, or lost.
//!
//! - A directory with an identity is known: it starts from its checkpoint and log
//!   (and, if the identity says so, resumes an unfinished recovery).
//! - A damaged directory (corrupt log before its tail, corrupt identity, checkpoint
//!   or key file, or data without an identity) is moved to `DIR/quarantine-<time>/`
//!   and treated as lost. It is never repaired in place (`paxos::quarantine`).
//! - An empty directory under `--restart` is lost. Without `--restart` the replica
//!   asks its peers (`paxos::probe`): lost if any of them votes in a group that has
//!   started; fresh once enough of them say they are new too; otherwise it waits.
//! - A lost replica gets an identity marked `recovering` and rejoins as a new acceptor
//!   incarnation (see `crate::replica::recovery`).
//!
//! The order of these decisions is `paxos::replica_dir::open`, shared with the
//! shardmaster; this module says what a KV directory holds ([`inspect`],
//! [`create`]).
//!
//! A replica creates its (empty) log durably *before* it first writes its identity,
//! so a directory with an identity but no log lost the log, and with it the
//! promises this replica made: it is damaged, never a known replica (which would
//! vote as if it had promised nothing). An empty log without an identity is a
//! replica that crashed while first starting: new.

use crate::error::StateError;
use crate::replica::identity::Identity;
use crate::replica::options::ServerOptions;
use crate::replica::reconfig;
use crate::state::KvState;
use futures::future::BoxFuture;
use paxos::fs::{FileSystem, SharedFs};
use paxos::host::Host;
use paxos::quarantine::LogRescue;
use paxos::replica_dir::ReplicaDir;
use paxos::storage::SegmentLog;
use paxos::{Slot, StorageError};
use std::path::{Path, PathBuf};

/// Opens `opts.dir` on `fs`: the identity, the state and the instance it covers.
/// The decisions (known, damaged, empty, lost) are `paxos::replica_dir::open`'s.
pub(crate) async fn open_dir(
    fs: &SharedFs,
    opts: &ServerOptions,
    host: &Host,
) -> Result<(Identity, KvState, Slot), StateError> {
    let dir = KvDir { fs, opts };
    paxos::replica_dir::open(&dir, &**fs, host, opts.me, &opts.peers, opts.restart).await
}

/// A KV replica's directory, as `paxos::replica_dir` sees it.
struct KvDir<'a> {
    fs: &'a SharedFs,
    opts: &'a ServerOptions,
}

impl ReplicaDir for KvDir<'_> {
    type Opened = (Identity, KvState, Slot);
    type Error = StateError;

    fn dir(&self) -> &Path {
        &self.opts.dir
    }

    fn open_known(&self) -> Result<Option<Self::Opened>, StateError> {
        inspect(self.fs, self.opts)
    }

    fn is_damage(&self, e: &StateError) -> bool {
        matches!(e, StateError::Corrupt { .. })
    }

    fn is_recovering(&self, (id, _, _): &Self::Opened) -> bool {
        id.recovering.is_some()
    }

    fn quarantine_failed(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            path: self.opts.dir.clone(),
            source,
        }
    }

    fn create_fresh(&self) -> BoxFuture<'_, Result<Self::Opened, StateError>> {
        Box::pin(async move {
            let id = self.identity(None).await;
            let (state, applied) = create(self.fs, self.opts, &id)?;
            tracing::info!(
                gid = self.opts.gid,
                me = self.opts.me,
                "a new replica of a new group: starting fresh"
            );
            Ok((id, state, applied))
        })
    }

    /// Records that this replica recovers a lost disk and opens its (empty) state.
    fn create_lost<'a>(&'a self, why: &'a str) -> BoxFuture<'a, Result<Self::Opened, StateError>> {
        Box::pin(async move {
            let opts = self.opts;
            tracing::warn!(
                gid = opts.gid,
                me = opts.me,
                dir = %opts.dir.display(),
                why,
                "this replica lost its disk: it will rejoin as a new incarnation and take its \
                 state from its peers (it never starts empty in a group that has a history)"
            );
            // This replica ran before but its directory is empty: never start fresh,
            // rejoin as a new acceptor incarnation.
            let id = self.identity(Some(rand::random::<u64>() | 1)).await;
            let (state, applied) = create(self.fs, opts, &id)?;
            Ok((id, state, applied))
        })
    }
}

impl KvDir<'_> {
    /// The identity of a replica created now, `recovering` if it lost its disk.
    async fn identity(&self, recovering: Option<u64>) -> Identity {
        Identity {
            cluster: Identity::cluster_of(&self.opts.masters),
            gid: self.opts.gid,
            me: self.opts.me,
            nshards: shard_count(self.opts).await,
            incarnation: 0,
            recovering,
        }
    }
}

/// The log folder of `opts.dir`.
fn log_dir(opts: &ServerOptions) -> PathBuf {
    opts.dir.join("log")
}

/// A damaged-log error as the KV state reports it.
fn log_damage(e: StorageError) -> StateError {
    match e {
        StorageError::Corrupt {
            path,
            offset,
            reason,
        } => StateError::Corrupt {
            path,
            reason: format!("at byte {offset}: {reason}"),
        },
        other => StateError::Paxos(other.into()),
    }
}

/// The directory's identity and state; `None` if it is new (nothing in it, or only
/// the empty log of a first start that crashed). `Corrupt` if anything in it fails
/// its checks, a known replica's missing log included. The part of opening a
/// directory that needs no peer (the simulator calls it too).
pub fn inspect(
    fs: &SharedFs,
    opts: &ServerOptions,
) -> Result<Option<(Identity, KvState, Slot)>, StateError> {
    let Some(id) = Identity::load(&**fs, &opts.dir)? else {
        let log_data = SegmentLog::holds_data_on(&**fs, &log_dir(opts)).map_err(log_damage)?;
        if log_data || has_entries(&**fs, &opts.dir.join("kv")) {
            return Err(StateError::Corrupt {
                path: opts.dir.join("identity"),
                reason: "missing, although the directory holds a log or data".into(),
            });
        }
        return Ok(None);
    };
    id.check(&opts.masters, opts.gid, opts.me, &opts.dir)?;
    let id = if id.cluster.is_empty() {
        let named = Identity {
            cluster: Identity::cluster_of(&opts.masters),
            ..id
        };
        named.store(&**fs, &opts.dir)?;
        named
    } else {
        id
    };
    let (state, applied) = KvState::open_on(fs.clone(), &opts.dir, opts.gid, id.nshards)?;
    let rescue = if opts.peers.len() > 1 || id.recovering.is_some() {
        LogRescue::FromPeers
    } else {
        LogRescue::None
    };
    paxos::quarantine::check_known_log_on(fs.clone(), &log_dir(opts), applied, rescue)
        .map_err(log_damage)?;
    Ok(Some((id, state, applied)))
}

/// Makes `opts.dir` the directory of replica `id`: its log first, then its
/// identity (see the module docs), then its (empty) state.
pub fn create(
    fs: &SharedFs,
    opts: &ServerOptions,
    id: &Identity,
) -> Result<(KvState, Slot), StateError> {
    paxos::quarantine::create_log_on(fs.clone(), &log_dir(opts))
        .map_err(|e| StateError::Paxos(e.into()))?;
    id.store(&**fs, &opts.dir)?;
    KvState::open_on(fs.clone(), &opts.dir, opts.gid, id.nshards)
}

fn has_entries(fs: &dyn FileSystem, dir: &Path) -> bool {
    fs.read_dir(dir).is_ok_and(|names| !names.is_empty())
}

async fn shard_count(opts: &ServerOptions) -> usize {
    match opts.nshards {
        Some(n) => n,
        None => reconfig::shard_count(&opts.masters).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::fs::SimFs;
    use std::sync::Arc;

    /// Replica 0 of group 1, kept in `/r` on a simulated disk.
    fn replica() -> (SimFs, SharedFs, ServerOptions) {
        let sim = SimFs::new();
        sim.create_dir_all(Path::new("/r")).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let opts = ServerOptions {
            gid: 1,
            masters: vec!["127.0.0.1:1".into()],
            peers: vec!["127.0.0.1:2".into(), "127.0.0.1:3".into()],
            me: 0,
            dir: PathBuf::from("/r"),
            restart: false,
            join: false,
            unreliable: false,
            nshards: Some(4),
        };
        let fs: SharedFs = Arc::new(sim.clone());
        (sim, fs, opts)
    }

    fn identity(opts: &ServerOptions) -> Identity {
        Identity {
            cluster: Identity::cluster_of(&opts.masters),
            gid: opts.gid,
            me: opts.me,
            nshards: 4,
            incarnation: 0,
            recovering: None,
        }
    }

    fn is_damaged(r: Result<Option<(Identity, KvState, Slot)>, StateError>) -> bool {
        matches!(r, Err(StateError::Corrupt { .. }))
    }

    #[test]
    fn an_identity_without_a_log_is_damaged() {
        let (sim, fs, opts) = replica();
        identity(&opts).store(&sim, &opts.dir).unwrap();
        assert!(is_damaged(inspect(&fs, &opts)), "no log folder");
        sim.create_dir_all(&log_dir(&opts)).unwrap();
        assert!(
            is_damaged(inspect(&fs, &opts)),
            "a log folder without segments"
        );
    }

    #[test]
    fn a_created_replica_is_known_after_any_crash_once_created() {
        let (sim, fs, opts) = replica();
        let id = identity(&opts);
        create(&fs, &opts, &id).unwrap();
        sim.crash_losing_unsynced();
        let (known, _, applied) = inspect(&fs, &opts).unwrap().expect("a known replica");
        assert_eq!((known, applied), (id, 0));
    }

    #[test]
    fn an_empty_log_without_an_identity_is_a_new_replica_but_records_are_damage() {
        let (sim, fs, opts) = replica();
        // A first start that crashed between its log and its identity.
        paxos::quarantine::create_log_on(fs.clone(), &log_dir(&opts)).unwrap();
        sim.crash_losing_unsynced();
        assert!(matches!(inspect(&fs, &opts), Ok(None)));
        // A log with records but no identity is damage.
        let mut log = SegmentLog::open_on(fs.clone(), &log_dir(&opts), Default::default()).unwrap();
        paxos::Storage::append(&mut log, &[paxos::Record::Committed { upto: 1 }]).unwrap();
        drop(log);
        assert!(is_damaged(inspect(&fs, &opts)));
    }
}
