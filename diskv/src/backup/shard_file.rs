//! One shard's file in a backup: `DKB1`, a postcard head (format, shard,
//! configuration), then each pair as postcard `(key, value)` in key order.
//! Postcard frames every string with its length, so keys and values may hold
//! any text diskv stores (newlines, tabs, any Unicode). The file's length and
//! crc32c are in the manifest, not in the file: a file is checked against the
//! manifest that names it.

use crate::backup::manifest::{Manifest, ShardEntry, FORMAT};
use crate::op::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use serde::{Deserialize, Serialize};

/// The first bytes of every shard file.
pub const MAGIC: &[u8; 4] = b"DKB1";

/// What a shard file says of itself after its magic.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    format: u64,
    shard: u64,
    config: u64,
}

/// A shard file being built, pair by pair, in key order.
pub struct ShardFileWriter {
    bytes: Vec<u8>,
    keys: u64,
}

impl ShardFileWriter {
    /// An empty file of `shard`, read at configuration `config`.
    pub fn new(shard: usize, config: u64) -> ShardFileWriter {
        let mut bytes = MAGIC.to_vec();
        let head = Head {
            format: FORMAT,
            shard: shard as u64,
            config,
        };
        bytes = postcard::to_extend(&head, bytes).unwrap_or_default();
        ShardFileWriter { bytes, keys: 0 }
    }

    /// Adds pairs (each after every pair added before).
    pub fn extend(&mut self, pairs: &[(String, String)]) {
        for pair in pairs {
            let bytes = std::mem::take(&mut self.bytes);
            self.bytes = postcard::to_extend(pair, bytes).unwrap_or_default();
            self.keys += 1;
        }
    }

