//! One file per key: its name and its checksummed contents.
//!
//! **Name.** Bytes in `[A-Za-z0-9_-]` stay as they are and every other byte becomes
//! `%XX`, so any key is a safe name that is never `.`, `..` or hidden, and never ends
//! in `.tmp` (temp files do). When that name would be longer than [`MAX_NAME`], the
//! name is `~` and 32 hex digits of a 128-bit hash of the key instead. The key itself
//! is stored inside the file, so names are never decoded.
//!
//! **Contents.** `DKV1` magic, CRC32C of the rest, then the key and the value,
//! length-prefixed (postcard). Key files are only written by checkpoints (see
//! [`crate::state::checkpoint`]), so every file holds the key's value as of the checkpoint.

use paxos::fs::durable::Header;
use serde::{Deserialize, Serialize};

/// Longest file name used for a key before falling back to a hash.
pub const MAX_NAME: usize = 160;

/// `DKV1 | crc32c(body) | body`.
const HEADER: Header = Header::new(b"DKV1", "diskv key file");

/// The file name of `key`.
pub fn file_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        if out.len() > MAX_NAME {
            return format!(
                "~{:016x}{:016x}",
                hash64(key.as_bytes(), 0xcbf2_9ce4_8422_2325),
                hash64(key.as_bytes(), 0x8422_2325_cbf2_9ce4)
            );
        }
    }
    out
}

/// True if `name` could have come from [`file_name`]: not empty, not too long, and
/// only the characters it writes — never `/`, `.` or `..`, so a name read back from
/// a checkpoint record can only point into its shard's folder.
pub fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME + 3
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'%' | b'~'))
}

fn hash64(bytes: &[u8], basis: u64) -> u64 {
    let mut h = basis;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// What one key file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// [`KeyFile`] borrowed: the same bytes, encoded without copying the value.
#[derive(Serialize)]
struct KeyFileRef<'a> {
    key: &'a str,
    value: &'a str,
}

/// The bytes of the key file holding `key` and `value` (those of
/// [`KeyFile::encode`]; a checkpoint writes the state's values without a copy).
pub fn encode(key: &str, value: &str) -> Vec<u8> {
    HEADER.encode(&postcard::to_allocvec(&KeyFileRef { key, value }).unwrap_or_default())
}

impl KeyFile {
    /// Encodes the file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(&self.key, &self.value)
    }

    /// Decodes a file's bytes; an error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<KeyFile, String> {
        let body = HEADER.decode(bytes).map_err(|e| e.to_string())?;
        postcard::from_bytes(body).map_err(|e| format!("undecodable: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_for_odd_keys() {
        for key in [
            "a",
            "user:42",
            "x.y",
            "..",
            "with space",
            "é😀",
            "%41",
            "a/b\\c",
            "-_-",
            "a.tmp",
        ] {
            let name = file_name(key);
            assert!(
                !name.contains('/') && !name.contains('.') && !name.is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn distinct_keys_have_distinct_names() {
        assert_ne!(file_name("a:b"), file_name("a%3Ab"));
        assert_ne!(file_name("A"), file_name("a"));
        let long_a = ":".repeat(105);
        let long_b = format!("{}.", ":".repeat(104));
        assert!(file_name(&long_a).len() <= MAX_NAME + 1);
        assert_ne!(file_name(&long_a), file_name(&long_b));
    }

    #[test]
    fn contents_round_trip_and_corruption_is_detected() {
        let f = KeyFile {
            key: "k:1".into(),
            value: "v \t😀".into(),
        };
        let mut bytes = f.encode();
        assert_eq!(bytes, encode("k:1", "v \t😀"));
        assert_eq!(KeyFile::decode(&bytes), Ok(f));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(KeyFile::decode(&bytes).unwrap_err().contains("checksum"));
        assert!(KeyFile::decode(b"junk").is_err());
    }
}
