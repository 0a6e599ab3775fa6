//! One key file as a checkpoint left it: `diskv::keyfile::KeyFile::decode`. A file
//! that decodes must round-trip, and its key must name a safe file.

use crate::fixup;
use crate::targets::as_is_and_repaired;
use diskv::keyfile::{file_name, KeyFile, MAX_NAME};

/// Decodes `data` (and `data` with its checksum repaired) as a key file.
pub fn target(data: &[u8]) {
    as_is_and_repaired(data, fixup::magic_crc, check);
}

fn check(bytes: &[u8]) {
    if let Ok(file) = KeyFile::decode(bytes) {
        assert_eq!(KeyFile::decode(&file.encode()), Ok(file.clone()));
        safe_name(&file.key);
    }
}

/// Panics unless the file name of `key` is one plain, visible name.
pub(crate) fn safe_name(key: &str) {
    let name = file_name(key);
    assert!(
        !name.contains(['/', '.', '\0']) && name.len() <= MAX_NAME + 1,
        "unsafe file name {name:?} for key {key:?}"
    );
    assert!(
        key.is_empty() == name.is_empty(),
        "name {name:?} of {key:?}"
    );
}

/// Key files of plain, odd and long keys.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    [
        ("plain", "user:1", "hello"),
        ("odd", "a/b c.é😀", "multi\nline\tvalue"),
        ("empty-value", "k", ""),
        ("long-key", &"k".repeat(300), "v"),
    ]
    .iter()
    .map(|(name, key, value)| {
        let file = KeyFile {
            key: key.to_string(),
            value: value.to_string(),
        };
        (name.to_string(), file.encode())
    })
    .collect()
}
