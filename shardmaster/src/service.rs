//! The RPC handler: checks a request, runs it through the log, answers.

use crate::error::ShardmasterError;
use crate::machine::ShardmasterMachine;
use crate::op::OpResult;
use crate::rpc::{OpRequest, ShardmasterRpc};
use paxos::core::ChangeAnswer;
use paxos::rsm::{Rsm, RsmError};
use std::time::{Duration, Instant};
use tarpc::context;

/// Part of the deadline the handler leaves the reply to travel back in.
const REPLY_MARGIN: Duration = Duration::from_millis(50);

/// Serves [`ShardmasterRpc`] on one replica. Cheap to clone (one per request).
#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) rsm: Rsm<ShardmasterMachine>,
    pub(crate) nshards: usize,
    pub(crate) op_timeout: Duration,
    pub(crate) me: usize,
    /// The address the others and the Clerks know this replica by.
    pub(crate) addr: std::sync::Arc<str>,
    /// Every shardmaster's address as the group was started (`--peers`).
    pub(crate) peers: std::sync::Arc<[String]>,
    /// Set once a majority of the shardmasters lost their disks and this one halted.
    pub(crate) halted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The directory's disk use.
    pub(crate) disk: std::sync::Arc<paxos::node::DiskGauge>,
}

impl ShardmasterRpc for Handler {
    async fn snapshot(
        self,
        _: context::Context,
    ) -> Result<crate::rpc::MachineSnapshot, ShardmasterError> {
        self.rsm
            .snapshot(self.op_timeout, |m, applied, membership| {
                m.snapshot(applied, membership)
            })
            .await
            .map_err(|e| ShardmasterError::Unavailable {
                reason: e.to_string(),
            })
    }

    async fn shard_count(self, _: context::Context) -> usize {
        self.nshards
    }

    async fn status(
        self,
        _: context::Context,
    ) -> Result<crate::status::MasterStatus, ShardmasterError> {
        Ok(Handler::status(&self).await)
    }

    async fn change_membership(
        self,
        _: context::Context,
        change: paxos::core::Change,
    ) -> ChangeAnswer {
        tracing::info!(node = self.me, %change, "operator asks for a membership change");
        self.rsm.node().change_seats(change, &self.peers)
    }

    async fn call(
        self,
        ctx: context::Context,
        req: OpRequest,
    ) -> Result<OpResult, ShardmasterError> {
        // Refuse what no state can make valid before it costs a log instance; the
        // replicas check again when they apply it.
        if let Err(e) = req.check(self.nshards) {
            tracing::debug!(
                node = self.me,
                client = req.client,
                seq = req.seq,
                error = %e,
                "request refused"
            );
            return Err(e);
        }
        let budget = ctx
            .deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(REPLY_MARGIN);
        let timeout = self.op_timeout.min(budget).max(Duration::from_millis(1));
        let (client, seq) = (req.client, req.seq);
        let write = req.op.is_write();
        match self.rsm.execute(req, timeout).await {
            Ok(result) => {
                if write {
                    tracing::debug!(
                        node = self.me,
                        client,
                        seq,
                        result = ?result,
                        "write applied"
                    );
                }
                result
            }
            Err(RsmError::Timeout) => {
                tracing::debug!(
                    node = self.me,
                    client,
                    seq,
                    ?timeout,
                    "request not decided in time"
                );
                Err(ShardmasterError::Unavailable {
                    reason: format!(
                        "not decided within {} ms: no leader, or no majority reachable",
                        timeout.as_millis()
                    ),
                })
            }
            Err(RsmError::Paxos(e)) => Err(ShardmasterError::Unavailable {
                reason: e.to_string(),
            }),
        }
    }
}
