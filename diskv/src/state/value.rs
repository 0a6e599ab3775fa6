//! A value held in the state machine: shared, not copied.
//!
//! A checkpoint writes every key changed since the previous one, off the apply
//! loop (`KvState::prepare_checkpoint`), so it must hold each value while the
//! state moves on. It used to clone them: a heaptrack profile of a bulk load
//! (docs/BENCHMARKS.md, "Where the memory goes") found the job's copies at 171
//! MB next to the state's 207 MB. A [`Value`] is reference-counted, so the job
//! takes a reference; a backup's shard copy (`shard_snapshots`) shares them too.
//!
//! Its serde form is a string's, byte for byte (postcard: a length, then the
//! UTF-8 bytes), so snapshots (`GroupSnapshot`), the digest and everything else
//! that encodes a [`crate::state::shard::Shard`] are unchanged (tested below).
//! An `Arc<String>` rather than an `Arc<str>`: Append grows a value in place
//! while no checkpoint holds it (amortised, as a `String` did), and a `String`
//! decoded from a command or a key file becomes a value without a copy.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A key's value: a string shared between the state and the checkpoint writing it.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value(Arc<String>);

impl Value {
    /// The value as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Appends `s`: in place when no one else holds this value, else on a copy
    /// (a checkpoint writing the old value keeps it).
    pub fn push_str(&mut self, s: &str) {
        Arc::make_mut(&mut self.0).push_str(s);
    }

    /// The value as an owned `String` (no copy when no one else holds it).
    pub fn into_string(self) -> String {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| shared.as_ref().clone())
    }
}

impl Deref for Value {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Value {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value(Arc::new(s))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value(Arc::new(s.to_string()))
    }
}

impl From<Value> for String {
    fn from(v: Value) -> Self {
        v.into_string()
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Value {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Value::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn encodes_like_a_string_in_postcard_and_json() {
        let strings: BTreeMap<String, String> =
            [("a", ""), ("k", "v"), ("é", "x".repeat(300).as_str())]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let values: BTreeMap<String, Value> = strings
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        let bytes = postcard::to_allocvec(&values).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&strings).unwrap());
        let back: BTreeMap<String, Value> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, values);
        assert_eq!(
            serde_json::to_string(&values).unwrap(),
            serde_json::to_string(&strings).unwrap()
        );
    }

    #[test]
    fn appending_to_a_shared_value_leaves_the_other_holder_unchanged() {
        let mut v = Value::from("ab");
        let held = v.clone();
        v.push_str("c");
        assert_eq!((v.as_str(), held.as_str()), ("abc", "ab"));
        let mut alone = Value::from("x");
        let before = alone.as_ptr();
        alone.push_str("");
        assert_eq!(alone.as_ptr(), before, "an unshared value was copied");
        assert_eq!(held.into_string(), "ab");
    }
}
