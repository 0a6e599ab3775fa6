//! The cluster record (`DIR/cluster`): the cluster's shape, fixed at first start,
//! and the mark of a recovery under way.

use super::{corrupt, read_optional, storage_err, write_atomic, CLUSTER_FILE, LOG_DIR, STATE_FILE};
use crate::config::DEFAULT_SHARDS;
use crate::error::ShardmasterError;
use crate::state::ConfigStore;
use paxos::fs::FileSystem;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::checkpoint::tests::sample;
    use crate::persist::save_checkpoint;
    use paxos::fs::OsFs;

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
}
