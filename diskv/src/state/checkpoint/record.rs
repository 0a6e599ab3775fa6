//! The checkpoint record (`kv/checkpoint`): what it holds besides the key files,
//! and its bytes, `DKC1 | crc32c(body) | body` (postcard).

use crate::state::dedup::DupTable;
use crate::state::keyfile;
use crate::state::shard::ShardMode;
use paxos::fs::durable;
use serde::{Deserialize, Serialize};
use shardmaster::{Config, Gid};
use std::collections::BTreeMap;

/// `DKC1 | crc32c(body) | body`.
const RECORD_HEADER: durable::Header = durable::Header::new(b"DKC1", "diskv checkpoint");

/// What a checkpoint keeps of one shard besides its key files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// Serving, arriving or leaving.
    pub mode: ShardMode,
    /// The shard's duplicate table.
    pub dups: DupTable,
}

/// The checkpoint record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// Increases by one per checkpoint; names the temp files.
    pub number: u64,
    /// Every log instance below this is reflected in the key files.
    pub applied: u64,
    /// The replica group.
    pub gid: Gid,
    /// The configuration applied.
    pub config: Config,
    /// Log time (ms) of the latest applied command.
    pub now_ms: u64,
    /// The shards held, without their data.
    pub shards: BTreeMap<usize, ShardMeta>,
    /// Key files still to rename into place: (shard, file name).
    pub writes: Vec<(usize, String)>,
    /// Key files still to delete: (shard, file name).
    pub deletes: Vec<(usize, String)>,
    /// Shard folders still to delete.
    pub dropped: Vec<usize>,
}

/// The bytes of the checkpoint file holding `r`: `DKC1`, the CRC32C of the rest,
/// then `r` in postcard.
pub fn encode_record(r: &CheckpointRecord) -> Result<Vec<u8>, postcard::Error> {
    Ok(RECORD_HEADER.encode(&postcard::to_allocvec(r)?))
}

/// Parses a checkpoint file written by [`encode_record`]; the error says what is
/// wrong.
pub fn decode_record(bytes: &[u8]) -> Result<CheckpointRecord, String> {
    let body = RECORD_HEADER.decode(bytes).map_err(|e| e.to_string())?;
    let record: CheckpointRecord =
        postcard::from_bytes(body).map_err(|e| format!("undecodable: {e}"))?;
    // Checksummed is not trusted: the names are joined to a shard's folder and
    // renamed or deleted, so none may lead out of it.
    if let Some((_, name)) = record
        .writes
        .iter()
        .chain(&record.deletes)
        .find(|(_, name)| !keyfile::is_file_name(name))
    {
        return Err(format!("names {name:?}, which is not a key file name"));
    }
    Ok(record)
}
