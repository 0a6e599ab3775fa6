//! Simulated clients: each runs one operation at a time against one KV group,
//! the way the Clerk does — to the replica it believes leads, following
//! `NotLeader` hints, trying the next replica after a timeout, retrying forever
//! with the same sequence number — and records every operation in the shared
//! linearizability history. A Scan asks every shard in turn and is recorded as
//! one operation spanning all the requests. Some operations are batches of
//! single-key operations ([`batch`]), sent and retried as the Clerk's
//! `execute_batch` sends them.

mod batch;

use crate::clock::{Time, MS};
use crate::linearizability::{History, Op as LinOp, OpId, Ret};
use crate::packet::KvCall;
use batch::BatchRun;
use diskv::op::Presence;
use diskv::{KvError, Op, Reply, Request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The keys clients use: few, so operations collide.
pub const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// What a client asks a replica (one attempt).
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Which replica.
    pub to: usize,
    /// The request.
    pub call: KvCall,
}

/// One client.
pub struct Client {
    /// Its id (also its client id at the store).
    pub id: u64,
    /// Replicas of its group.
    replicas: usize,
    /// Shards of the cluster.
    nshards: usize,
    /// The replica it sends to next.
    target: usize,
    /// The next sequence number.
    seq: u64,
    /// Operations completed.
    pub done: u64,
    /// The operation in flight.
    pub pending: Option<Pending>,
    /// Stops taking new operations.
    pub stopping: bool,
    /// Runs only Gets (a read-heavy client, as in a workload C).
    pub reader: bool,
    /// How long it waits for an answer before trying the next replica.
    pub attempt_timeout: Time,
    /// Percent of its operations that are batches.
    pub batch_percent: u32,
    /// Its own choices while an operation is in flight (splitting a batch on
    /// a retry), so they do not depend on the order of other events.
    rng: StdRng,
}

/// An operation in flight.
pub struct Pending {
    /// What the client asked for (a batch's first operation).
    pub op: LinOp,
    /// A batch's operations and parts, if it is one.
    batch: Option<BatchRun>,
    /// Its entry in the history.
    pub hist: OpId,
    /// Its sequence number.
    pub seq: u64,
    /// The shard being asked (every shard in turn for a Scan).
    pub shard: usize,
    /// A Scan's pairs so far.
    pairs: Vec<(String, String)>,
    /// A Keys's keys so far.
    keys: Vec<String>,
    /// When it was invoked.
    pub since: Time,
    /// Attempts sent.
    pub attempts: u32,
    /// Identifies the latest attempt (replies to older ones are still accepted).
    pub attempt_id: u64,
}

impl Pending {
    /// A request not yet sent: `seq` asking `shard` first, invoked at `now`.
    fn new(
        op: LinOp,
        batch: Option<BatchRun>,
        hist: OpId,
        seq: u64,
        shard: usize,
        now: Time,
    ) -> Pending {
        Pending {
            op,
            batch,
            hist,
            seq,
            shard,
            pairs: Vec::new(),
            keys: Vec::new(),
            since: now,
            attempts: 0,
            attempt_id: 0,
        }
    }
}

/// What a client does after an event.
pub enum Next {
    /// Send this attempt, and give up on it after the timeout.
    Send(Attempt),
    /// Try again after a pause.
    Pause(Time),
    /// Nothing (idle, or done).
    Idle,
}

/// How long a client waits for an answer before trying the next replica, unless
/// its run makes it impatient.
pub const ATTEMPT_TIMEOUT: Time = 400 * MS;

fn shard_of(key: &str, nshards: usize) -> usize {
    shardmaster::shard_of(key.as_bytes(), nshards)
}

impl Client {
    /// Client `id` of a group of `replicas` in a cluster of `nshards` shards.
    pub fn new(id: u64, replicas: usize, nshards: usize) -> Self {
        Client {
            id,
            replicas,
            nshards,
            target: (id as usize) % replicas,
            seq: 0,
            done: 0,
            pending: None,
            stopping: false,
            reader: false,
            attempt_timeout: ATTEMPT_TIMEOUT,
            batch_percent: 0,
            rng: StdRng::seed_from_u64(id),
        }
    }

