//! The checkpoint file (`DIR/state`): every configuration, the duplicate table and
//! the log instance they cover, behind a checksummed header.

use super::{corrupt, read_optional, storage_err, write_atomic, STATE_FILE};
use crate::dedup::DupTable;
use crate::error::ShardmasterError;
use crate::state::ConfigStore;
use paxos::fs::{durable, FileSystem};
use paxos::Slot;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `DSM1 | crc32c(payload) | len(payload) | payload`.
const HEADER: durable::Header = durable::Header::with_length(b"DSM1", "shardmaster checkpoint");

/// A replica's state at a point of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every log instance below this is reflected in `store` and `dups`.
    pub applied: Slot,
    /// Every configuration.
    pub store: ConfigStore,
    /// The last Join / Leave / Move of each client and its result.
    pub dups: DupTable,
}

/// A borrowed [`Checkpoint`]: serializes to the same bytes without copying the state.
#[derive(Serialize)]
pub struct CheckpointRef<'a> {
    /// See [`Checkpoint::applied`].
    pub applied: Slot,
    /// See [`Checkpoint::store`].
    pub store: &'a ConfigStore,
    /// See [`Checkpoint::dups`].
    pub dups: &'a DupTable,
}

impl Checkpoint {
    /// Borrows this checkpoint for [`save_checkpoint`].
    pub fn borrowed(&self) -> CheckpointRef<'_> {
        CheckpointRef {
            applied: self.applied,
            store: &self.store,
            dups: &self.dups,
        }
    }
}

/// Writes `ckpt` as `dir/state`, atomically and durably.
pub fn save_checkpoint(
    fs: &dyn FileSystem,
    dir: &Path,
    ckpt: &CheckpointRef<'_>,
) -> Result<(), ShardmasterError> {
    let path = dir.join(STATE_FILE);
    let bytes = encode_checkpoint(ckpt).map_err(|e| storage_err("encode", &path, e))?;
    write_atomic(fs, dir, STATE_FILE, &bytes)
}

/// Replaces `dir/state` with a checkpoint encoded by [`encode_checkpoint`].
pub fn save_encoded_checkpoint(
    fs: &dyn FileSystem,
    dir: &Path,
    bytes: &[u8],
) -> Result<(), ShardmasterError> {
    write_atomic(fs, dir, STATE_FILE, bytes)
}

/// Reads `dir/state`; `None` if there is none yet.
pub fn load_checkpoint(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<Option<Checkpoint>, ShardmasterError> {
    let path = dir.join(STATE_FILE);
    match read_optional(fs, &path)? {
        None => Ok(None),
        Some(bytes) => decode_checkpoint(&bytes)
            .map(Some)
            .map_err(|reason| corrupt(&path, reason)),
    }
}

/// The checkpoint file's bytes.
pub fn encode_checkpoint(ckpt: &CheckpointRef<'_>) -> Result<Vec<u8>, postcard::Error> {
    Ok(HEADER.encode(&postcard::to_stdvec(ckpt)?))
}

/// Parses a checkpoint file, checking magic, length, checksum and the store's
/// invariants; the error says what failed.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Checkpoint, String> {
    let payload = HEADER.decode(bytes).map_err(|e| e.to_string())?;
    postcard::from_bytes(payload).map_err(|e| format!("undecodable payload: {e}"))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::dedup::DupEntry;
    use crate::op::{Op, OpResult};
    use paxos::fs::OsFs;
    use std::fs;

    pub(crate) fn sample() -> Checkpoint {
        let mut store = ConfigStore::new(4).unwrap();
        store
            .apply(&Op::Join {
                gid: 7,
                servers: vec!["a:1".into()],
            })
            .unwrap();
        let mut dups = DupTable::new();
        dups.insert(
            42,
            DupEntry {
                seq: 3,
                result: Ok(OpResult::Changed { num: 1 }),
            },
        );
        dups.insert(
            43,
            DupEntry {
                seq: 1,
                result: Err(ShardmasterError::UnknownGroup { gid: 9 }),
            },
        );
        Checkpoint {
            applied: 17,
            store,
            dups,
        }
    }

    #[test]
    fn checkpoint_round_trips_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_checkpoint(&OsFs, dir.path()).unwrap(), None);
        save_checkpoint(&OsFs, dir.path(), &sample().borrowed()).unwrap();
        assert_eq!(load_checkpoint(&OsFs, dir.path()).unwrap(), Some(sample()));
        assert!(!dir.path().join("state.tmp").exists());
    }

    #[test]
    fn every_damaged_checkpoint_is_refused() {
        let good = encode_checkpoint(&sample().borrowed()).unwrap();
        assert_eq!(decode_checkpoint(&good), Ok(sample()));
        // Torn at every length.
        for cut in 0..good.len() {
            assert!(decode_checkpoint(&good[..cut]).is_err(), "cut at {cut}");
        }
        // Any flipped bit.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(decode_checkpoint(&bad).is_err(), "flip at {i}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode_checkpoint(&long).is_err());
    }

    #[test]
    fn a_corrupt_checkpoint_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"DSM1garbage-garbage").unwrap();
        let err = load_checkpoint(&OsFs, dir.path()).unwrap_err();
        assert!(
            matches!(&err, ShardmasterError::CorruptFile { path, .. } if path.ends_with("state")),
            "{err:?}"
        );
        assert!(err.to_string().contains("refuses to start"), "{err}");
    }
}
