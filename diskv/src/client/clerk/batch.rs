//! [`Clerk::execute_batch`]: many single-key operations in order, as few
//! requests as the shards' owners allow (see [`crate::batch`]).

use super::{Call, Clerk};
use crate::batch::{Batch, MAX_BATCH_BYTES, MAX_BATCH_OPS};
use crate::op::{KvError, Op, Reply};
use shardmaster::{shard_of, Config, Gid};
use std::collections::VecDeque;

/// Consecutive operations for one group, sent as one batch.
pub(super) struct Part {
    gid: Gid,
    /// Where each operation's reply goes in the caller's list.
    pub(super) positions: Vec<usize>,
    /// Each operation with its key's shard.
    pub(super) ops: Vec<(usize, Op)>,
    bytes: usize,
}

impl Part {
    fn new(gid: Gid) -> Part {
        Part {
            gid,
            positions: Vec::new(),
            ops: Vec::new(),
            bytes: 0,
        }
    }

    /// Whether `op`, for group `gid`, may join this part.
    fn takes(&self, gid: Gid, bytes: usize) -> bool {
        self.gid == gid && self.ops.len() < MAX_BATCH_OPS && self.bytes + bytes <= MAX_BATCH_BYTES
    }

    fn push(&mut self, pos: usize, shard: usize, op: Op, bytes: usize) {
        self.positions.push(pos);
        self.ops.push((shard, op));
        self.bytes += bytes;
    }
}

/// Splits `positions`/`ops` by the group `config` gives each shard to, in
/// the order of each group's first operation (also how a scan's reads are
/// grouped, [`Clerk::run_each`]).
pub(super) fn split(config: &Config, positions: Vec<usize>, ops: Vec<(usize, Op)>) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    for (pos, (shard, op)) in positions.into_iter().zip(ops) {
        let gid = config.shards.get(shard).copied().unwrap_or_default();
        match parts.iter_mut().find(|p| p.gid == gid) {
            Some(part) => part.push(pos, shard, op, 0),
            None => {
                let mut part = Part::new(gid);
                part.push(pos, shard, op, 0);
                parts.push(part);
            }
        }
    }
    parts
}

impl Clerk {
    /// Runs `ops`, single-key operations, in order and answers each, as
    /// [`Clerk::execute`] would one after another, in fewer requests:
    /// consecutive operations whose shards one group owns go to it as one
    /// [`Batch`] (one request, one log instance), each batch after the one
    /// before. Each operation is applied exactly once. An operation that is not
    /// on one key (Scan, Keys, Clear) is refused with [`KvError::Invalid`]; a
    /// batch's failure (a full disk) is every one of its operations' error.
    ///
    /// Order: operations on one shard are applied in the order given, always.
    /// Across shards too, unless a batch's shards change owners while it is
    /// retried: it is then split by owner, and the parts run one after another.
    ///
    /// A batch whose replies would carry more than
    /// [`crate::batch::MAX_BATCH_REPLY_BYTES`] of values is refused by its
    /// group before anything is applied; its operations then run one at a time.
    pub async fn execute_batch(&mut self, ops: Vec<Op>) -> Vec<Result<Reply, KvError>> {
        self.execute_batch_within(ops, usize::MAX).await
    }

