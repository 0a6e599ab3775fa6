//! `diskv restore DIR`: check a backup whole, then load it into an empty
//! cluster through Clerks.

use crate::backup::manifest::{Manifest, MANIFEST};
use crate::backup::shard_file;
use crate::client::clerk::Clerk;
use crate::error::BackupError;
use crate::op::KvError;
use shardmaster::{Clerk as MasterClerk, ConfigNum, NO_GROUP};
use std::io;
use std::path::Path;

/// How a restore runs.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Load into a cluster that holds keys already: the backup's keys overwrite
    /// theirs, other keys stay.
    pub force: bool,
    /// Clerks writing at once.
    pub clerks: usize,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            force: false,
            clerks: 16,
        }
    }
}

/// The manifest of the backup in `dir`, once it and every shard file it lists
/// are found intact (see [`shard_file::decode`]). Reads one file at a time.
pub fn verify(dir: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(dir)?;
    for entry in &manifest.shards {
        shard_pairs(dir, &manifest, entry.shard)?;
    }
    Ok(manifest)
}

/// Loads the backup in `dir` (checked by [`verify`] first: nothing is written
/// if any file is damaged) into the cluster whose shardmasters are `masters`
/// (asked for the configuration through `master`),
/// which must have the backup's shard count, a group for every shard, and no
/// key unless `opts.force`. Every pair is one Clerk put, applied exactly once;
/// a Clerk retries until its group answers. Returns the manifest.
pub async fn load(
    master: &MasterClerk,
    masters: Vec<String>,
    dir: &Path,
    opts: &RestoreOptions,
) -> Result<Manifest, BackupError> {
    let manifest = verify(dir)?;
    let config = master.query(ConfigNum::Latest).await?;
    if config.shards.len() != manifest.shard_count {
        return Err(BackupError::ShardCount {
            backup: manifest.shard_count,
            cluster: config.shards.len(),
        });
    }
    if let Some(shard) = config.shards.iter().position(|&g| g == NO_GROUP) {
        return Err(BackupError::Unassigned {
            shard,
            config: config.num,
        });
    }
    let mut clerks = Vec::with_capacity(opts.clerks.max(1));
    for _ in 0..opts.clerks.max(1) {
        clerks.push(Clerk::new(masters.clone()).await);
    }
    if !opts.force {
        if let Some(example) = clerks[0].keys("", 1).await?.pop() {
            return Err(BackupError::NotEmpty { example });
        }
    }
    let mut written = 0;
    for entry in &manifest.shards {
        let pairs = shard_pairs(dir, &manifest, entry.shard)?;
        let keys = pairs.len();
        put_all(&mut clerks, pairs)
            .await
            .map_err(|source| BackupError::Partial { written, source })?;
        written += keys;
        tracing::info!(shard = entry.shard, keys, written, "restore: shard loaded");
    }
    Ok(manifest)
}

fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => Manifest::decode(&path, &bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BackupError::NoManifest {
            dir: dir.to_path_buf(),
        }),
        Err(source) => Err(BackupError::Io { path, source }),
    }
}

/// The pairs of `shard`'s file, checked against the manifest.
fn shard_pairs(
    dir: &Path,
    manifest: &Manifest,
    shard: usize,
) -> Result<Vec<(String, String)>, BackupError> {
    let entry = &manifest.shards[shard];
    let path = dir.join(&entry.file);
    let bad = |reason: String| BackupError::BadShardFile {
        path: path.clone(),
        reason,
    };
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => bad("it is missing".into()),
        _ => bad(e.to_string()),
    })?;
    shard_file::decode(manifest, entry, &bytes).map_err(bad)
}

