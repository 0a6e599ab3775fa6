//! Everything a shardmaster replica keeps on disk, under its `--dir`:
//!
//! ```text
//! DIR/lock      held (flock) while a server uses the directory
//! DIR/cluster   the cluster's shape, written once at first start (text), and
//!               `recovering NONCE` while the replica recovers a lost disk
//! DIR/log/      the Paxos log (paxos::host)
//! DIR/state     the latest checkpoint: every configuration, the duplicate table and
//!               the log instance it covers (binary, checksummed)
//! ```
//!
//! **The log is the durability point.** An operation is acknowledged once its log
//! instance is durable on a majority; the checkpoint only lets the log forget its
//! prefix. Every file is replaced atomically ([`paxos::fs::durable::replace`]:
//! written to `NAME.tmp`, fsynced, renamed over `NAME`, and the directory fsynced).
//! A crash at any instant leaves either the old or the new file, and the log holds
//! every instance after the checkpoint's.
//!
//! Every function takes the [`FileSystem`] the directory lives on: the machine's
//! ([`paxos::fs::OsFs`]) or a simulated disk.
//!
//! The checkpoint's format is `"DSM1"`, the CRC-32C of the payload (u32 LE), the
//! payload's length (u64 LE) and the payload, [`Checkpoint`] in postcard. A file
//! that fails any check is reported as corrupt and the replica refuses to start.

use crate::config::DEFAULT_SHARDS;
use crate::error::ShardmasterError;
use crate::machine::DupTable;
use crate::state::ConfigStore;
use paxos::fs::{durable, FileLock, FileSystem};
use paxos::Slot;
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Name of the checkpoint file.
pub const STATE_FILE: &str = "state";
/// Name of the cluster record.
pub const CLUSTER_FILE: &str = "cluster";
/// Name of the Paxos log folder.
pub const LOG_DIR: &str = "log";
/// Name of the lock file.
pub const LOCK_FILE: &str = "lock";

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

/// The cluster's shape, fixed at first start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterRecord {
    /// The number of shards.
    pub nshards: usize,
    /// This replica's index in `--peers`.
    pub me: usize,
    /// The number of shardmaster replicas.
    pub peers: usize,
    /// `Some(nonce)` while this replica recovers a lost disk (its reincarnation
    /// request, see `paxos::core::Membership`); cleared once it votes again.
    pub recovering: Option<u64>,
}

