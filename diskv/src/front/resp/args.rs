//! Turning command arguments into what diskv stores: keys under the HTTP API's
//! rules ([`crate::front::http::key`]), values as UTF-8 text within
//! [`MAX_VALUE_BYTES`], numbers as Redis reads them. Each refusal is an `-ERR`
//! reply that names the rule.

use super::reply::Reply;
use crate::front::http::key::validate_key;
use crate::op::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// A key diskv can store, or the error naming the rule it breaks.
pub fn key(arg: &[u8]) -> Result<String, Reply> {
    let rule = format!(
        "diskv keys are 1 to {MAX_KEY_BYTES} bytes of A-Z a-z 0-9 : _ . - (case-sensitive)"
    );
    let Ok(text) = std::str::from_utf8(arg) else {
        return Err(Reply::err(format!(
            "invalid key: key contains invalid characters; {rule}"
        )));
    };
    validate_key(text)
        .map(|()| text.to_string())
        .map_err(|e| Reply::err(format!("invalid key: {e}; {rule}")))
}

/// Every argument as a key, or the first one's error.
pub fn keys(args: &[Vec<u8>]) -> Result<Vec<String>, Reply> {
    args.iter().map(|a| key(a)).collect()
}

/// A value diskv can store, or the error naming the rule it breaks.
pub fn value(arg: Vec<u8>) -> Result<String, Reply> {
    if arg.len() > MAX_VALUE_BYTES {
        return Err(Reply::err(format!(
            "value of {} bytes is over the {MAX_VALUE_BYTES}-byte limit",
            arg.len()
        )));
    }
    String::from_utf8(arg).map_err(|e| {
        Reply::err(format!(
            "value is not valid UTF-8 (bad byte at offset {}); diskv stores values as UTF-8 text",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// A decimal integer argument, or Redis's error for one that is not. As Redis's
/// `string2ll`: no `+` sign, no leading zeros or spaces, no `-0` (exactly the
/// forms [`crate::op::counter_of`] refuses in a stored counter).
pub fn integer(arg: &[u8]) -> Result<i64, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<i64>().ok().filter(|n| n.to_string() == s))
        .ok_or_else(|| Reply::err("value is not an integer or out of range"))
}

/// True if `arg` is `word`, in any case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Reply) -> String {
        match r {
            Reply::Error(m) => m,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn keys_follow_the_http_rules_and_say_so() {
        assert_eq!(key(b"user:42").unwrap(), "user:42");
        let m = message(key(b"a b").unwrap_err());
        assert!(
            m.starts_with("ERR invalid key: key contains invalid characters"),
            "{m}"
        );
        assert!(m.contains("A-Z a-z 0-9 : _ . -"), "{m}");
        assert!(message(key(b"").unwrap_err()).contains("key cannot be empty"));
        assert!(message(key(b"\xff").unwrap_err()).contains("invalid characters"));
        assert!(message(key(&[b'k'; MAX_KEY_BYTES + 1]).unwrap_err()).contains("too long"));
    }

    #[test]
    fn values_must_be_utf8_within_the_limit() {
        assert_eq!(value(b"caf\xc3\xa9".to_vec()).unwrap(), "café");
        assert_eq!(value(Vec::new()).unwrap(), "");
        assert!(message(value(b"a\xff".to_vec()).unwrap_err()).contains("offset 1"));
        let big = vec![b'v'; MAX_VALUE_BYTES + 1];
        assert!(message(value(big).unwrap_err()).contains("over the 16777216-byte limit"));
    }
}

/// Attack (review of the RESP door): Redis reads every integer argument with
/// `string2ll`, which refuses a `+` sign, leading zeros and spaces, the same
/// forms README says are "not integers" in a counter. `integer` uses Rust's
/// `parse`, which takes `+5` and `007`: `INCRBY k +5`, `SELECT +0`, `SCAN 0
/// COUNT 010` succeed here and fail on Redis.
#[cfg(test)]
mod attack_tests {
    use super::integer;

    #[test]
    fn attack_integer_arguments_follow_redis_string2ll() {
        for bad in ["+5", "007", "-0", "00"] {
            assert!(
                integer(bad.as_bytes()).is_err(),
                "{bad:?} is not an integer for Redis, but was read as {:?}",
                integer(bad.as_bytes())
            );
        }
        assert_eq!(integer(b"-5"), Ok(-5));
        assert_eq!(integer(b"0"), Ok(0));
    }
}
