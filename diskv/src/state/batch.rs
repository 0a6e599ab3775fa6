//! Applying a [`Batch`]: its operations in order, as one log instance, each
//! shard's part exactly once (see [`crate::batch`]).

use super::dedup::Seen;
use super::shard::Shard;
use super::{KvOutput, KvState};
use crate::batch::{reply_too_large, Batch, MAX_BATCH_REPLY_BYTES};
use crate::op::{KvError, Op, Reply};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

impl KvState {
    /// Answers a batch of reads from the local state; the caller ensures
    /// linearizability (one read index for the whole batch). Refused with
    /// [`KvError::RepliesTooLarge`] if the values would be over
    /// [`MAX_BATCH_REPLY_BYTES`] (checked before any is copied).
    pub fn read_batch(&self, batch: &Batch) -> KvOutput {
        for shard in batch.shards() {
            self.serving(shard)?;
        }
        let bytes = self.reply_bound(batch);
        if bytes > MAX_BATCH_REPLY_BYTES as u64 {
            return Err(reply_too_large(bytes));
        }
        // Scans and Keys are not in the bound: count what they carry as built.
        let mut built = 0u64;
        let mut replies = Vec::with_capacity(batch.ops.len());
        for (shard, op) in &batch.ops {
            let reply = self.read_op(*shard, op)?;
            built = built.saturating_add(reply.carried_bytes());
            if built > MAX_BATCH_REPLY_BYTES as u64 {
                return Err(reply_too_large(built));
            }
            replies.push(reply);
        }
        Ok(Reply::Batch(replies))
    }

    /// Applies `batch`: nothing if any of its shards is not served here (the
    /// error says why, as for one operation); else each operation in order,
    /// except those of a shard whose duplicate table already holds the batch's
    /// number, which are answered from there. A shard's part that writes is
    /// recorded under the batch's number with every reply of that part; a part
    /// that only reads is not recorded (reads are not deduplicated).
    ///
    /// A new batch whose replies could carry more than
    /// [`MAX_BATCH_REPLY_BYTES`] of values is refused whole, and the refusal is
    /// recorded in place of the replies: an attempt of the same batch decided
    /// later (a retry, or a proposal that was late) is refused too, and never
    /// applied after the Clerk has run the operations one at a time.
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
                        Reply::TooLarge(bytes) => return Err(reply_too_large(bytes)),
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
            let bytes = self.reply_bound(&batch);
            if bytes > MAX_BATCH_REPLY_BYTES as u64 {
                for &shard in &writing {
                    let dups = &mut self.served_mut(shard)?.dups;
                    dups.record(batch.client, batch.seq, Reply::TooLarge(bytes), now);
                }
                return Err(reply_too_large(bytes));
            }
        }
        let mut fresh: BTreeMap<usize, Vec<Reply>> = BTreeMap::new();
        let mut replies = Vec::with_capacity(batch.ops.len());
        for (shard_id, op) in &batch.ops {
            if let Some(earlier) = answered.get_mut(shard_id) {
                replies.extend(earlier.pop_front());
                continue;
            }
            // Every shard was checked served above.
            let config = self.config.num;
            let Some(shard) = self.shards.get_mut(shard_id) else {
                return Err(KvError::WrongGroup {
                    shard: *shard_id,
                    config,
                });
            };
            let dirty = &mut self.dirty;
            let reply = shard.apply(op, |k| {
                dirty.insert((*shard_id, k.to_string()));
            });
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

    /// At least the bytes of values `batch`'s replies carry if it is applied
    /// now: an operation that answers with a value (Get, Swap, PutIf, Take)
    /// answers with its key's, which is at most as long as the key's value now
    /// plus every byte the batch's operations before it wrote to the key (an
    /// Incr writes at most 20).
    fn reply_bound(&self, batch: &Batch) -> u64 {
        let mut written: HashMap<&str, u64> = HashMap::new();
        let mut total = 0u64;
        for (shard, op) in &batch.ops {
            let Some(key) = op.key() else {
                continue;
            };
            let grown = written.get(key).copied().unwrap_or(0);
            if matches!(
                op,
                Op::Get { .. } | Op::Swap { .. } | Op::PutIf { .. } | Op::Take { .. }
            ) {
                let held = self
                    .shards
                    .get(shard)
                    .and_then(|s| s.data.get(key))
                    .map_or(0, |v| v.len() as u64);
                total = total.saturating_add(held.saturating_add(grown));
            }
            let adds = match op {
                Op::Incr { .. } => 20,
                other => other.value().map_or(0, |v| v.len() as u64),
            };
            if adds > 0 {
                let w = written.entry(key).or_default();
                *w = w.saturating_add(adds);
            }
        }
        total
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
