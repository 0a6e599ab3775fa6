//! The manifest of a backup: what it holds and the checksum of every shard file.
//! JSON, so an operator can read it, sealed with a checksum line
//! (`paxos::fs::durable::seal`), so a flipped bit is caught.

use crate::error::BackupError;
use serde::{Deserialize, Serialize};
use shardmaster::Gid;
use std::path::Path;

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "MANIFEST";

/// The backup format this diskv writes and reads.
pub const FORMAT: u64 = 1;

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The backup format ([`FORMAT`]).
    pub format: u64,
    /// Shards of the cluster backed up.
    pub shard_count: usize,
    /// The configuration every shard was read at.
    pub config: u64,
    /// When the backup started (ms since the Unix epoch); no shard was read before.
    pub started_unix_ms: u64,
    /// When the last shard had been read; no shard was read after.
    pub finished_unix_ms: u64,
    /// One entry per shard, in shard order.
    pub shards: Vec<ShardEntry>,
}

/// One shard of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// The shard.
    pub shard: usize,
    /// The group that owned it in the configuration read.
    pub gid: Gid,
    /// Its file's name in the backup directory ([`ShardEntry::file_name`]).
    pub file: String,
    /// Keys in the shard.
    pub keys: u64,
    /// The file's length in bytes.
    pub bytes: u64,
    /// The file's crc32c.
    pub crc32c: u32,
}

impl ShardEntry {
    /// The name of shard `shard`'s file.
    pub fn file_name(shard: usize) -> String {
        format!("shard-{shard:04}.dkvb")
    }
}

impl Manifest {
    /// Keys in the whole backup.
    pub fn keys(&self) -> u64 {
        self.shards.iter().map(|s| s.keys).sum()
    }

    /// Bytes of the shard files.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }

    /// The manifest as written: pretty JSON and a checksum line.
    pub fn encode(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        paxos::fs::durable::seal(&json)
    }

    /// Reads the manifest `bytes` of the file `path`: its checksum, its format,
    /// then its fields, and that it lists every shard once, in order, under the
    /// file name diskv gives it.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Manifest, BackupError> {
        let bad = |reason: String| BackupError::BadManifest {
            path: path.to_path_buf(),
            reason,
        };
        let text = paxos::fs::durable::unseal(bytes).map_err(bad)?;
        if text.len() == bytes.len() {
            return Err(bad("it has no checksum line".into()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let found = value.get("format").and_then(serde_json::Value::as_u64);
        match found {
            None => return Err(bad("it names no format".into())),
            Some(FORMAT) => {}
            Some(found) => {
                return Err(BackupError::Version {
                    path: path.to_path_buf(),
                    found,
                })
            }
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| bad(format!("a field is wrong: {e}")))?;
        if manifest.shard_count == 0 || manifest.shards.len() != manifest.shard_count {
            return Err(bad(format!(
                "it lists {} shard files for {} shards",
                manifest.shards.len(),
                manifest.shard_count
            )));
        }
        for (i, entry) in manifest.shards.iter().enumerate() {
            if entry.shard != i || entry.file != ShardEntry::file_name(i) {
                return Err(bad(format!(
                    "entry {i} names shard {} in file {:?}",
                    entry.shard, entry.file
                )));
            }
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            shard_count: 2,
            config: 7,
            started_unix_ms: 1,
            finished_unix_ms: 2,
            shards: (0..2)
                .map(|shard| ShardEntry {
                    shard,
                    gid: 1,
                    file: ShardEntry::file_name(shard),
                    keys: 3,
                    bytes: 40,
                    crc32c: 0xdead_beef,
                })
                .collect(),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Manifest, BackupError> {
        Manifest::decode(Path::new("MANIFEST"), bytes)
    }

    #[test]
    fn a_manifest_round_trips() {
        let m = manifest();
        assert_eq!(decode(&m.encode()).unwrap(), m);
        assert_eq!((m.keys(), m.bytes()), (6, 80));
    }

    #[test]
    fn a_flipped_byte_is_caught() {
        let bytes = manifest().encode();
        for at in [3, bytes.len() / 2, bytes.len() - 3] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            let e = decode(&bad).unwrap_err();
            assert!(
                matches!(e, BackupError::BadManifest { .. }),
                "byte {at}: {e}"
            );
        }
    }

    #[test]
    fn a_truncated_or_unsealed_manifest_is_refused() {
        let bytes = manifest().encode();
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        let json = serde_json::to_vec(&manifest()).unwrap();
        let e = decode(&json).unwrap_err();
        assert!(e.to_string().contains("no checksum line"), "{e}");
    }

    #[test]
    fn another_format_is_named_in_the_error() {
        let mut m = manifest();
        m.format = 2;
        let e = decode(&m.encode()).unwrap_err();
        assert!(matches!(e, BackupError::Version { found: 2, .. }), "{e}");
        assert!(e.to_string().contains("format 2"), "{e}");
    }

    #[test]
    fn shards_missing_or_out_of_place_are_refused() {
        let mut m = manifest();
        m.shards.pop();
        assert!(decode(&m.encode()).is_err());
        let mut m = manifest();
        m.shards[1].file = "../../etc/passwd".into();
        assert!(decode(&m.encode()).is_err());
    }
}
