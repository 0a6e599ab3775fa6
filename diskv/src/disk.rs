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
//!   incarnation (see `crate::recovery`).

use crate::error::StateError;
use crate::identity::Identity;
use crate::reconfig;
use crate::server::ServerOptions;
use crate::state::KvState;
use paxos::host::Host;
use paxos::probe::Verdict;
use paxos::Slot;

/// Opens `opts.dir`: the identity, the state and the instance it covers.
pub(crate) async fn open_dir(
    opts: &ServerOptions,
    host: &Host,
) -> Result<(Identity, KvState, Slot), StateError> {
    match inspect(opts) {
        Ok(Some((id, state, applied))) => {
            if id.recovering.is_some() {
                host.recovering();
            }
            return Ok((id, state, applied));
        }
        Ok(None) if opts.restart => {
            return lost(opts, host, "--restart with an empty directory").await
        }
        Ok(None) => {}
        Err(damage @ StateError::Corrupt { .. }) => {
            let moved =
                paxos::quarantine::quarantine(&opts.dir, &[]).map_err(|e| StateError::Io {
                    path: opts.dir.clone(),
                    source: e,
                })?;
            tracing::error!(
                gid = opts.gid,
                me = opts.me,
                damage = %damage,
                moved_to = ?moved,
                "damaged state moved aside (never repaired in place); recovering from the peers \
                 like a lost disk"
            );
            return lost(opts, host, "its state was damaged").await;
        }
        Err(e) => return Err(e),
    }
    match host.probe(opts.me, &opts.peers).await {
        Verdict::Lost { reason } => lost(opts, host, &reason).await,
        _ => {
            let id = Identity {
                cluster: Identity::cluster_of(&opts.masters),
                gid: opts.gid,
                me: opts.me,
                nshards: shard_count(opts).await,
                incarnation: 0,
                recovering: None,
            };
            id.store(&opts.dir)?;
            tracing::info!(
                gid = opts.gid,
                me = opts.me,
                "a new replica of a new group: starting fresh"
            );
            let (state, applied) = KvState::open(&opts.dir, opts.gid, id.nshards)?;
            Ok((id, state, applied))
        }
    }
}

/// The directory's identity and state; `None` if it is empty. `Corrupt` if anything
/// in it fails its checks.
fn inspect(opts: &ServerOptions) -> Result<Option<(Identity, KvState, Slot)>, StateError> {
    let log_dir = opts.dir.join("log");
    let Some(id) = Identity::load(&opts.dir)? else {
        if has_entries(&log_dir) || has_entries(&opts.dir.join("kv")) {
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
        named.store(&opts.dir)?;
        named
    } else {
        id
    };
    paxos::quarantine::check_log(&log_dir).map_err(|e| match e {
        paxos::StorageError::Corrupt {
            path,
            offset,
            reason,
        } => StateError::Corrupt {
            path,
            reason: format!("at byte {offset}: {reason}"),
        },
        other => StateError::Paxos(other.into()),
    })?;
    let (state, applied) = KvState::open(&opts.dir, opts.gid, id.nshards)?;
    Ok(Some((id, state, applied)))
}

fn has_entries(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

async fn shard_count(opts: &ServerOptions) -> usize {
    match opts.nshards {
        Some(n) => n,
        None => reconfig::shard_count(&opts.masters).await,
    }
}

/// Records that this replica recovers a lost disk and opens its (empty) state.
async fn lost(
    opts: &ServerOptions,
    host: &Host,
    why: &str,
) -> Result<(Identity, KvState, Slot), StateError> {
    host.recovering();
    tracing::warn!(
        gid = opts.gid,
        me = opts.me,
        dir = %opts.dir.display(),
        why,
        "this replica lost its disk: it will rejoin as a new incarnation and take its state \
         from its peers (it never starts empty in a group that has a history)"
    );
    // This replica ran before but its directory is empty: never start fresh, rejoin
    // as a new acceptor incarnation.
    let id = Identity {
        cluster: Identity::cluster_of(&opts.masters),
        gid: opts.gid,
        me: opts.me,
        nshards: shard_count(opts).await,
        incarnation: 0,
        recovering: Some(rand::random::<u64>() | 1),
    };
    id.store(&opts.dir)?;
    let (state, applied) = KvState::open(&opts.dir, opts.gid, id.nshards)?;
    Ok((id, state, applied))
}
