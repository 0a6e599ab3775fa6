//! The group leader's background duties: join the cluster, walk the configurations
//! one by one, pull arriving shards from their previous owners, and delete shards
//! the new owners have installed.
//!
//! Every change goes through the group's log (Reconfigure, InstallShard,
//! DeleteShard), so all replicas make it at the same point; this loop only decides
//! when to propose. They are proposed with `execute_unthrottled`: clients' writes
//! wait while the log window is over its budget, these never do. It runs on every replica but acts only while it leads.

use crate::replica::options::ServerOptions;
use crate::rpc::conn::{deadline, Connections};
use crate::state::shard::ShardMode;
use crate::state::{KvCommand, KvState};
use paxos::rsm::Rsm;
use shardmaster::{Clerk as MasterClerk, Config, ConfigNum, Gid};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// How often the leader looks for work.
const POLL: Duration = Duration::from_millis(100);
/// Deadline of one call to the shardmaster or another group.
const CALL: Duration = Duration::from_secs(1);
/// Deadline for proposing one reconfiguration step through the log.
const PROPOSE: Duration = Duration::from_secs(2);

/// Asks the shardmaster how many shards the cluster has (retrying until it answers).
pub(crate) async fn shard_count(masters: &[String]) -> usize {
    let clerk = MasterClerk::new(masters.to_vec());
    loop {
        match clerk.query(ConfigNum::Num(0)).await {
            Ok(c) => return c.shards.len(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot learn the shard count from the shardmaster yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Starts the loop; it ends when `stop` turns true.
pub(crate) fn spawn(rsm: Rsm<KvState>, opts: ServerOptions, stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let masters = MasterClerk::new(opts.masters.clone());
        let conns = Connections::default();
        let mut joined = !opts.join;
        let mut history: BTreeMap<u64, Config> = BTreeMap::new();
        while !*stop.borrow() {
            tokio::time::sleep(POLL).await;
            if !rsm.node().is_leader() {
                continue;
            }
            if !joined {
                joined = join(&masters, &opts, &rsm).await;
            }
            let (num, modes) = rsm.with_state(|s| (s.config().num, s.shard_modes()));
            let moving: Vec<(usize, ShardMode)> = modes
                .into_iter()
                .filter(|(_, m)| *m != ShardMode::Serving)
                .collect();
            if moving.is_empty() {
                next_config(&rsm, &masters, num).await;
                continue;
            }
            for (shard, mode) in moving {
                match mode {
                    ShardMode::Pulling { from, config } => {
                        pull(&rsm, &masters, &conns, &mut history, shard, from, config).await;
                    }
                    ShardMode::Leaving { to, config } => {
                        release(&rsm, &masters, &conns, &mut history, shard, to, config).await;
                    }
                    ShardMode::Serving => {}
                }
            }
        }
    });
}

/// Joins the group to the cluster unless the latest config already has it as
/// given, or as its replica set is now (`diskv admin replica ...` changed it
/// and recorded it with the shardmaster since `--peers` was written).
async fn join(masters: &MasterClerk, opts: &ServerOptions, rsm: &Rsm<KvState>) -> bool {
    let Ok(Ok(latest)) = tokio::time::timeout(CALL, masters.query(ConfigNum::Latest)).await else {
        return false;
    };
    let listed = latest.groups.get(&opts.gid);
    if listed == Some(&opts.peers) || listed == Some(&rsm.node().seats(&opts.peers).addresses()) {
        return true;
    }
    match tokio::time::timeout(CALL * 5, masters.join(opts.gid, opts.peers.clone())).await {
        Ok(Ok(_)) => {
            tracing::info!(gid = opts.gid, "joined the cluster");
            true
        }
        Ok(Err(e)) => {
            tracing::error!(gid = opts.gid, error = %e, "the shardmaster refused to join this group; fix the group's addresses or gid");
            true
        }
        Err(_) => false,
    }
}

/// Proposes config `num + 1` if the shardmaster has it.
async fn next_config(rsm: &Rsm<KvState>, masters: &MasterClerk, num: u64) {
    let Ok(Ok(next)) = tokio::time::timeout(CALL, masters.query(ConfigNum::Num(num + 1))).await
    else {
        return;
    };
    if next.num != num + 1 {
        return;
    }
    match rsm
        .execute_unthrottled(KvCommand::Reconfigure { config: next }, PROPOSE)
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::debug!(config = num + 1, error = %e, "reconfiguration not applied yet")
        }
        Err(e) => tracing::debug!(config = num + 1, error = %e, "reconfiguration not decided yet"),
    }
}

