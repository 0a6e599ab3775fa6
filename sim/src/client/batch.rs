//! A simulated client's batches: 2 to 5 single-key operations sent as one
//! request with one sequence number, as `Clerk::execute_batch` sends a run of
//! operations for one group. Each operation is its own entry in the history,
//! invoked when the batch is first sent and returned when the reply to its
//! part arrives.
//!
//! A retry resends the same batch with the same number. Sometimes a retry
//! splits it in two, keeping the number, as the Clerk does when a refreshed
//! configuration gives its shards to two groups: the simulator has one KV
//! group, so the split is drawn at random instead, over the shards (every
//! operation on one shard stays in one part, as the split by owner keeps
//! them). The parts then run one after another; an earlier attempt of the
//! whole batch may still be decided after a part was answered, which the
//! per-shard duplicate tables must absorb.

use super::{key_of, ret_of, shard_of, wire_op, Client, Next, Pending};
use crate::clock::Time;
use crate::linearizability::{History, Op as LinOp, OpId, Ret};
use crate::packet::KvCall;
use diskv::{Batch, Reply};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::VecDeque;

/// One operation of a batch.
struct Member {
    op: LinOp,
    hist: OpId,
    shard: usize,
}

/// A batch in flight: its operations and the parts still to be answered, the
/// front one being sent.
pub(super) struct BatchRun {
    ops: Vec<Member>,
    /// Indices into `ops`, in order, one list per part.
    parts: VecDeque<Vec<usize>>,
    /// The tag of the part being sent (see [`KvCall::Many`]).
    part: u32,
}

impl BatchRun {
    /// The tag of the part being sent.
    pub(super) fn part(&self) -> u32 {
        self.part
    }

    /// The request for the part being sent.
    pub(super) fn call(&self, client: u64, seq: u64) -> KvCall {
        let ops = self
            .parts
            .front()
            .map(|part| {
                part.iter()
                    .map(|&i| (self.ops[i].shard, wire_op(&self.ops[i].op)))
                    .collect()
            })
            .unwrap_or_default();
        KvCall::Many {
            batch: Batch { client, seq, ops },
            part: self.part,
        }
    }

    /// The part being sent was answered with `reply`: its operations return
    /// (a reply of the wrong shape returns them with one the checker refuses).
    /// True if another part is still to be sent.
    pub(super) fn answered(&mut self, history: &History, reply: Reply) -> bool {
        let Some(part) = self.parts.pop_front() else {
            return false;
        };
        match reply {
            Reply::Batch(replies) if replies.len() == part.len() => {
                for (&i, reply) in part.iter().zip(replies) {
                    history.ret(self.ops[i].hist, ret_of(reply));
                }
            }
            _ => {
                for &i in &part {
                    history.ret(self.ops[i].hist, Ret::Done);
                }
            }
        }
        self.part += 1;
        !self.parts.is_empty()
    }

    /// Splits the part being sent in two by its shards, each shard's
    /// operations in one part, the part of the first operation first; false
    /// if it touches one shard only.
    fn split(&mut self, rng: &mut StdRng) -> bool {
        let Some(part) = self.parts.front() else {
            return false;
        };
        let mut shards: Vec<usize> = Vec::new();
        for &i in part {
            if !shards.contains(&self.ops[i].shard) {
                shards.push(self.ops[i].shard);
            }
        }
        if shards.len() < 2 {
            return false;
        }
        // The first shard's side, and at least one shard on the other.
        let mut with_first: Vec<usize> = vec![shards[0]];
        let mut others: Vec<usize> = Vec::new();
        for &s in &shards[1..] {
            if rng.gen_bool(0.5) {
                with_first.push(s);
            } else {
                others.push(s);
            }
        }
        if others.is_empty() {
            others.extend(with_first.pop());
        }
        let (first, second): (Vec<usize>, Vec<usize>) = part
            .iter()
            .partition(|&&i| with_first.contains(&self.ops[i].shard));
        self.parts.pop_front();
        self.parts.push_front(second);
        self.parts.push_front(first);
        self.part += 1;
        true
    }
}

impl Client {
    /// Starts a batch of 2 to 5 random single-key operations (only Gets for
    /// a reader), each invoked in the history now.
    pub(super) fn start_batch(&mut self, rng: &mut StdRng, history: &History, now: Time) -> Next {
        self.seq += 1;
        let n = rng.gen_range(2..=5);
        let ops: Vec<Member> = (0..n)
            .map(|i| {
                let op = self.batch_op(rng, i);
                let shard = shard_of(key_of(&op), self.nshards);
                let hist = history.invoke(self.id, op.clone());
                Member { op, hist, shard }
            })
            .collect();
        let (first, shard, ops_hist) = (ops[0].op.clone(), ops[0].shard, ops[0].hist);
        let run = BatchRun {
            parts: VecDeque::from([(0..ops.len()).collect()]),
            ops,
            part: 1,
        };
        self.pending = Some(Pending::new(
            first,
            Some(run),
            ops_hist,
            self.seq,
            shard,
            now,
        ));
        self.attempt()
    }

    /// Operation `i` of a batch: writes, Incrs and reads mixed, with values
    /// unique to the operation.
    fn batch_op(&self, rng: &mut StdRng, i: usize) -> LinOp {
        let key = super::KEYS[rng.gen_range(0..super::KEYS.len())];
        if self.reader {
            return LinOp::get(key);
        }
        let value = format!("{}.{}.{i}", self.id, self.seq);
        match rng.gen_range(0..100) {
            0..=29 => LinOp::get(key),
            30..=44 => LinOp::put(key, value),
            45..=49 => LinOp::put(key, rng.gen_range(-5i64..100).to_string()),
            50..=66 => LinOp::append(key, value),
            67..=81 => LinOp::incr(key, rng.gen_range(-3..=7)),
            82..=86 => LinOp::delete(key),
            87..=90 => LinOp::swap(key, value),
            91..=93 => LinOp::put_if(key, value, rng.gen_bool(0.5)),
            94..=96 => LinOp::take(key),
            _ => LinOp::append_len(key, value),
        }
    }

    /// Before a retry: sometimes splits the batch in flight (see the module
    /// doc).
    pub(super) fn maybe_split(&mut self) {
        let Some(batch) = self.pending.as_mut().and_then(|p| p.batch.as_mut()) else {
            return;
        };
        if self.rng.gen_bool(0.3) {
            batch.split(&mut self.rng);
        }
    }
}
