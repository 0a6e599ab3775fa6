//! Opening a replica's directory: known, damaged, empty or lost, decided once for
//! every service built on this crate (the KV replica and the shardmaster).
//!
//! The disk-loss rule (crate docs, DESIGN.md): a replica that lost its disk never
//! starts empty in a group that has a history; it rejoins as a new acceptor
//! incarnation ([`crate::recovery`]). So, at start:
//!
//! - a directory that holds a replica that ran before is **known**: it starts from
//!   its files (and resumes an unfinished recovery if they say so);
//! - a **damaged** directory is moved aside whole ([`crate::quarantine`], never
//!   repaired in place) and the replica recovers like a lost disk;
//! - an **empty** directory is lost under `--restart`; without it the replica asks
//!   its peers ([`crate::probe`]): lost if any of them shows the group ran, fresh
//!   once every other says it is new too (it waits meanwhile).
//!
//! What a directory holds and how it is checked and created is the service's
//! ([`ReplicaDir`]); the order of the decisions is [`open`]'s.

use crate::fs::FileSystem;
use crate::host::Host;
use crate::probe::Verdict;
use crate::types::NodeId;
use futures::future::BoxFuture;
use std::fmt;
use std::io;
use std::path::Path;

/// A service's replica directory, as [`open`] sees it.
pub trait ReplicaDir: Sync {
    /// What an opened directory gives the service (its record and state).
    type Opened: Send;
    /// The service's error.
    type Error: fmt::Display + Send;

    /// The directory.
    fn dir(&self) -> &Path;

    /// Names of files left in place when the directory's state is moved aside
    /// (a lock the server holds, say).
    fn keep(&self) -> &[&str] {
        &[]
    }

    /// The directory of a replica that ran before, checked; `None` if the
    /// directory is new or lost (nothing in it that a replica wrote). Damage is an
    /// error that [`ReplicaDir::is_damage`] recognizes. Needs no peer.
    fn open_known(&self) -> Result<Option<Self::Opened>, Self::Error>;

    /// True if `e` (from [`ReplicaDir::open_known`]) says the directory is
    /// damaged: it is quarantined and the replica recovers like a lost disk.
    fn is_damage(&self, e: &Self::Error) -> bool;

    /// True if the opened directory says its replica is recovering a lost disk.
    fn is_recovering(&self, opened: &Self::Opened) -> bool;

    /// The error of a failed quarantine.
    fn quarantine_failed(&self, e: io::Error) -> Self::Error;

    /// Makes the directory that of a new replica of a new group (its peers said
    /// so).
    fn create_fresh(&self) -> BoxFuture<'_, Result<Self::Opened, Self::Error>>;

    /// Makes the directory that of a replica that lost its disk (`why`): it is
    /// recorded as recovering, so a crash midway resumes recovery.
    fn create_lost<'a>(&'a self, why: &'a str) -> BoxFuture<'a, Result<Self::Opened, Self::Error>>;
}

/// Opens `dir`'s directory on `fs`, deciding whether replica `me` of `peers` is
/// known, new or lost (see the module docs). `restart` says the replica ran before
/// (`--restart`). May wait for the peers. Tells peers that probe it when it
/// recovers ([`Host::recovering`]).
pub async fn open<D: ReplicaDir>(
    dir: &D,
    fs: &dyn FileSystem,
    host: &Host,
    me: NodeId,
    peers: &[String],
    restart: bool,
) -> Result<D::Opened, D::Error> {
    let why = match dir.open_known() {
        Ok(Some(opened)) => {
            if dir.is_recovering(&opened) {
                host.recovering();
            }
            return Ok(opened);
        }
        Ok(None) if restart => "--restart with an empty directory".to_string(),
        Ok(None) => match host.probe(me, peers).await {
            Verdict::Lost { reason } => reason,
            Verdict::Fresh => return dir.create_fresh().await,
            // `Host::probe` waits until it is decided; should it ever return
            // undecided, the safe side is to recover, never to start fresh.
            Verdict::Wait { fresh, needed } => {
                format!("the probe ended undecided ({fresh} of {needed} fresh answers)")
            }
        },
        Err(damage) if dir.is_damage(&damage) => {
            let now = crate::quarantine::now_secs();
            let moved = crate::quarantine::quarantine_on(fs, dir.dir(), dir.keep(), now)
                .map_err(|e| dir.quarantine_failed(e))?;
            tracing::error!(
                me,
                dir = %dir.dir().display(),
                damage = %damage,
                moved_to = ?moved,
                "damaged state moved aside (never repaired in place); recovering from the peers \
                 like a lost disk"
            );
            "its state was damaged".to_string()
        }
        Err(e) => return Err(e),
    };
    host.recovering();
    dir.create_lost(&why).await
}
