//! The wire: what a client sends, what the log stores, and the one RPC.
//!
//! A request is an [`OpRequest`]: the [`Op`] plus the client's id and the
//! operation's sequence number. The same value is the command stored in the Paxos log,
//! so every replica sees who asked, and a retried Join, Leave or Move is recognised
//! as a duplicate and answered with its first result (see [`crate::machine`]).
//!
//! The RPC travels on the daemon's one port, on connections tagged
//! [`paxos::transport::mux::CLIENT`], with the workspace's postcard codec.

use crate::error::ShardmasterError;
use crate::op::{Op, OpResult};
use serde::{Deserialize, Serialize};

/// One operation of one client, as sent over the network and stored in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRequest {
    /// The client's id, random per [`Clerk`](crate::Clerk).
    pub client: u64,
    /// The client's sequence number for this operation: 1, 2, ... for Join, Leave and
    /// Move, one per operation and the same for every retry of it. Queries need no
    /// duplicate detection and may use 0.
    pub seq: u64,
    /// The operation.
    pub op: Op,
}

impl OpRequest {
    /// Refuses what no state can make valid before it costs a log instance: the
    /// op's own checks ([`Op::validate`]) and a write without a sequence number.
    /// Replicas check again when they apply it.
    pub fn check(&self, nshards: usize) -> Result<(), ShardmasterError> {
        self.op.validate(nshards)?;
        if self.op.is_write() && self.seq == 0 {
            return Err(ShardmasterError::BadRequest {
                reason: "a Join, Leave or Move needs a sequence number of 1 or more".into(),
            });
        }
        Ok(())
    }
}

/// The shardmaster's RPC.
/// A shardmaster replica's whole state, for a replica that lost its disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineSnapshot {
    /// Every log instance below this is reflected.
    pub applied: paxos::Slot,
    /// Every configuration.
    pub store: crate::state::ConfigStore,
    /// The duplicate table.
    pub dups: crate::dedup::DupTable,
    /// The sender's Paxos membership epochs.
    pub membership: paxos::core::Membership,
}

#[tarpc::service]
pub trait ShardmasterRpc {
    /// Runs `req` through the Paxos log and returns its result once applied here.
    ///
    /// [`ShardmasterError::Unavailable`] means the outcome is unknown: retry the same
    /// request (same client and seq), here or at another replica. Every other error
    /// is the operation's final answer.
    async fn call(req: OpRequest) -> Result<OpResult, ShardmasterError>;
    /// The replica's whole state, linearizably (leader only): for a replica that
    /// lost its disk.
    async fn snapshot() -> Result<MachineSnapshot, ShardmasterError>;
    /// The cluster's shard count, fixed when it was made (no log round).
    async fn shard_count() -> usize;
    /// What the replica says about itself (role, log positions, latest
    /// configuration, disk), from its local state with no log round.
    async fn status() -> Result<crate::status::MasterStatus, ShardmasterError>;
    /// An operator's change to the shardmasters' own replica set (`diskv admin
    /// replica ... master`): proposed by the leader through the log; any other
    /// replica answers which one leads. See `paxos::membership`.
    async fn change_membership(change: paxos::core::Change) -> paxos::core::ChangeAnswer;
}

/// A client of the shardmaster replica at `addr`, on a new connection opened
/// within `within`.
pub async fn connect(
    addr: &str,
    within: std::time::Duration,
) -> std::io::Result<ShardmasterRpcClient> {
    use paxos::transport::{codec, mux};
    let stream = tokio::time::timeout(within, mux::connect(addr, mux::CLIENT))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {addr} timed out"),
            )
        })??;
    Ok(ShardmasterRpcClient::new(tarpc::client::Config::default(), codec::framed(stream)).spawn())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::ConfigNum;

    fn req(seq: u64, op: Op) -> OpRequest {
        OpRequest { client: 1, seq, op }
    }

    #[test]
    fn check_refuses_invalid_ops_and_unnumbered_writes_but_not_queries() {
        assert_eq!(req(0, Op::query(ConfigNum::Latest)).check(4), Ok(()));
        assert_eq!(req(3, Op::Leave { gid: 2 }).check(4), Ok(()));
        assert!(matches!(
            req(0, Op::Leave { gid: 2 }).check(4),
            Err(ShardmasterError::BadRequest { .. })
        ));
        assert_eq!(
            req(1, Op::Move { shard: 4, gid: 2 }).check(4),
            Err(ShardmasterError::ShardOutOfRange {
                shard: 4,
                nshards: 4
            })
        );
        assert_eq!(
            req(0, Op::Query { num: -2 }).check(4),
            Err(ShardmasterError::BadConfigNum { num: -2 })
        );
    }
}
