//! `diskv admin backup DIR`: every shard read at one configuration, written
//! to its own file, the manifest last.

use crate::backup::manifest::{Manifest, ShardEntry, FORMAT, MANIFEST};
use crate::backup::shard_file::ShardFileWriter;
use crate::backup::{unix_ms, LOCK};
use crate::error::BackupError;
use crate::op::KvError;
use crate::rpc::conn::{deadline, Connections};
use crate::rpc::{ShardPage, ShardRead};
use paxos::fs::durable;
use shardmaster::{Clerk as MasterClerk, Config, ConfigNum, NO_GROUP};
use std::path::Path;
use std::time::{Duration, Instant};

/// How a backup runs.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// How long one shard may take to be read, retries included.
    pub shard_timeout: Duration,
    /// Attempts at one configuration before giving up while shards keep moving.
    pub attempts: u32,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            shard_timeout: Duration::from_secs(30),
            attempts: 5,
        }
    }
}

/// Deadline of one page request.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why reading one shard stopped.
enum Stop {
    /// A group is past the configuration read: start again at the latest.
    Moved { config: u64 },
    /// Give up.
    Failed(BackupError),
}

/// Backs up every shard of the cluster whose shardmasters `masters` reaches into
/// `dir` (created if missing; refused if it holds a backup) and returns the
/// manifest written. See the [module](crate::backup) docs for what it holds.
pub async fn take(
    masters: &MasterClerk,
    dir: &Path,
    opts: &BackupOptions,
) -> Result<Manifest, BackupError> {
    let fs = paxos::fs::os();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    durable::create_dir_all(fs.as_ref(), dir).map_err(io(dir))?;
    // Held until the backup returns: two backups into one directory would each
    // pass the check below, then overwrite each other's shard files under a
    // manifest that describes only one of them (found by review).
    let lock_path = dir.join(LOCK);
    let _lock = match fs.lock(&lock_path) {
        Ok(lock) => lock,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            return Err(BackupError::InUse {
                dir: dir.to_path_buf(),
            })
        }
        Err(e) => return Err(io(&lock_path)(e)),
    };
    if fs.exists(&dir.join(MANIFEST)) {
        return Err(BackupError::Exists {
            dir: dir.to_path_buf(),
        });
    }
    let conns = Connections::default();
    let started_unix_ms = unix_ms();
    let mut config = masters.query(ConfigNum::Latest).await?;
    for attempt in 1..=opts.attempts {
        tracing::info!(config = config.num, attempt, "backup: reading every shard");
        match read_all(&conns, &config, dir, opts).await {
            Ok(shards) => {
                let manifest = Manifest {
                    format: FORMAT,
                    shard_count: config.shards.len(),
                    config: config.num,
                    started_unix_ms,
                    finished_unix_ms: unix_ms(),
                    shards,
                };
                let path = dir.join(MANIFEST);
                durable::replace(fs.as_ref(), &path, &manifest.encode()).map_err(io(&path))?;
                tracing::info!(
                    config = config.num,
                    keys = manifest.keys(),
                    bytes = manifest.bytes(),
                    "backup written"
                );
                return Ok(manifest);
            }
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::Moved { config: now }) => {
                tracing::warn!(
                    read_at = config.num,
                    group_at = now,
                    "backup: a group moved past the configuration; starting again at the latest"
                );
                config = masters.query(ConfigNum::Latest).await?;
            }
        }
    }
    Err(BackupError::ConfigKeptMoving {
        attempts: opts.attempts,
        config: config.num,
    })
}

/// Reads and writes every shard at `config`; the manifest's entries.
async fn read_all(
    conns: &Connections,
    config: &Config,
    dir: &Path,
    opts: &BackupOptions,
) -> Result<Vec<ShardEntry>, Stop> {
    let fs = paxos::fs::os();
    let mut entries = Vec::with_capacity(config.shards.len());
    for (shard, &gid) in config.shards.iter().enumerate() {
        if gid == NO_GROUP {
            return Err(Stop::Failed(BackupError::Unassigned {
                shard,
                config: config.num,
            }));
        }
        let file = read_shard(conns, config, shard, opts).await?;
        let keys = file.keys();
        let bytes = file.finish();
        let name = ShardEntry::file_name(shard);
        let path = dir.join(&name);
        durable::replace(fs.as_ref(), &path, &bytes)
            .map_err(|source| Stop::Failed(BackupError::Io { path, source }))?;
        tracing::debug!(
            shard,
            gid,
            keys,
            bytes = bytes.len(),
            "backup: shard written"
        );
        entries.push(ShardEntry {
            shard,
            gid,
            file: name,
            keys,
            bytes: bytes.len() as u64,
            crc32c: crc32c::crc32c(&bytes),
        });
    }
    Ok(entries)
}

