//! A batch: several single-key operations of one client sent to one group as
//! one request, decided as one log instance and applied in the order given.
//!
//! The Redis front door turns a pipeline into batches, so sixteen pipelined
//! commands cost one request, one Paxos instance and one fsync instead of
//! sixteen of each (issue #16). Exactly once works per shard: a batch has one
//! sequence number, and each shard the batch touches records the replies of
//! its own operations under that number in its duplicate table, so a retry is
//! answered from there, also after some of its shards moved to other groups
//! (the Clerk then sends each group its part, with the same number).
//!
//! A batch of reads only may also hold Scan and Keys operations, each on its
//! one shard: a scan over every shard then costs one request and one read per
//! group instead of one per shard ([`crate::Clerk::scan`]).

use crate::op::{ClientId, KvError, Op, MAX_VALUE_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most operations in one batch.
pub const MAX_BATCH_OPS: usize = 1024;

/// Most bytes of keys and values in one batch: one largest value, so a batch
/// is never a larger log record than a single operation may be.
pub const MAX_BATCH_BYTES: usize = MAX_VALUE_BYTES;

/// Most bytes of values the replies of one batch may carry: one largest
/// value, as one Get's reply may. A batch whose replies could carry more (a
/// run of Gets of large values, or a write among them, which would keep them
/// in the duplicate table, its checkpoints and its snapshots) is refused
/// whole with [`KvError::RepliesTooLarge`] before anything is applied; the
/// Clerk then runs its operations one at a time. A batch of reads counts
/// the replies as they are built, scans included, and is refused the same way
/// once they pass the bound.
pub const MAX_BATCH_REPLY_BYTES: usize = MAX_VALUE_BYTES;

/// The error refusing a batch whose replies could carry `bytes` of values.
pub fn reply_too_large(bytes: u64) -> KvError {
    KvError::RepliesTooLarge {
        bytes,
        limit: MAX_BATCH_REPLY_BYTES,
    }
}

/// Single-key operations of one client, applied in order, numbered as one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The client.
    pub client: ClientId,
    /// The client's sequence number for the whole batch (a retry reuses it).
    pub seq: u64,
    /// Each operation with the shard of its key, in the order to apply them.
    pub ops: Vec<(usize, Op)>,
}

impl Batch {
    /// True if every operation only reads: served without writing the log.
    pub fn is_read(&self) -> bool {
        self.ops.iter().all(|(_, op)| op.is_read())
    }

    /// The shards the batch touches.
    pub fn shards(&self) -> BTreeSet<usize> {
        self.ops.iter().map(|(shard, _)| *shard).collect()
    }

    /// Refuses what no replica applies: an empty batch or one over
    /// [`MAX_BATCH_OPS`] or [`MAX_BATCH_BYTES`], an operation that is not on one
    /// key (Clear; Scan and Keys outside a batch of reads only), an empty key,
    /// or a key or value over its limit.
    pub fn check(&self) -> Result<(), KvError> {
        if self.ops.is_empty() || self.ops.len() > MAX_BATCH_OPS {
            return Err(KvError::Invalid(format!(
                "a batch holds 1 to {MAX_BATCH_OPS} operations, not {}",
                self.ops.len()
            )));
        }
        let read = self.is_read();
        let mut bytes = 0usize;
        for (_, op) in &self.ops {
            match op {
                Op::Scan { start, end } if read => bytes += start.len() + end.len(),
                Op::Keys { start, .. } if read => bytes += start.len(),
                _ => bytes += op.batchable_key().map(|_| op.carried_bytes())?,
            }
        }
        if bytes > MAX_BATCH_BYTES {
            return Err(KvError::TooLarge {
                what: "batch".into(),
                bytes,
                limit: MAX_BATCH_BYTES,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> (usize, Op) {
        (
            0,
            Op::Put {
                key: key.into(),
                value: value.into(),
            },
        )
    }

    #[test]
    fn refuses_what_no_replica_applies() {
        let batch = |ops| Batch {
            client: 1,
            seq: 1,
            ops,
        };
        assert!(batch(vec![put("a", "1"), put("b", "2")]).check().is_ok());
        assert!(matches!(batch(vec![]).check(), Err(KvError::Invalid(_))));
        assert!(matches!(
            batch(vec![put("", "1")]).check(),
            Err(KvError::Invalid(_))
        ));
        assert!(matches!(
            batch(vec![(0, Op::Clear)]).check(),
            Err(KvError::Invalid(e)) if e.contains("clear")
        ));
        let scan = |shard| {
            let (start, end) = ("a".into(), "z".into());
            (shard, Op::Scan { start, end })
        };
        let keys = (
            2,
            Op::Keys {
                start: "a".into(),
                limit: 5,
            },
        );
        assert_eq!(batch(vec![scan(0), scan(1), keys.clone()]).check(), Ok(()));
        assert!(matches!(
            batch(vec![scan(0), put("b", "2")]).check(),
            Err(KvError::Invalid(e)) if e.contains("scan")
        ));
        assert!(matches!(
            batch(vec![keys, put("b", "2")]).check(),
            Err(KvError::Invalid(_))
        ));
        let big = "x".repeat(MAX_VALUE_BYTES / 2 + 1);
        assert!(matches!(
            batch(vec![put("a", &big), put("b", &big)]).check(),
            Err(KvError::TooLarge { what, .. }) if what == "batch"
        ));
        let many = (0..=MAX_BATCH_OPS)
            .map(|i| put(&i.to_string(), "v"))
            .collect();
        assert!(matches!(batch(many).check(), Err(KvError::Invalid(_))));
    }

    #[test]
    fn a_batch_of_gets_is_a_read() {
        let get = |k: &str| (0, Op::Get { key: k.into() });
        let reads = Batch {
            client: 1,
            seq: 1,
            ops: vec![get("a"), get("b")],
        };
        assert!(reads.is_read());
        let mixed = Batch {
            ops: vec![get("a"), put("b", "1")],
            ..reads
        };
        assert!(!mixed.is_read());
        assert_eq!(mixed.shards().len(), 1);
    }
}
