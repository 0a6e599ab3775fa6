//! Which keys the HTTP API accepts: `[A-Za-z0-9:_.-]+`, case-sensitive, at most
//! [`MAX_KEY_BYTES`] bytes (the servers' own limit).

use crate::op::MAX_KEY_BYTES;

/// Why a key from a URL was refused. `Display` is the exact body the API sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `/kv/` with nothing after it.
    #[error("key cannot be empty")]
    Empty,
    /// A byte outside `[A-Za-z0-9:_.-]`.
    #[error("key contains invalid characters")]
    InvalidCharacters,
    /// Longer than the servers accept.
    #[error("key is too long: the limit is {MAX_KEY_BYTES} bytes")]
    TooLong,
}

/// True for the bytes a key may hold.
fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'-')
}

/// Checks a key taken from a URL path (already percent-decoded).
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if !key.bytes().all(allowed) {
        return Err(KeyError::InvalidCharacters);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for key in [
            "a",
            "Z9",
            "user:42",
            "a.b-c_d",
            "...",
            "-",
            &"k".repeat(105),
        ] {
            assert_eq!(validate_key(key), Ok(()), "{key}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(validate_key(""), Err(KeyError::Empty));
        for key in ["a b", "a/b", "é", "😀", "a%20", "tab\t", "q?", "a#b", "x\0"] {
            assert_eq!(
                validate_key(key),
                Err(KeyError::InvalidCharacters),
                "{key:?}"
            );
        }
        assert_eq!(validate_key(&"k".repeat(MAX_KEY_BYTES)), Ok(()));
        assert_eq!(
            validate_key(&"k".repeat(MAX_KEY_BYTES + 1)),
            Err(KeyError::TooLong)
        );
    }

    #[test]
    fn messages_are_the_contract_bodies() {
        assert_eq!(KeyError::Empty.to_string(), "key cannot be empty");
        assert_eq!(
            KeyError::InvalidCharacters.to_string(),
            "key contains invalid characters"
        );
    }
}