    /// Seeds the client's own choices.
    pub fn seed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Starts a random operation (or `op` if given) at time `now`.
    pub fn start(
        &mut self,
        rng: &mut StdRng,
        history: &History,
        now: Time,
        op: Option<LinOp>,
    ) -> Next {
        if self.pending.is_some() || (self.stopping && op.is_none()) {
            return Next::Idle;
        }
        if op.is_none() && rng.gen_range(0..100) < self.batch_percent {
            return self.start_batch(rng, history, now);
        }
        let op = op.unwrap_or_else(|| self.random_op(rng));
        self.seq += 1;
        let hist = history.invoke(self.id, op.clone());
        let shard = match &op {
            LinOp::Scan { .. } | LinOp::Clear | LinOp::Keys { .. } => 0,
            other => shard_of(key_of(other), self.nshards),
        };
        self.pending = Some(Pending::new(op, None, hist, self.seq, shard, now));
        self.attempt()
    }

    fn random_op(&self, rng: &mut StdRng) -> LinOp {
        let key = KEYS[rng.gen_range(0..KEYS.len())];
        if self.reader {
            return LinOp::get(key);
        }
        let value = format!("{}.{}", self.id, self.seq + 1);
        match rng.gen_range(0..100) {
            0..=24 => LinOp::get(key),
            // Some Puts write an integer, for the Incrs to count on.
            25..=34 => LinOp::put(key, value),
            35..=39 => LinOp::put(key, rng.gen_range(-5i64..100).to_string()),
            40..=59 => LinOp::append(key, value),
            60..=71 => LinOp::delete(key),
            72..=81 => LinOp::swap(key, value),
            82..=86 => LinOp::incr(key, rng.gen_range(-3..=7)),
            87 => LinOp::put_if(key, value, rng.gen_bool(0.5)),
            88 => LinOp::take(key),
            89 => LinOp::append_len(key, value),
            90..=93 => LinOp::keys(key, rng.gen_range(1..=4)),
            _ => {
                let a = KEYS[rng.gen_range(0..KEYS.len())];
                let b = KEYS[rng.gen_range(0..KEYS.len())];
                LinOp::scan(a.min(b), a.max(b))
            }
        }
    }

    /// The next attempt of the pending operation.
    fn attempt(&mut self) -> Next {
        let (id, target) = (self.id, self.target);
        let Some(p) = self.pending.as_mut() else {
            return Next::Idle;
        };
        p.attempts += 1;
        p.attempt_id += 1;
        if let Some(batch) = &p.batch {
            return Next::Send(Attempt {
                to: target,
                call: batch.call(id, p.seq),
            });
        }
        Next::Send(Attempt {
            to: target,
            call: KvCall::One(Request {
                client: id,
                seq: p.seq,
                shard: p.shard,
                op: wire_op(&p.op),
            }),
        })
    }

    /// The current attempt got no answer in time: try the next replica.
    pub fn timed_out(&mut self, attempt_id: u64) -> Next {
        match &self.pending {
            Some(p) if p.attempt_id == attempt_id => {
                self.target = (self.target + 1) % self.replicas;
                self.maybe_split();
                self.attempt()
            }
            _ => Next::Idle,
        }
    }