/// Puts `pairs`, spread over `clerks`, each Clerk one put at a time.
async fn put_all(clerks: &mut [Clerk], pairs: Vec<(String, String)>) -> Result<(), KvError> {
    let mut lanes: Vec<Vec<(String, String)>> = vec![Vec::new(); clerks.len()];
    for (i, pair) in pairs.into_iter().enumerate() {
        lanes[i % clerks.len()].push(pair);
    }
    let runs = clerks
        .iter_mut()
        .zip(lanes)
        .map(|(clerk, lane)| async move {
            for (key, value) in lane {
                clerk.put(&key, &value).await?;
            }
            Ok::<(), KvError>(())
        });
    futures::future::try_join_all(runs).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::{ShardEntry, FORMAT};
    use crate::backup::shard_file::ShardFileWriter;

    const SHARDS: usize = 3;

    /// A backup of `SHARDS` shards written by hand into `dir`, as `take` writes it.
    fn write_backup(dir: &Path) -> Manifest {
        let all = (0..SHARDS)
            .map(|shard| {
                (0..30)
                    .map(|i| format!("k{i}"))
                    .filter(|k| shardmaster::shard_of(k.as_bytes(), SHARDS) == shard)
                    .map(|k| (k.clone(), format!("value of {k}\n")))
                    .collect()
            })
            .collect();
        write_shards(dir, 5, all)
    }

    /// Writes one file per shard of `all` (each sorted here) and the manifest of
    /// configuration `config`, as `take` does.
    pub(super) fn write_shards(
        dir: &Path,
        config: u64,
        all: Vec<Vec<(String, String)>>,
    ) -> Manifest {
        let shard_count = all.len();
        let mut shards = Vec::new();
        for (shard, mut pairs) in all.into_iter().enumerate() {
            pairs.sort();
            let mut w = ShardFileWriter::new(shard, config);
            w.extend(&pairs);
            let keys = w.keys();
            let bytes = w.finish();
            std::fs::write(dir.join(ShardEntry::file_name(shard)), &bytes).unwrap();
            shards.push(ShardEntry {
                shard,
                gid: 1,
                file: ShardEntry::file_name(shard),
                keys,
                bytes: bytes.len() as u64,
                crc32c: crc32c::crc32c(&bytes),
            });
        }
        let manifest = Manifest {
            format: FORMAT,
            shard_count,
            config,
            started_unix_ms: 1,
            finished_unix_ms: 2,
            shards,
        };
        std::fs::write(dir.join(MANIFEST), manifest.encode()).unwrap();
        manifest
    }

    #[test]
    fn an_intact_backup_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let m = write_backup(dir.path());
        assert_eq!(verify(dir.path()).unwrap(), m);
        assert_eq!(m.keys(), 30);
    }

    #[test]
    fn a_backup_without_its_manifest_is_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        write_backup(dir.path());
        std::fs::remove_file(dir.path().join(MANIFEST)).unwrap();
        let e = verify(dir.path()).unwrap_err();
        assert!(matches!(e, BackupError::NoManifest { .. }), "{e}");
        assert!(e.to_string().contains("never finished"), "{e}");
    }

    #[test]
    fn a_missing_truncated_or_flipped_shard_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_backup(dir.path());
        let file = dir.path().join(ShardEntry::file_name(1));
        let bytes = std::fs::read(&file).unwrap();

        std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
        let e = verify(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("shard-0001.dkvb") && e.contains("truncated"),
            "{e}"
        );

        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        std::fs::write(&file, &flipped).unwrap();
        let e = verify(dir.path()).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");

        std::fs::remove_file(&file).unwrap();
        let e = verify(dir.path()).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }
}

/// Found by the attack on backup and restore: a backup whose files are intact
/// (their crc32c matches the manifest, as anyone can make it) but that holds a
/// pair the cluster refuses — an empty key, a key above the key limit, a value
/// above the value limit — passed [`verify`], so `load` wrote every shard before
/// the bad one and then failed part way: "checks everything before writing
/// anything" did not hold. Each must be refused by `verify`, naming the file.
#[cfg(test)]
mod attack_tests {
    use super::*;
    use crate::op::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

    const SHARDS: usize = 2;

    /// A backup of `SHARDS` shards holding the ordinary pairs plus `extra`.
    fn write_backup(dir: &Path, extra: (String, String)) {
        let mut all: Vec<Vec<(String, String)>> = vec![Vec::new(); SHARDS];
        for k in ["a", "b", "c", "d"] {
            all[shardmaster::shard_of(k.as_bytes(), SHARDS)].push((k.into(), "v".into()));
        }
        all[shardmaster::shard_of(extra.0.as_bytes(), SHARDS)].push(extra);
        super::tests::write_shards(dir, 3, all);
    }

    #[test]
    fn attack_verify_refuses_pairs_the_cluster_would_refuse() {
        let cases = [
            ("an empty key", (String::new(), "v".to_string())),
            (
                "a key too long",
                ("k".repeat(MAX_KEY_BYTES + 1), "v".to_string()),
            ),
            (
                "a value too long",
                ("big".to_string(), "x".repeat(MAX_VALUE_BYTES + 1)),
            ),
        ];
        for (what, pair) in cases {
            let dir = tempfile::tempdir().unwrap();
            write_backup(dir.path(), pair);
            let e = verify(dir.path()).err();
            assert!(
                matches!(e, Some(BackupError::BadShardFile { .. })),
                "{what}: verify said {e:?}, so load would write the other shards first"
            );
        }
    }
}
