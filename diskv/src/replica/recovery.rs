//! A replica that lost its disk rejoins: it learns the log from its peers (or,
//! if they forgot part of it, installs a snapshot from the group's leader), and its
//! Paxos replica asks the group to decide its reincarnation; its votes count again
//! only once every instance its lost incarnation may have voted in is decided (see
//! `paxos::membership`). If a majority of the group reports a lost disk, the
//! group cannot recover on its own: the replica halts, loudly. The loop itself is
//! the one every service shares ([`paxos::recovery::watch`]); this module adds the
//! KV snapshot and the identity record.

use crate::replica::identity::Identity;
use crate::replica::options::ServerOptions;
use crate::rpc::conn::{deadline, Connections};
use crate::rpc::GroupSnapshot;
use crate::state::KvState;
use futures::future::BoxFuture;
use paxos::core::Membership;
use paxos::fs::SharedFs;
use paxos::recovery::{Outcome, Snapshot, SnapshotRpc, Watch};
use paxos::rsm::{MachineError, Rsm};
use paxos::Slot;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const CALL: Duration = Duration::from_secs(2);

/// Group snapshots through the KV RPC (`snapshot`, answered by the leader), on
/// cached connections.
struct KvSnapshots {
    conns: Connections,
}

impl SnapshotRpc for KvSnapshots {
    type Machine = KvState;
    type Snapshot = GroupSnapshot;

    fn snapshot<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, Option<GroupSnapshot>> {
        Box::pin(async move {
            let client = self.conns.get(addr).await.ok()?;
            match client.snapshot(deadline(CALL)).await {
                Ok(r) => r.ok(),
                Err(_) => {
                    self.conns.drop_conn(addr);
                    None
                }
            }
        })
    }
}

impl Snapshot<KvState> for GroupSnapshot {
    fn applied(&self) -> Slot {
        self.applied
    }

    fn membership(&self) -> Membership {
        self.membership.clone()
    }

    fn install(&self, state: &mut KvState) -> Result<(), MachineError> {
        state.replace_with(self).map_err(MachineError::state)
    }
}

/// Watches a recovering replica until its votes count again (then clears the
/// identity record's recovering mark), or halts it (setting `halted`): the
/// watcher every service shares ([`paxos::recovery::watch`]), without keep-up.
pub(crate) fn spawn(
    rsm: Rsm<KvState>,
    opts: ServerOptions,
    identity: Identity,
    fs: SharedFs,
    halted: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let watch = Watch {
            me: opts.me,
            peers: opts.peers.clone(),
            rpc: KvSnapshots {
                conns: Connections::default(),
            },
            recovering: true,
            keep_up: false,
            halted,
        };
        let finish = |incarnation| {
            let done = Identity {
                incarnation,
                recovering: None,
                ..identity
            };
            done.store(&*fs, &opts.dir)
        };
        if let Some(Outcome::Halted { recovering }) =
            paxos::recovery::watch(&rsm, watch, finish, stop).await
        {
            tracing::error!(
                gid = opts.gid,
                me = opts.me,
                recovering,
                "halting: restore the group's directories from a backup, or rebuild the \
                 group and move its shards"
            );
        }
    });
}