/// The servers of `gid` in config `num` (configs never change, so they are cached).
async fn servers_of(
    masters: &MasterClerk,
    history: &mut BTreeMap<u64, Config>,
    num: u64,
    gid: Gid,
) -> Vec<String> {
    if history.get(&num).is_none() {
        if let Ok(Ok(c)) = tokio::time::timeout(CALL, masters.query(ConfigNum::Num(num))).await {
            if c.num == num {
                history.insert(num, c);
            }
        }
    }
    history
        .get(&num)
        .and_then(|c| c.groups.get(&gid))
        .cloned()
        .unwrap_or_default()
}

/// The servers of `gid` to ask about a shard handoff of config `num`: its list in
/// config `num`, and, once none of those answered, its list in the latest
/// config — the group may have changed its replicas since (`diskv admin
/// replica ...`), and those it removed no longer answer (found by the attack
/// on replica-set changes: a shard stuck for good on its old owner's removed
/// servers).
async fn handoff_servers(
    masters: &MasterClerk,
    history: &mut BTreeMap<u64, Config>,
    num: u64,
    gid: Gid,
    tried: &[String],
) -> Vec<String> {
    if tried.is_empty() {
        return servers_of(masters, history, num, gid).await;
    }
    let Ok(Ok(latest)) = tokio::time::timeout(CALL, masters.query(ConfigNum::Latest)).await else {
        return Vec::new();
    };
    let now = latest.groups.get(&gid).cloned().unwrap_or_default();
    now.into_iter().filter(|a| !tried.contains(a)).collect()
}

/// Fetches an arriving shard from its previous owner and installs it through the log.
async fn pull(
    rsm: &Rsm<KvState>,
    masters: &MasterClerk,
    conns: &Connections,
    history: &mut BTreeMap<u64, Config>,
    shard: usize,
    from: Gid,
    config: u64,
) {
    // The previous owner served the shard in config - 1; its addresses are
    // there, or (after a change of its replicas) in the latest config.
    let mut tried = Vec::new();
    for _ in 0..2 {
        for addr in handoff_servers(masters, history, config - 1, from, &tried).await {
            tried.push(addr.clone());
            if pull_from(rsm, conns, &addr, shard, from, config).await {
                return;
            }
        }
    }
}

/// One attempt to fetch `shard` from the replica at `addr` and install it;
/// true once the previous owner handed it over.
async fn pull_from(
    rsm: &Rsm<KvState>,
    conns: &Connections,
    addr: &str,
    shard: usize,
    from: Gid,
    config: u64,
) -> bool {
    {
        let Ok(client) = conns.get(addr).await else {
            return false;
        };
        match client.fetch_shard(deadline(CALL), config, shard).await {
            Ok(Ok(t)) => {
                let cmd = KvCommand::InstallShard {
                    config,
                    shard,
                    data: t.data,
                    dups: t.dups,
                };
                if let Err(e) = rsm.execute_unthrottled(cmd, PROPOSE).await {
                    tracing::debug!(shard, config, error = %e, "install not decided yet");
                }
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(shard, config, from, %addr, error = %e, "previous owner cannot hand over yet");
                false
            }
            Err(e) => {
                conns.drop_conn(addr);
                tracing::debug!(shard, config, from, %addr, error = %e, "previous owner unreachable");
                false
            }
        }
    }
}

/// Deletes a handed-over shard once its new owner says it installed it.
async fn release(
    rsm: &Rsm<KvState>,
    masters: &MasterClerk,
    conns: &Connections,
    history: &mut BTreeMap<u64, Config>,
    shard: usize,
    to: Gid,
    config: u64,
) {
    if to == shardmaster::NO_GROUP {
        // Every group left: nobody will take the shard. Keep it frozen.
        return;
    }
    let mut tried = Vec::new();
    for _ in 0..2 {
        for addr in handoff_servers(masters, history, config, to, &tried).await {
            tried.push(addr.clone());
            let Ok(client) = conns.get(&addr).await else {
                continue;
            };
            match client.shard_installed(deadline(CALL), config, shard).await {
                Ok(Ok(true)) => {
                    if let Err(e) = rsm
                        .execute_unthrottled(KvCommand::DeleteShard { config, shard }, PROPOSE)
                        .await
                    {
                        tracing::debug!(shard, config, error = %e, "delete not decided yet");
                    }
                    return;
                }
                Ok(Ok(false)) => return,
                Ok(Err(_)) => {}
                Err(_) => conns.drop_conn(&addr),
            }
        }
    }
}
