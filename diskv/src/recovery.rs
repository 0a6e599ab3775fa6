//! A replica that lost its disk rejoins: it learns the log from its peers (or,
//! if they forgot part of it, installs a snapshot from the group's leader), and its
//! Paxos replica asks the group to decide its reincarnation; it votes again only
//! after that (see `paxos::core::membership`). If a majority of the group reports a
//! lost disk, the group cannot recover on its own: the replica halts, loudly.

use crate::conn::{deadline, Connections};
use crate::identity::Identity;
use crate::server::ServerOptions;
use crate::state::KvState;
use paxos::rsm::{Install, Rsm};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const POLL: Duration = Duration::from_millis(200);
const CALL: Duration = Duration::from_secs(2);

/// Watches a recovering replica until it votes again, or halts it.
pub(crate) fn spawn(
    rsm: Rsm<KvState>,
    opts: ServerOptions,
    identity: Identity,
    halted: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let conns = Connections::default();
        let mut wanted = rsm.snapshot_wanted();
        let mut last_warning = Instant::now();
        let majority = opts.peers.len() / 2 + 1;
        while !*stop.borrow() {
            tokio::time::sleep(POLL).await;
            if let Some(k) = rsm.node().incarnation() {
                let id = Identity {
                    incarnation: k,
                    recovering: None,
                    ..identity.clone()
                };
                if let Err(e) = id.store(&opts.dir) {
                    tracing::error!(error = %e, "cannot record the end of recovery; will retry");
                    continue;
                }
                tracing::info!(
                    gid = opts.gid,
                    me = opts.me,
                    incarnation = k,
                    "recovered from a lost disk; voting again"
                );
                return;
            }
            let floor = *wanted.borrow_and_update();
            let mut recovering = 1;
            for (i, addr) in opts.peers.iter().enumerate() {
                if i == opts.me {
                    continue;
                }
                let Ok(client) = conns.get(addr).await else {
                    continue;
                };
                match client.status(deadline(CALL)).await {
                    Ok(s) if s.recovering => recovering += 1,
                    Ok(_) => {}
                    Err(_) => {
                        conns.drop_conn(addr);
                        continue;
                    }
                }
                if let Some(floor) = floor {
                    if let Ok(Ok(snap)) = client.snapshot(deadline(CALL)).await {
                        if snap.applied >= floor {
                            let applied = snap.applied;
                            let membership = snap.membership.clone();
                            let replace = Box::new(move |st: &mut KvState| {
                                st.replace_with(&snap).map_err(|e| e.to_string())
                            });
                            rsm.install(Install {
                                replace,
                                applied,
                                membership,
                            });
                        }
                    }
                }
            }
            if recovering >= majority {
                tracing::error!(
                    gid = opts.gid,
                    recovering,
                    replicas = opts.peers.len(),
                    "a majority of this group lost their disks: the acknowledged data may exist nowhere else \
                     and the group cannot recover safely on its own. Halting. Restore the group's directories \
                     from a backup, or rebuild the group and move its shards."
                );
                halted.store(true, Ordering::SeqCst);
                rsm.node().stop();
                return;
            }
            if last_warning.elapsed() > Duration::from_secs(5) {
                last_warning = Instant::now();
                tracing::warn!(gid = opts.gid, me = opts.me, "recovering a lost disk: waiting for a majority of the old membership to admit this replica");
            }
        }
    });
}