/// Reads `shard` from its owner in `config`, following the leader, retrying
/// what may pass until the shard's time is up.
async fn read_shard(
    conns: &Connections,
    config: &Config,
    shard: usize,
    opts: &BackupOptions,
) -> Result<ShardFileWriter, Stop> {
    let gid = config.shards[shard];
    let servers = config.groups.get(&gid).map(Vec::as_slice).unwrap_or(&[]);
    let give_up = Instant::now() + opts.shard_timeout;
    let mut at = 0;
    let mut pause = Duration::from_millis(20);
    let mut last = format!(
        "group {gid} has no replicas in configuration {}",
        config.num
    );
    while !servers.is_empty() && Instant::now() < give_up {
        let addr = &servers[at % servers.len()];
        match read_from(conns, addr, config.num, shard).await {
            Ok(file) => return Ok(file),
            Err(KvError::WrongGroup { config: now, .. }) => {
                return Err(Stop::Moved {
                    config: now.max(config.num),
                })
            }
            Err(KvError::NotLeader { leader: Some(l) }) if l != at % servers.len() => {
                last = format!("{addr}: not the leader");
                at = l;
            }
            Err(e) if !e.is_retryable() => return Err(Stop::Failed(e.into())),
            Err(e) => {
                tracing::debug!(shard, gid, %addr, error = %e, "backup: retrying the shard");
                last = format!("{addr}: {e}");
                at += 1;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
    Err(Stop::Failed(BackupError::Unreadable {
        shard,
        gid,
        secs: opts.shard_timeout.as_secs(),
        last,
    }))
}

/// Every page of one snapshot of `shard` at the replica at `addr`.
async fn read_from(
    conns: &Connections,
    addr: &str,
    config: u64,
    shard: usize,
) -> Result<ShardFileWriter, KvError> {
    let mut file = ShardFileWriter::new(shard, config);
    let mut page = page(conns, addr, ShardRead::Start { config, shard }).await?;
    let keys = page.keys;
    loop {
        file.extend(&page.pairs);
        if page.last {
            break;
        }
        let Some((after, _)) = page.pairs.last() else {
            return Err(KvError::Unavailable(format!(
                "{addr} answered an empty page before the last"
            )));
        };
        let next = ShardRead::Next {
            snapshot: page.snapshot,
            after: after.clone(),
        };
        page = self::page(conns, addr, next).await?;
    }
    if file.keys() != keys {
        return Err(KvError::Unavailable(format!(
            "{addr} announced {keys} keys of shard {shard} and sent {}",
            file.keys()
        )));
    }
    Ok(file)
}

async fn page(conns: &Connections, addr: &str, read: ShardRead) -> Result<ShardPage, KvError> {
    let client = conns
        .get(addr)
        .await
        .map_err(|e| KvError::Unavailable(format!("cannot connect: {e}")))?;
    match client.read_shard(deadline(PAGE_TIMEOUT), read).await {
        Ok(answer) => answer,
        Err(e) => {
            conns.drop_conn(addr);
            Err(KvError::Unavailable(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_backup_into_the_same_directory_is_refused_while_the_first_writes() {
        let dir = tempfile::tempdir().unwrap();
        let fs = paxos::fs::os();
        // What the first backup holds while it reads the shards.
        let held = fs.lock(&dir.path().join(LOCK)).unwrap();
        // Nothing listens there: the refusal comes before any shardmaster is asked.
        let masters = MasterClerk::new(vec!["127.0.0.1:1".into()]);
        let second = take(&masters, dir.path(), &BackupOptions::default()).await;
        assert!(
            matches!(&second, Err(BackupError::InUse { .. })),
            "{second:?}"
        );
        assert!(second.unwrap_err().to_string().contains("another backup"));
        drop(held);
    }
}