    /// Pairs added so far.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// The file's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// The pairs of shard `entry`'s file `bytes`, checked against `manifest`: its
/// length and crc32c first, then its head, framing and key count, and that
/// every key belongs to the shard and comes after the one before, and that no
/// pair is one a put would refuse (an empty key, a key or value above its
/// limit). The error says what is wrong.
pub fn decode(
    manifest: &Manifest,
    entry: &ShardEntry,
    bytes: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let len = bytes.len() as u64;
    if len != entry.bytes {
        let how = if len < entry.bytes {
            "truncated"
        } else {
            "longer than written"
        };
        return Err(format!(
            "it is {len} bytes, the manifest says {}: {how}",
            entry.bytes
        ));
    }
    let crc = crc32c::crc32c(bytes);
    if crc != entry.crc32c {
        return Err(format!(
            "checksum mismatch (the manifest says crc32c {:08x}, the file has {crc:08x})",
            entry.crc32c
        ));
    }
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or("it does not start with DKB1: not a diskv shard file")?;
    let (head, mut rest) = postcard::take_from_bytes::<Head>(body)
        .map_err(|e| format!("its head does not decode: {e}"))?;
    let want = Head {
        format: FORMAT,
        shard: entry.shard as u64,
        config: manifest.config,
    };
    if head != want {
        return Err(format!(
            "it holds shard {} at configuration {}, the manifest says shard {} at {}",
            head.shard, head.config, want.shard, want.config
        ));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    while !rest.is_empty() {
        let (pair, tail) = postcard::take_from_bytes::<(String, String)>(rest)
            .map_err(|e| format!("pair {} does not decode: {e}", pairs.len()))?;
        // What a put would refuse is refused here, before anything is written.
        if pair.0.is_empty() {
            return Err(format!("pair {} has an empty key", pairs.len()));
        }
        if pair.0.len() > MAX_KEY_BYTES {
            return Err(format!(
                "pair {} has a key of {} bytes, above the {MAX_KEY_BYTES}-byte limit",
                pairs.len(),
                pair.0.len()
            ));
        }
        if pair.1.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "key {:?} has a value of {} bytes, above the {MAX_VALUE_BYTES}-byte limit",
                pair.0,
                pair.1.len()
            ));
        }
        let shard = shardmaster::shard_of(pair.0.as_bytes(), manifest.shard_count);
        if shard != entry.shard {
            return Err(format!("key {:?} belongs to shard {shard}", pair.0));
        }
        if pairs.last().is_some_and(|(last, _)| *last >= pair.0) {
            return Err(format!("key {:?} is out of order", pair.0));
        }
        pairs.push(pair);
        rest = tail;
    }
    if pairs.len() as u64 != entry.keys {
        return Err(format!(
            "it holds {} keys, the manifest says {}",
            pairs.len(),
            entry.keys
        ));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARDS: usize = 4;

    /// Keys of shard `shard` with values full of what a text line format would
    /// trip on.
    fn pairs(shard: usize) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = (0..200)
            .map(|i| format!("key:{i}"))
            .filter(|k| shardmaster::shard_of(k.as_bytes(), SHARDS) == shard)
            .map(|k| {
                let v = format!("line one\nline\ttwo \r\n\u{1F600} {k} \0 end ");
                (k, v)
            })
            .collect();
        all.sort();
        all
    }

    fn file(shard: usize) -> (Manifest, Vec<u8>) {
        let mut w = ShardFileWriter::new(shard, 9);
        w.extend(&pairs(shard));
        let keys = w.keys();
        let bytes = w.finish();
        let manifest = Manifest {
            format: FORMAT,
            shard_count: SHARDS,
            config: 9,
            started_unix_ms: 0,
            finished_unix_ms: 0,
            shards: (0..SHARDS)
                .map(|s| ShardEntry {
                    shard: s,
                    gid: 1,
                    file: ShardEntry::file_name(s),
                    keys,
                    bytes: bytes.len() as u64,
                    crc32c: crc32c::crc32c(&bytes),
                })
                .collect(),
        };
        (manifest, bytes)
    }

    #[test]
    fn a_shard_file_round_trips_any_text() {
        let (m, bytes) = file(2);
        assert_eq!(decode(&m, &m.shards[2], &bytes).unwrap(), pairs(2));
        assert!(!pairs(2).is_empty());
    }

    #[test]
    fn an_empty_shard_round_trips() {
        let w = ShardFileWriter::new(1, 9);
        let bytes = w.finish();
        let (mut m, _) = file(1);
        m.shards[1].keys = 0;
        m.shards[1].bytes = bytes.len() as u64;
        m.shards[1].crc32c = crc32c::crc32c(&bytes);
        assert_eq!(decode(&m, &m.shards[1], &bytes).unwrap(), vec![]);
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let (m, bytes) = file(0);
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let e = decode(&m, &m.shards[0], &bad).unwrap_err();
            assert!(e.contains("checksum mismatch"), "byte {at}: {e}");
        }
    }

    #[test]
    fn a_truncated_file_is_caught() {
        let (m, bytes) = file(3);
        for len in [0, 4, bytes.len() - 1] {
            let e = decode(&m, &m.shards[3], &bytes[..len]).unwrap_err();
            assert!(e.contains("truncated"), "{len}: {e}");
        }
    }

    /// A file that matches its manifest entry but was put in another shard's
    /// place, or whose pairs do not decode, is refused without a panic.
    #[test]
    fn a_misplaced_or_malformed_file_is_caught() {
        let (mut m, bytes) = file(0);
        m.shards[1].keys = m.shards[0].keys;
        let e = decode(&m, &m.shards[1], &bytes).unwrap_err();
        assert!(e.contains("holds shard 0"), "{e}");
        let mut junk = ShardFileWriter::new(0, 9).finish();
        junk.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        m.shards[0].bytes = junk.len() as u64;
        m.shards[0].crc32c = crc32c::crc32c(&junk);
        let e = decode(&m, &m.shards[0], &junk).unwrap_err();
        assert!(e.contains("does not decode"), "{e}");
    }
}
