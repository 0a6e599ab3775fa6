//! What a shardmaster replica says about itself to an operator
//! ([`crate::rpc::ShardmasterRpc::status`]): read from its local state, with no
//! log round, so a replica without a leader or a majority still answers.

use crate::service::Handler;
use paxos::node::{DiskUse, NodeReport};
use paxos::Slot;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

/// One shardmaster replica's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterStatus {
    /// Its index among the shardmasters.
    pub me: usize,
    /// The address the others and the Clerks know it by.
    pub addr: String,
    /// Its Paxos role and log positions.
    pub node: NodeReport,
    /// Every log instance below this is applied to its state.
    pub applied: Slot,
    /// The latest configuration it has applied.
    pub latest_config: u64,
    /// Its directory's disk use, when it could be measured.
    pub disk: Option<DiskUse>,
    /// Why the disk use could not be measured.
    pub disk_error: Option<String>,
}

impl Handler {
    /// What this replica says about itself.
    pub(crate) async fn status(&self) -> MasterStatus {
        let node = self
            .rsm
            .node()
            .report(self.halted.load(Ordering::SeqCst), &self.peers);
        let applied = self.rsm.applied();
        let latest_config = self.rsm.with_state(|m| m.store().latest().num);
        let (disk, disk_error) = match self.disk.read().await {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e)),
        };
        MasterStatus {
            me: self.me,
            addr: self.addr.to_string(),
            node,
            applied,
            latest_config,
            disk,
            disk_error,
        }
    }
}

/// Asks the shardmaster replica at `addr` for its status, giving up after
/// `timeout` (connect included); the error says what went wrong.
pub async fn ask(addr: &str, timeout: std::time::Duration) -> Result<MasterStatus, String> {
    let asked = async {
        let rpc = crate::rpc::connect(addr, timeout)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let mut ctx = tarpc::context::current();
        ctx.deadline = std::time::Instant::now() + timeout;
        match rpc.status(ctx).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(e) => Err(format!("no answer: {e}")),
        }
    };
    tokio::time::timeout(timeout, asked)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}
