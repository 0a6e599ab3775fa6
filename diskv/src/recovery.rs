//! A replica that lost its disk rejoins: it learns the log from its peers (or,
//! if they forgot part of it, installs a snapshot from the group's leader), and its
//! Paxos replica asks the group to decide its reincarnation; its votes count again
//! only once every instance its lost incarnation may have voted in is decided (see
//! `paxos::core::membership`). If a majority of the group reports a lost disk, the
//! group cannot recover on its own: the replica halts, loudly. The loop itself is
//! the one every service shares ([`paxos::recovery::run`]); this module adds the
//! KV snapshot and the identity record.

use crate::conn::{deadline, Connections};
use crate::identity::Identity;
use crate::options::ServerOptions;
use crate::state::KvState;
use futures::future::BoxFuture;
use paxos::fs::SharedFs;
use paxos::recovery::{Outcome, SnapshotSource};
use paxos::rsm::{Install, Rsm};
use paxos::{NodeId, Slot};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const CALL: Duration = Duration::from_secs(2);

/// Group snapshots through the KV RPC (`snapshot`, answered by the leader).
struct KvSnapshots {
    peers: Vec<String>,
    conns: Connections,
}

impl SnapshotSource<KvState> for KvSnapshots {
    fn fetch(&self, peer: NodeId, _floor: Slot) -> BoxFuture<'_, Option<Install<KvState>>> {
        Box::pin(async move {
            let addr = self.peers.get(peer)?;
            let client = self.conns.get(addr).await.ok()?;
            let snap = match client.snapshot(deadline(CALL)).await {
                Ok(r) => r.ok()?,
                Err(_) => {
                    self.conns.drop_conn(addr);
                    return None;
                }
            };
            let (applied, membership) = (snap.applied, snap.membership.clone());
            Some(Install {
                replace: Box::new(move |st: &mut KvState| {
                    st.replace_with(&snap).map_err(|e| e.to_string())
                }),
                applied,
                membership,
            })
        })
    }
}

/// Watches a recovering replica until its votes count again (then clears the
/// identity record's recovering mark), or halts it (setting `halted`).
pub(crate) fn spawn(
    rsm: Rsm<KvState>,
    opts: ServerOptions,
    identity: Identity,
    fs: SharedFs,
    halted: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let source = KvSnapshots {
            peers: opts.peers.clone(),
            conns: Connections::default(),
        };
        match paxos::recovery::run(&rsm, opts.me, &opts.peers, &source, stop).await {
            Outcome::Voting(incarnation) => {
                let done = Identity {
                    incarnation,
                    recovering: None,
                    ..identity
                };
                if let Err(e) = done.store(&*fs, &opts.dir) {
                    tracing::error!(gid = opts.gid, me = opts.me, error = %e, "cannot record the end of recovery; the next start resumes it");
                }
                tracing::info!(
                    gid = opts.gid,
                    me = opts.me,
                    incarnation,
                    "recovered from a lost disk; voting again"
                );
            }
            Outcome::Halted { recovering } => {
                tracing::error!(
                    gid = opts.gid,
                    me = opts.me,
                    recovering,
                    "halting: restore the group's directories from a backup, or rebuild the \
                     group and move its shards"
                );
                halted.store(true, Ordering::SeqCst);
            }
            Outcome::Stopped => {}
        }
    });
}
