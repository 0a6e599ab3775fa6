//! The identity record of a replica directory: which group and replica it belongs
//! to, the shard count of the cluster, and the acceptor incarnation.
//!
//! Written once, atomically, when a replica first starts. A directory without one
//! is either new (first start) or lost (`--restart`, or peers that show the group
//! ran: never start fresh then); see `crate::disk`.

use crate::error::StateError;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::Path;

const FILE: &str = "identity";

/// Who a replica directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The replica group.
    pub gid: u64,
    /// The replica's index in its group.
    pub me: usize,
    /// Shards in the cluster.
    pub nshards: usize,
    /// Acceptor incarnation: raised each time the replica recovers a lost disk.
    pub incarnation: u64,
    /// `Some(nonce)` while the replica recovers a lost disk (its reincarnation
    /// request); cleared once it votes again.
    #[serde(default)]
    pub recovering: Option<u64>,
}

impl Identity {
    /// Reads the identity of `dir`, if it has one.
    pub fn load(dir: &Path) -> Result<Option<Identity>, StateError> {
        let path = dir.join(FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::Io { path, source: e }),
        }
    }

    /// Writes the identity durably (temp file, fsync, rename, directory fsync).
    pub fn store(&self, dir: &Path) -> Result<(), StateError> {
        let io = |path: &Path, e| StateError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let tmp = dir.join(format!("{FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        let mut f = fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| io(&tmp, e))?;
        let path = dir.join(FILE);
        fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, e))
    }

    /// Checks that this identity is the one the command line describes.
    pub fn check(&self, gid: u64, me: usize, dir: &Path) -> Result<(), StateError> {
        if self.gid != gid || self.me != me {
            return Err(StateError::Mismatch(format!(
                "{} belongs to replica {} of group {}, not replica {me} of group {gid}; use that replica's own directory",
                dir.display(),
                self.me,
                self.gid
            )));
        }
        Ok(())
    }
}