    /// A reply to request (`seq`, `shard`, batch `part`) arrived from replica
    /// `from` at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn reply(
        &mut self,
        history: &History,
        now: Time,
        from: usize,
        seq: u64,
        shard: usize,
        part: u32,
        result: Result<Reply, KvError>,
    ) -> Next {
        let Some(p) = self.pending.as_mut() else {
            return Next::Idle;
        };
        if p.seq != seq {
            return Next::Idle; // a late answer to an earlier operation
        }
        if let Some(batch) = p.batch.as_mut() {
            if batch.part() != part {
                return Next::Idle; // a late answer to another part
            }
            if let Ok(reply) = result {
                self.target = from;
                if batch.answered(history, reply) {
                    return self.attempt(); // the next part, same number
                }
                self.pending = None;
                self.done += 1;
                return Next::Idle;
            }
            return self.failed(from, result);
        }
        if p.shard != shard || part != 0 {
            return Next::Idle; // a late answer to an earlier shard
        }
        match result {
            Ok(reply) => {
                self.target = from;
                if let (LinOp::Scan { .. }, Reply::Pairs(pairs)) = (&p.op, &reply) {
                    p.pairs.extend(pairs.iter().cloned());
                    if p.shard + 1 < self.nshards {
                        p.shard += 1;
                        return self.attempt();
                    }
                    let mut pairs = std::mem::take(&mut p.pairs);
                    pairs.sort();
                    history.ret(p.hist, Ret::Pairs(pairs));
                } else if let (LinOp::Keys { limit, .. }, Reply::Keys(keys)) = (&p.op, &reply) {
                    // Every shard's first keys, merged as the Clerk merges them.
                    p.keys.extend(keys.iter().cloned());
                    if p.shard + 1 < self.nshards {
                        p.shard += 1;
                        return self.attempt();
                    }
                    let mut keys = std::mem::take(&mut p.keys);
                    keys.sort();
                    keys.truncate(*limit as usize);
                    history.ret(p.hist, Ret::Keys(keys));
                } else {
                    history.ret(p.hist, ret_of(reply));
                }
                let _ = now;
                self.pending = None;
                self.done += 1;
                Next::Idle
            }
            Err(_) => self.failed(from, result),
        }
    }

    /// An error from replica `from`: follow its leader hint, or pause and try
    /// the next replica.
    fn failed(&mut self, from: usize, result: Result<Reply, KvError>) -> Next {
        match result {
            Err(KvError::NotLeader { leader: Some(l) }) if l < self.replicas && l != from => {
                self.target = l;
                self.attempt()
            }
            _ => {
                self.target = (from + 1) % self.replicas;
                Next::Pause(20 * MS)
            }
        }
    }

    /// Resends the pending operation after a pause.
    pub fn resume(&mut self) -> Next {
        self.maybe_split();
        self.attempt()
    }
}

fn key_of(op: &LinOp) -> &str {
    match op {
        LinOp::Get { key }
        | LinOp::Put { key, .. }
        | LinOp::Append { key, .. }
        | LinOp::Swap { key, .. }
        | LinOp::Delete { key }
        | LinOp::Incr { key, .. }
        | LinOp::PutIf { key, .. }
        | LinOp::Take { key }
        | LinOp::AppendLen { key, .. } => key,
        LinOp::Scan { .. } | LinOp::Clear | LinOp::Keys { .. } => "",
    }
}

fn ret_of(reply: Reply) -> Ret {
    match reply {
        Reply::Value(v) => Ret::Value(v),
        Reply::Existed(e) => Ret::Existed(e),
        Reply::Pairs(p) => Ret::Pairs(p),
        Reply::Cleared => Ret::Done,
        Reply::Counter(sum) => Ret::Counter(sum.ok()),
        Reply::Length(n) => Ret::Length(n),
        Reply::Keys(k) => Ret::Keys(k),
        // The simulator's values are far below the limit: an Append refused as
        // too large would be a bug, and a reply of the wrong kind (Clear's) makes
        // the checker say so.
        Reply::TooLarge(_) => Ret::Done,
        // Batches are answered one reply per operation, never as a whole.
        Reply::Batch(_) => Ret::Done,
    }
}

/// The store's operation for the checker's `op` (a single-key one, or one
/// shard's request of a Scan or Keys).
pub(crate) fn wire_op(op: &LinOp) -> Op {
    match op {
        LinOp::Get { key } => Op::Get { key: key.clone() },
        LinOp::Put { key, value } => Op::Put {
            key: key.clone(),
            value: value.clone(),
        },
        LinOp::Append { key, value } => Op::Append {
            key: key.clone(),
            value: value.clone(),
        },
        LinOp::Swap { key, value } => Op::Swap {
            key: key.clone(),
            value: value.clone(),
        },
        LinOp::Delete { key } => Op::Delete { key: key.clone() },
        LinOp::Scan { start, end } => Op::Scan {
            start: start.clone(),
            end: end.clone(),
        },
        LinOp::Clear => Op::Clear,
        LinOp::Incr { key, by } => Op::Incr {
            key: key.clone(),
            by: *by,
        },
        LinOp::PutIf { key, value, absent } => Op::PutIf {
            key: key.clone(),
            value: value.clone(),
            when: if *absent {
                Presence::Absent
            } else {
                Presence::Present
            },
        },
        LinOp::Take { key } => Op::Take { key: key.clone() },
        LinOp::Keys { start, limit } => Op::Keys {
            start: start.clone(),
            limit: *limit,
        },
        LinOp::AppendLen { key, value } => Op::AppendLen {
            key: key.clone(),
            value: value.clone(),
        },
    }
}