    /// [`Clerk::execute_batch`] for a caller that holds every answer at once
    /// (a Redis pipeline's run): once the values answered so far are over
    /// `reply_limit` bytes, the operations left are not run, and each is
    /// answered with [`KvError::TooLarge`] saying so.
    pub async fn execute_batch_within(
        &mut self,
        ops: Vec<Op>,
        reply_limit: usize,
    ) -> Vec<Result<Reply, KvError>> {
        let mut out: Vec<Option<Result<Reply, KvError>>> = ops.iter().map(|_| None).collect();
        let nshards = self.config.shards.len();
        let mut parts: Vec<Part> = Vec::new();
        for (pos, op) in ops.into_iter().enumerate() {
            let shard = match op.batchable_key() {
                Ok(key) => shard_of(key.as_bytes(), nshards),
                Err(e) => {
                    out[pos] = Some(Err(e));
                    continue;
                }
            };
            let gid = self.config.shards.get(shard).copied().unwrap_or_default();
            let bytes = op.carried_bytes();
            if !parts.last().is_some_and(|p| p.takes(gid, bytes)) {
                parts.push(Part::new(gid));
            }
            if let Some(part) = parts.last_mut() {
                part.push(pos, shard, op, bytes);
            }
        }
        let mut held = Held {
            bytes: 0,
            limit: reply_limit,
        };
        for part in parts {
            if held.full() {
                for pos in part.positions {
                    out[pos] = Some(Err(held.refusal()));
                }
                continue;
            }
            self.run_part(part, &mut out, &mut held).await;
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(KvError::Unavailable("no reply".into()))))
            .collect()
    }

    /// Runs one part: a lone operation as a plain request, more as a batch,
    /// split by owner (keeping the batch's number) when its shards moved, one
    /// operation at a time when its replies are too large for one.
    async fn run_part(
        &mut self,
        mut part: Part,
        out: &mut [Option<Result<Reply, KvError>>],
        held: &mut Held,
    ) {
        if let ([pos], [_]) = (part.positions.as_slice(), part.ops.as_slice()) {
            let (pos, (shard, op)) = (*pos, part.ops.remove(0));
            out[pos] = Some(held.count(self.run(shard, op).await.and_then(Reply::into_result)));
            return;
        }
        let seq = self.next_seq();
        let mut work = VecDeque::from([(part.positions, part.ops)]);
        while let Some((positions, ops)) = work.pop_front() {
            let batch = Batch {
                client: self.id(),
                seq,
                ops,
            };
            let mut config = self.config.clone();
            let answer = self.run_call(&Call::Many(&batch), &mut config).await;
            match answer {
                Err(KvError::WrongGroup { .. }) => {
                    tracing::debug!(seq, config = config.num, "batch split: its shards moved");
                    for part in split(&config, positions, batch.ops).into_iter().rev() {
                        work.push_front((part.positions, part.ops));
                    }
                }
                Ok(Reply::Batch(replies)) if replies.len() == positions.len() => {
                    for (pos, reply) in positions.into_iter().zip(replies) {
                        out[pos] = Some(held.count(reply.into_result()));
                    }
                }
                Err(KvError::RepliesTooLarge { .. }) => {
                    // Refused whole, and recorded so: nothing of it ran, nor
                    // will a late attempt of it. One at a time, in order.
                    tracing::debug!(seq, "batch refused for its replies' size: one at a time");
                    for (pos, (shard, op)) in positions.into_iter().zip(batch.ops) {
                        out[pos] = Some(if held.full() {
                            Err(held.refusal())
                        } else {
                            held.count(self.run(shard, op).await.and_then(Reply::into_result))
                        });
                    }
                }
                Ok(other) => {
                    let e = other.unexpected();
                    positions
                        .into_iter()
                        .for_each(|p| out[p] = Some(Err(e.clone())));
                }
                Err(e) => positions
                    .into_iter()
                    .for_each(|p| out[p] = Some(Err(e.clone()))),
            }
            self.adopt(config);
        }
    }
}

/// The bytes of values answered so far by one [`Clerk::execute_batch_within`].
struct Held {
    bytes: usize,
    limit: usize,
}

impl Held {
    /// Counts `answer`'s value and hands it back.
    fn count(&mut self, answer: Result<Reply, KvError>) -> Result<Reply, KvError> {
        if let Ok(Reply::Value(Some(v))) = &answer {
            self.bytes = self.bytes.saturating_add(v.len());
        }
        answer
    }

    /// True once the values held are over the limit: run nothing more.
    fn full(&self) -> bool {
        self.bytes > self.limit
    }

    /// The answer of an operation not run because the values held are over
    /// the limit.
    fn refusal(&self) -> KvError {
        KvError::TooLarge {
            what: "the replies before this command (it was not run: they fill the memory for \
                   replies in flight; send fewer GETs of large values per pipeline)"
                .into(),
            bytes: self.bytes,
            limit: self.limit,
        }
    }
}
