//! The identity record of a replica directory: which cluster (named by its
//! shardmaster addresses), group and replica it belongs to, the shard count of the
//! cluster, and the acceptor incarnation.
//!
//! Written once, atomically, when a replica first starts. A directory without one
//! is either new (first start) or lost (`--restart`, or peers that show the group
//! ran: never start fresh then); see `crate::replica::disk`.

use crate::error::StateError;
use paxos::fs::{durable, FileSystem};
use serde::{Deserialize, Serialize};
use std::path::Path;

const FILE: &str = "identity";

/// Who a replica directory belongs to. Stored as JSON sealed with a checksum
/// ([`durable::seal`]); an unknown field is damage too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The cluster: its shardmaster addresses (`--masters`), sorted. Empty in
    /// records written before it was kept; filled in at the next start.
    #[serde(default)]
    pub cluster: Vec<String>,
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
    /// Reads the identity of `dir` on `fs`, if it has one.
    pub fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Identity>, StateError> {
        let path = dir.join(FILE);
        let bytes = match durable::read_if_exists(fs, &path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        durable::unseal(&bytes)
            .and_then(|text| serde_json::from_slice(text).map_err(|e| e.to_string()))
            .map(Some)
            .map_err(|reason| StateError::Corrupt { path, reason })
    }

    /// Writes the identity of `dir` on `fs` durably ([`durable::replace`]).
    pub fn store(&self, fs: &dyn FileSystem, dir: &Path) -> Result<(), StateError> {
        let io = |path: &Path, source| StateError::Io {
            path: path.to_path_buf(),
            source,
        };
        durable::create_dir_all(fs, dir).map_err(|e| io(dir, e))?;
        let path = dir.join(FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| StateError::Encode {
            what: "the replica identity",
            reason: e.to_string(),
        })?;
        let bytes = durable::seal(&json);
        durable::replace(fs, &path, &bytes).map_err(|e| io(&path, e))
    }

    /// The cluster name of shardmaster addresses `masters`: the same whatever
    /// their order on the command line.
    pub fn cluster_of(masters: &[String]) -> Vec<String> {
        let mut c = masters.to_vec();
        c.sort();
        c.dedup();
        c
    }

    /// Checks that this identity is the one the command line describes: the same
    /// cluster (unless the record predates cluster names), group and replica.
    pub fn check(
        &self,
        masters: &[String],
        gid: u64,
        me: usize,
        dir: &Path,
    ) -> Result<(), StateError> {
        let cluster = Self::cluster_of(masters);
        if !self.cluster.is_empty() && self.cluster != cluster {
            return Err(StateError::Mismatch(format!(
                "{} belongs to the cluster whose shardmasters are {}, not {}; use this \
                 cluster's own directory (if the shardmasters really moved, set \"cluster\" in \
                 {} to the new addresses)",
                dir.display(),
                self.cluster.join(","),
                cluster.join(","),
                dir.join(FILE).display()
            )));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::fs::OsFs;

    fn masters(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn identity(cluster: &[&str]) -> Identity {
        Identity {
            cluster: Identity::cluster_of(&masters(cluster)),
            gid: 1,
            me: 0,
            nshards: 10,
            incarnation: 0,
            recovering: None,
        }
    }

    /// Found by the simulator: one flipped bit in the key `"recovering"` made the
    /// JSON parser drop the field, and a replica recovering a lost disk restarted
    /// as a voter of its lost incarnation. No single flipped bit may turn a
    /// recovering identity into one that is not.
    #[test]
    fn no_flipped_bit_makes_a_recovering_replica_forget_it_recovers() {
        use paxos::fs::{FileSystem, SimFs};
        let sim = SimFs::new();
        let dir = Path::new("/r");
        let id = Identity {
            recovering: Some(0x5eed),
            ..identity(&["127.0.0.1:7001"])
        };
        id.store(&sim, dir).unwrap();
        let path = dir.join(FILE);
        let stored = sim.read(&path).unwrap();
        for byte in 0..stored.len() {
            for bit in 0..8 {
                let mut damaged = stored.clone();
                damaged[byte] ^= 1 << bit;
                sim.write(&path, &damaged).unwrap();
                match Identity::load(&sim, dir) {
                    Err(StateError::Corrupt { .. }) => {}
                    Ok(Some(read)) => assert_eq!(
                        read, id,
                        "byte {byte} bit {bit} changed the identity unnoticed"
                    ),
                    other => panic!("byte {byte} bit {bit}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_directory_of_another_cluster_is_refused() {
        let dir = Path::new("/data/g1r0");
        let id = identity(&["127.0.0.1:7001", "127.0.0.1:7002"]);
        let err = id
            .check(&masters(&["127.0.0.1:9001"]), 1, 0, dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("127.0.0.1:7001,127.0.0.1:7002"), "{err}");
        assert!(err.contains("127.0.0.1:9001"), "{err}");
        // The same shardmasters in another order are the same cluster.
        id.check(&masters(&["127.0.0.1:7002", "127.0.0.1:7001"]), 1, 0, dir)
            .unwrap();
        // Another group or replica of the right cluster is refused too.
        let same = masters(&["127.0.0.1:7001", "127.0.0.1:7002"]);
        assert!(id.check(&same, 2, 0, dir).is_err());
        assert!(id.check(&same, 1, 1, dir).is_err());
    }

    #[test]
    fn a_record_written_before_cluster_names_is_accepted_and_reads_back() {
        let old = r#"{"gid":1,"me":0,"nshards":10,"incarnation":2}"#;
        let id: Identity = serde_json::from_str(old).unwrap();
        assert!(id.cluster.is_empty());
        id.check(&masters(&["127.0.0.1:1"]), 1, 0, Path::new("d"))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let named = identity(&["b:1", "a:1"]);
        named.store(&OsFs, dir.path()).unwrap();
        let back = Identity::load(&OsFs, dir.path()).unwrap().unwrap();
        assert_eq!(back, named);
        assert_eq!(back.cluster, vec!["a:1".to_string(), "b:1".to_string()]);
    }
}
