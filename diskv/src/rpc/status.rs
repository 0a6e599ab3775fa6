//! What a KV replica says about itself to an operator ([`super::KvRpc::status`]):
//! read from its local state, with no log round, so a replica without a leader
//! or a majority still answers.

use crate::state::shard::ShardMode;
use paxos::node::{DiskUse, NodeReport};
use paxos::Slot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One KV replica's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Its group.
    pub gid: u64,
    /// Its index in the group.
    pub me: usize,
    /// The address its group's configuration names it by.
    pub addr: String,
    /// Its Paxos role and log positions.
    pub node: NodeReport,
    /// Every log instance below this is applied to its state.
    pub applied: Slot,
    /// The shard configuration its state has reached.
    pub config: u64,
    /// The shards it holds and how: serving, arriving or leaving.
    pub shards: BTreeMap<usize, ShardMode>,
    /// Keys held in serving shards.
    pub keys: u64,
    /// Its directory's disk use, when it could be measured.
    pub disk: Option<DiskUse>,
    /// Why the disk use could not be measured.
    pub disk_error: Option<String>,
}

/// Asks the KV replica at `addr` for its status through `conns` (a connection is
/// reused across surveys, and dropped after an error), giving up after `timeout`
/// (connect included); the error says what went wrong.
pub async fn ask(
    conns: &super::conn::Connections,
    addr: &str,
    timeout: std::time::Duration,
) -> Result<ReplicaStatus, String> {
    let asked = async {
        let rpc = conns
            .get(addr)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        match rpc.status(super::conn::deadline(timeout)).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(e) => {
                conns.drop_conn(addr);
                Err(format!("no answer: {e}"))
            }
        }
    };
    tokio::time::timeout(timeout, asked)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}
