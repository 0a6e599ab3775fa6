//! The duplicate table: per client, its latest Join / Leave / Move and that
//! operation's result, so a retried write is answered, not applied again (the
//! rules are in [`crate::machine`], which keeps the table). A type of its own so
//! the checkpoint ([`crate::persist`]) and the snapshot RPC ([`crate::rpc`]) can
//! name it without depending on the state machine.

use crate::error::ShardmasterError;
use crate::op::OpResult;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per client id, its latest Join / Leave / Move and that operation's result.
pub type DupTable = BTreeMap<u64, DupEntry>;

/// What the duplicate table remembers of one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DupEntry {
    /// The sequence number of the client's latest applied write.
    pub seq: u64,
    /// Its result, returned again to retries.
    pub result: Result<OpResult, ShardmasterError>,
}