fn storage_err(action: &str, path: &Path, e: impl std::fmt::Display) -> ShardmasterError {
    ShardmasterError::Storage {
        action: action.into(),
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> ShardmasterError {
    ShardmasterError::CorruptFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably.
fn write_atomic(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), ShardmasterError> {
    let path = dir.join(name);
    durable::replace(fs, &path, bytes).map_err(|e| storage_err("replace", &path, e))
}

/// Reads `path`, `None` if it does not exist.
fn read_optional(fs: &dyn FileSystem, path: &Path) -> Result<Option<Vec<u8>>, ShardmasterError> {
    durable::read_if_exists(fs, path).map_err(|e| storage_err("read", path, e))
}

/// An exclusive lock on a data directory, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _lock: FileLock,
}

/// Creates `dir` if missing and locks it for this server.
pub fn lock_dir(fs: &dyn FileSystem, dir: &Path) -> Result<DirLock, ShardmasterError> {
    paxos::fs::durable::create_dir_all(fs, dir).map_err(|e| storage_err("create", dir, e))?;
    let path = dir.join(LOCK_FILE);
    match fs.lock(&path) {
        Ok(lock) => Ok(DirLock { _lock: lock }),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Err(ShardmasterError::DirInUse {
            path: dir.display().to_string(),
        }),
        Err(e) => Err(storage_err("lock", &path, e)),
    }
}

/// Reads the cluster record, or writes it at first start, and checks the settings
/// given now against it. `nshards: None` means "as recorded" (or the default, 10,
/// at first start).
pub fn open_cluster(
    fs: &dyn FileSystem,
    dir: &Path,
    nshards: Option<usize>,
    me: usize,
    peers: usize,
) -> Result<ClusterRecord, ShardmasterError> {
    match read_cluster(fs, dir)? {
        Some(record) => check_cluster(dir, &record, nshards, me, peers).map(|()| record),
        None => {
            let record = ClusterRecord {
                nshards: nshards.unwrap_or(DEFAULT_SHARDS),
                me,
                peers,
                recovering: None,
            };
            write_cluster(fs, dir, &record)?;
            Ok(record)
        }
    }
}

/// Reads the cluster record; `None` if the directory has none and nothing else
/// either (a new or lost directory; an empty log, created before the record at
/// first start, counts as nothing). A record missing next to a log with records or
/// a checkpoint, or one that does not parse, is [`ShardmasterError::CorruptFile`].
pub fn read_cluster(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<Option<ClusterRecord>, ShardmasterError> {
    let path = dir.join(CLUSTER_FILE);
    let Some(bytes) = read_optional(fs, &path)? else {
        let log = dir.join(LOG_DIR);
        let log_data = paxos::storage::SegmentLog::holds_data_on(fs, &log)
            .map_err(|e| storage_err("list", &log, e))?;
        if fs.exists(&dir.join(STATE_FILE)) || log_data {
            return Err(corrupt(
                &path,
                "missing, although the directory holds a log or a checkpoint",
            ));
        }
        return Ok(None);
    };
    let sealed = paxos::fs::durable::unseal(&bytes).map_err(|reason| corrupt(&path, reason))?;
    let text = std::str::from_utf8(sealed).map_err(|_| corrupt(&path, "not UTF-8 text"))?;
    decode_cluster(text)
        .map(Some)
        .map_err(|reason| corrupt(&path, reason))
}

/// Writes the cluster record (after checking its shard count), atomically.
pub fn write_cluster(
    fs: &dyn FileSystem,
    dir: &Path,
    record: &ClusterRecord,
) -> Result<(), ShardmasterError> {
    ConfigStore::new(record.nshards)?;
    let sealed = paxos::fs::durable::seal(encode_cluster(record).as_bytes());
    write_atomic(fs, dir, CLUSTER_FILE, &sealed)
}

/// Checks the settings given now against the recorded ones.
pub fn check_cluster(
    dir: &Path,
    record: &ClusterRecord,
    nshards: Option<usize>,
    me: usize,
    peers: usize,
) -> Result<(), ShardmasterError> {
    let path = dir.join(CLUSTER_FILE);
    let mismatch = |what: &str, recorded: usize, given: usize| ShardmasterError::ClusterMismatch {
        path: path.display().to_string(),
        what: what.into(),
        recorded,
        given,
    };
    if let Some(n) = nshards.filter(|&n| n != record.nshards) {
        return Err(mismatch("--shards", record.nshards, n));
    }
    if me != record.me {
        return Err(mismatch("--me", record.me, me));
    }
    if peers != record.peers {
        return Err(mismatch("the number of --peers", record.peers, peers));
    }
    Ok(())
}

fn encode_cluster(r: &ClusterRecord) -> String {
    let mut text = format!(
        "# diskv shardmaster: fixed when the cluster was made; do not edit\nshards {}\nme {}\npeers {}\n",
        r.nshards, r.me, r.peers
    );
    if let Some(nonce) = r.recovering {
        text.push_str(&format!("recovering {nonce}\n"));
    }
    text
}

fn decode_cluster(text: &str) -> Result<ClusterRecord, String> {
    let (mut nshards, mut me, mut peers, mut recovering) = (None, None, None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {line:?} is not `key value`"))?;
        if key == "recovering" {
            let nonce: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("recovering {value:?} is not a number"))?;
            recovering = Some(nonce);
            continue;
        }
        let value: usize = value
            .trim()
            .parse()
            .map_err(|_| format!("{key} {value:?} is not a number"))?;
        let slot = match key {
            "shards" => &mut nshards,
            "me" => &mut me,
            "peers" => &mut peers,
            _ => return Err(format!("unknown key {key:?}")),
        };
        *slot = Some(value);
    }
    match (nshards, me, peers) {
        (Some(nshards), Some(me), Some(peers)) => Ok(ClusterRecord {
            nshards,
            me,
            peers,
            recovering,
        }),
        _ => Err("shards, me or peers missing".into()),
    }
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

/// The Paxos log folder of `dir`.
pub fn log_dir(dir: &Path) -> PathBuf {
    dir.join(LOG_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::DupEntry;
    use crate::op::{Op, OpResult};
    use paxos::fs::OsFs;
    use std::fs;

    fn sample() -> Checkpoint {
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

    #[test]
    fn cluster_record_is_written_once_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = open_cluster(&OsFs, d, None, 1, 3).unwrap();
        assert_eq!(
            first,
            ClusterRecord {
                nshards: DEFAULT_SHARDS,
                me: 1,
                peers: 3,
                recovering: None,
            }
        );
        assert_eq!(open_cluster(&OsFs, d, None, 1, 3).unwrap(), first);
        assert_eq!(open_cluster(&OsFs, d, Some(10), 1, 3).unwrap(), first);
        let err = open_cluster(&OsFs, d, Some(12), 1, 3).unwrap_err();
        assert_eq!(
            err,
            ShardmasterError::ClusterMismatch {
                path: d.join(CLUSTER_FILE).display().to_string(),
                what: "--shards".into(),
                recorded: 10,
                given: 12
            }
        );
        assert!(err.to_string().contains("omit it or pass 10"), "{err}");
        assert!(matches!(
            open_cluster(&OsFs, d, None, 2, 3),
            Err(ShardmasterError::ClusterMismatch { .. })
        ));
        assert!(matches!(
            open_cluster(&OsFs, d, None, 1, 5),
            Err(ShardmasterError::ClusterMismatch { .. })
        ));
    }

    #[test]
    fn a_bad_first_shard_count_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            open_cluster(&OsFs, dir.path(), Some(0), 0, 3),
            Err(ShardmasterError::BadShardCount { nshards: 0 })
        );
        assert!(!dir.path().join(CLUSTER_FILE).exists());
    }

    #[test]
    fn a_missing_cluster_record_next_to_a_checkpoint_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        save_checkpoint(&OsFs, dir.path(), &sample().borrowed()).unwrap();
        assert!(matches!(
            open_cluster(&OsFs, dir.path(), None, 0, 3),
            Err(ShardmasterError::CorruptFile { .. })
        ));
    }

    #[test]
    fn garbled_cluster_records_are_corrupt() {
        for text in [
            "",
            "shards ten\nme 0\npeers 3\n",
            "shards 10\nme 0\n",
            "x 1\n",
        ] {
            assert!(decode_cluster(text).is_err(), "{text:?}");
        }
        let mut r = ClusterRecord {
            nshards: 3,
            me: 2,
            peers: 5,
            recovering: None,
        };
        assert_eq!(decode_cluster(&encode_cluster(&r)), Ok(r));
        r.recovering = Some(77);
        assert_eq!(decode_cluster(&encode_cluster(&r)), Ok(r));
    }

    #[test]
    fn a_directory_is_locked_by_one_server_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_dir(&OsFs, dir.path()).unwrap();
        assert!(matches!(
            lock_dir(&OsFs, dir.path()),
            Err(ShardmasterError::DirInUse { .. })
        ));
        drop(lock);
        lock_dir(&OsFs, dir.path()).unwrap();
    }
}
