//! A key from an HTTP URL: `diskv::http::key::validate_key` (the bytes as the
//! percent-decoded path segment; invalid UTF-8 replaced, as a `String` must be).
//! An accepted key holds only the documented alphabet, within the length limit,
//! and names a safe key file.

use diskv::http::key::{validate_key, KeyError};
use diskv::op::MAX_KEY_BYTES;

/// Validates `data` as a key.
pub fn target(data: &[u8]) {
    let key = String::from_utf8_lossy(data);
    match validate_key(&key) {
        Ok(()) => {
            assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES, "{key:?}");
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":_.-".contains(&b)),
                "{key:?} accepted"
            );
        }
        Err(KeyError::Empty) => assert!(key.is_empty()),
        Err(KeyError::TooLong) => assert!(key.len() > MAX_KEY_BYTES),
        Err(KeyError::InvalidCharacters) => {}
    }
    crate::targets::keyfile::safe_name(&key);
}

/// Keys accepted and refused.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    [
        ("plain", "user:42".to_string()),
        ("dots", "...".to_string()),
        ("longest", "k".repeat(MAX_KEY_BYTES)),
        ("too-long", "k".repeat(MAX_KEY_BYTES + 1)),
        ("slash", "a/b".to_string()),
        ("unicode", "é😀".to_string()),
    ]
    .into_iter()
    .map(|(name, key)| (name.to_string(), key.into_bytes()))
    .collect()
}
