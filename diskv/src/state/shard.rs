//! One shard's data and duplicate table, and how operations change them.

use crate::op::{counter_of, CounterError, Op, Reply, MAX_KEYS_PER_READ, MAX_VALUE_BYTES};
use crate::state::dedup::DupTable;
use crate::state::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Where a shard held by this group stands in the current configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardMode {
    /// Owned and served.
    Serving,
    /// Owned since config `config`, but its data is still with group `from`.
    Pulling {
        /// The previous owner.
        from: u64,
        /// The config that gave the shard to this group.
        config: u64,
    },
    /// Given to group `to` by config `config`: frozen, kept until `to` confirms it
    /// installed the shard.
    Leaving {
        /// The new owner.
        to: u64,
        /// The config that took the shard away.
        config: u64,
    },
}

/// A shard held by this group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Serving, arriving or leaving.
    pub mode: ShardMode,
    /// Keys and values, sorted (Scan walks a range). The values are shared
    /// ([`Value`]): a checkpoint job writing them takes a reference.
    pub data: BTreeMap<String, Value>,
    /// Last reply per client, for exactly-once.
    pub dups: DupTable,
}

impl Shard {
    /// An empty shard in `mode`.
    pub fn new(mode: ShardMode) -> Self {
        Shard {
            mode,
            data: BTreeMap::new(),
            dups: DupTable::default(),
        }
    }

    /// Applies a write (or answers a read) and returns its reply. `touched` is called
    /// with every key whose value changed.
    pub fn apply(&mut self, op: &Op, mut touched: impl FnMut(&str)) -> Reply {
        match op {
            Op::Get { key } => Reply::Value(self.data.get(key).map(|v| v.to_string())),
            Op::Scan { start, end } => Reply::Pairs(self.scan(start, end)),
            Op::Keys { start, limit } => Reply::Keys(self.keys_from(start, *limit)),
            Op::Put { key, value } => {
                touched(key);
                Reply::Existed(
                    self.data
                        .insert(key.clone(), Value::from(value.clone()))
                        .is_some(),
                )
            }
            Op::Append { key, value } | Op::AppendLen { key, value }
                if self.appended_len(key, value) > MAX_VALUE_BYTES =>
            {
                Reply::TooLarge(self.appended_len(key, value) as u64)
            }
            Op::Append { key, value } => {
                touched(key);
                match self.data.get_mut(key) {
                    Some(v) => {
                        v.push_str(value);
                        Reply::Existed(true)
                    }
                    None => {
                        self.data.insert(key.clone(), Value::from(value.clone()));
                        Reply::Existed(false)
                    }
                }
            }
            Op::Swap { key, value } => {
                touched(key);
                Reply::Value(
                    self.data
                        .insert(key.clone(), Value::from(value.clone()))
                        .map(Value::into_string),
                )
            }
            Op::Delete { key } => {
                let existed = self.data.remove(key).is_some();
                if existed {
                    touched(key);
                }
                Reply::Existed(existed)
            }
            Op::Clear => {
                for key in self.data.keys() {
                    touched(key);
                }
                self.data.clear();
                Reply::Cleared
            }
            Op::Incr { key, by } => {
                let sum = counter_of(self.data.get(key).map(Value::as_str))
                    .and_then(|n| n.checked_add(*by).ok_or(CounterError::Overflow));
                if let Ok(sum) = sum {
                    touched(key);
                    self.data.insert(key.clone(), Value::from(sum.to_string()));
                }
                Reply::Counter(sum)
            }
            Op::PutIf { key, value, when } => {
                let old = self.data.get(key).map(|v| v.to_string());
                if when.matches(old.as_deref()) {
                    touched(key);
                    self.data.insert(key.clone(), Value::from(value.clone()));
                }
                Reply::Value(old)
            }
            Op::Take { key } => {
                let old = self.data.remove(key);
                if old.is_some() {
                    touched(key);
                }
                Reply::Value(old.map(Value::into_string))
            }
            Op::AppendLen { key, value } => {
                touched(key);
                let v = self.data.entry(key.clone()).or_default();
                v.push_str(value);
                Reply::Length(v.len() as u64)
            }
        }
    }

    /// The length of `key`'s value once `value` is appended to it.
    fn appended_len(&self, key: &str, value: &str) -> usize {
        self.data.get(key).map_or(0, |v| v.len()) + value.len()
    }

    /// Up to `limit` (at most [`MAX_KEYS_PER_READ`]) keys from `start` (included),
    /// sorted.
    pub fn keys_from(&self, start: &str, limit: u32) -> Vec<String> {
        self.data
            .range::<str, _>((Bound::Included(start), Bound::Unbounded))
            .take(limit.min(MAX_KEYS_PER_READ) as usize)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Keys in `[start, end]` with their values, sorted.
    pub fn scan(&self, start: &str, end: &str) -> Vec<(String, String)> {
        if start > end {
            return Vec::new();
        }
        self.data
            .range::<str, _>((Bound::Included(start), Bound::Included(end)))
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn operations_follow_the_contract() {
        let mut s = Shard::new(ShardMode::Serving);
        let mut touched = Vec::new();
        assert_eq!(
            s.apply(&put("a", "1"), |k| touched.push(k.to_string())),
            Reply::Existed(false)
        );
        assert_eq!(s.apply(&put("a", "2"), |_| {}), Reply::Existed(true));
        assert_eq!(
            s.apply(
                &Op::Append {
                    key: "a".into(),
                    value: "x".into()
                },
                |_| {}
            ),
            Reply::Existed(true)
        );
        assert_eq!(
            s.apply(
                &Op::Append {
                    key: "b".into(),
                    value: "y".into()
                },
                |_| {}
            ),
            Reply::Existed(false)
        );
        assert_eq!(
            s.apply(&Op::Get { key: "a".into() }, |_| {}),
            Reply::Value(Some("2x".into()))
        );
        assert_eq!(
            s.apply(
                &Op::Swap {
                    key: "a".into(),
                    value: "3".into()
                },
                |_| {}
            ),
            Reply::Value(Some("2x".into()))
        );
        assert_eq!(
            s.apply(
                &Op::Swap {
                    key: "c".into(),
                    value: "z".into()
                },
                |_| {}
            ),
            Reply::Value(None)
        );
        assert_eq!(
            s.apply(&Op::Delete { key: "c".into() }, |_| {}),
            Reply::Existed(true)
        );
        assert_eq!(
            s.apply(&Op::Delete { key: "c".into() }, |_| {}),
            Reply::Existed(false)
        );
        assert_eq!(
            s.apply(
                &Op::Scan {
                    start: "a".into(),
                    end: "b".into()
                },
                |_| {}
            ),
            Reply::Pairs(vec![("a".into(), "3".into()), ("b".into(), "y".into())])
        );
        assert_eq!(s.scan("b", "a"), vec![]);
        assert_eq!(s.apply(&Op::Clear, |_| {}), Reply::Cleared);
        assert!(s.data.is_empty());
        assert_eq!(touched, vec!["a".to_string()]);
    }
}
