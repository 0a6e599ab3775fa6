//! Applying a [`Batch`]: its operations in order, as one log instance, each
//! shard's part exactly once (see [`crate::batch`]).

use super::dedup::Seen;
use super::shard::Shard;
use super::{KvOutput, KvState};
use crate::batch::{Batch, MAX_BATCH_REPLY_BYTES};
use crate::op::{KvError, Op, Reply};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

impl KvState {
    /// Answers a batch of reads from the local state; the caller ensures
    /// linearizability (one read index for the whole batch).
    pub fn read_batch(&self, batch: &Batch) -> KvOutput {
        for shard in batch.shards() {
            self.serving(shard)?;
        }
        self.check_reply_bound(batch.ops.iter())?;
        let replies = batch
            .ops
            .iter()
            .map(|(shard, op)| self.read_op(*shard, op))
            .collect::<Result<_, _>>()?;
        Ok(Reply::Batch(replies))
    }

    /// Applies `batch`: nothing if any of its shards is not served here (the
    /// error says why, as for one operation); else each operation in order,
    /// except those of a shard whose duplicate table already holds the batch's
    /// number, which are answered from there. A shard's part that writes is
    /// recorded under the batch's number with every reply of that part; a part
    /// that only reads is not recorded (reads are not deduplicated).
    pub(super) fn apply_batch(&mut self, batch: Batch, at_ms: u64) -> KvOutput {
        self.advance_clock(at_ms);
        let shards = batch.shards();
        for &shard in &shards {
            self.serving(shard)?;
        }
        let writing: BTreeSet<usize> = batch
            .ops
            .iter()
            .filter(|(_, op)| !op.is_read())
            .map(|(shard, _)| *shard)
            .collect();
        let now = self.now_ms;
        let mut answered: BTreeMap<usize, VecDeque<Reply>> = BTreeMap::new();
        for &shard in &writing {
            let dups = &mut self.served_mut(shard)?.dups;
            match dups.seen(batch.client, batch.seq) {
                Seen::New => {}
                Seen::Stale => return Err(KvError::Timeout),
                Seen::Duplicate(reply) => {
                    dups.touch(batch.client, now);
                    let ops = batch.ops.iter().filter(|(s, _)| *s == shard).count();
                    match reply {
                        Reply::Batch(replies) if replies.len() == ops => {
                            answered.insert(shard, replies.into());
                        }
                        other => {
                            return Err(KvError::Invalid(format!(
                                "request {} of client {} was first applied with other \
                                 operations on shard {shard} (reply {other:?}): a retry must \
                                 send the same operations",
                                batch.seq, batch.client
                            )))
                        }
                    }
                }
            }
        }
        if answered.is_empty() {
            // Refused only while no shard's part was applied before: the Clerk
            // then sends the operations one at a time, which must not apply a
            // part a second time.
            self.check_reply_bound(batch.ops.iter())?;
        }
        let mut fresh: BTreeMap<usize, Vec<Reply>> = BTreeMap::new();
        let mut replies = Vec::with_capacity(batch.ops.len());
        for (shard_id, op) in &batch.ops {
            if let Some(earlier) = answered.get_mut(shard_id) {
                replies.extend(earlier.pop_front());
                continue;
            }
            let mut touched = Vec::new();
            let reply = self
                .served_mut(*shard_id)?
                .apply(op, |k| touched.push(k.to_string()));
            self.dirty
                .extend(touched.into_iter().map(|k| (*shard_id, k)));
            fresh.entry(*shard_id).or_default().push(reply.clone());
            replies.push(reply);
        }
        for (shard, part) in fresh {
            if writing.contains(&shard) {
                self.served_mut(shard)?.dups.record(
                    batch.client,
                    batch.seq,
                    Reply::Batch(part),
                    now,
                );
            }
        }
        Ok(Reply::Batch(replies))
    }

    /// Refuses `ops` if their replies could hold more than
    /// [`MAX_BATCH_REPLY_BYTES`] of values: each operation that answers a value
    /// counts its key's value now, plus every byte the operations before it
    /// write (an upper bound: they may write that key). Computed before
    /// anything is applied or copied, the same at every replica.
    fn check_reply_bound<'a>(
        &self,
        ops: impl Iterator<Item = &'a (usize, Op)>,
    ) -> Result<(), KvError> {
        let (mut bytes, mut written) = (0usize, 0usize);
        for (shard, op) in ops {
            if matches!(
                op,
                Op::Get { .. } | Op::Swap { .. } | Op::PutIf { .. } | Op::Take { .. }
            ) {
                let now = op
                    .key()
                    .and_then(|k| self.shards.get(shard)?.data.get(k))
                    .map_or(0, |v| v.len());
                bytes = bytes.saturating_add(now).saturating_add(written);
            }
            written = written.saturating_add(op.value().map_or(0, str::len));
        }
        if bytes > MAX_BATCH_REPLY_BYTES {
            return Err(KvError::RepliesTooLarge {
                bytes,
                limit: MAX_BATCH_REPLY_BYTES,
            });
        }
        Ok(())
    }

    /// A shard this group serves (checked for every shard of a batch before
    /// any operation is applied, so the error cannot come half-way).
    fn served_mut(&mut self, shard: usize) -> Result<&mut Shard, KvError> {
        self.serving(shard)?;
        let config = self.config.num;
        self.shards
            .get_mut(&shard)
            .ok_or(KvError::WrongGroup { shard, config })
    }
}
