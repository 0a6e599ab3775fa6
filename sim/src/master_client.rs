//! Simulated shardmaster clients, behaving as `shardmaster::Clerk` does: one
//! operation at a time; each Join, Leave and Move gets the next sequence number
//! and keeps it through every retry (Queries carry 0); an attempt that gets no
//! answer in time, or an `Unavailable`, moves on to the next replica, and after
//! every replica failed once the client pauses (capped, jittered, doubling
//! back-off); any other answer is final, and the replica that gave it is asked
//! first next time. Every operation is recorded in the [`MasterHistory`] the
//! configuration checks read ([`crate::check::configs`]).

use crate::clock::{Time, MS, SECOND};
use crate::packet::MasterCall;
use rand::rngs::StdRng;
use rand::Rng;
use shardmaster::{ConfigNum, Gid, Op, OpRequest, OpResult, ShardmasterError};

/// The groups clients join, leave and move shards to: few, so they collide.
pub const GIDS: [Gid; 5] = [2, 3, 4, 5, 6];

/// How long an attempt waits for its answer (`ClerkOptions::attempt_timeout`).
pub const ATTEMPT_TIMEOUT: Time = 2 * SECOND;
/// The first pause after every replica failed (`ClerkOptions::backoff_min`).
const BACKOFF_MIN: Time = 20 * MS;
/// The longest pause (`ClerkOptions::backoff_max`).
const BACKOFF_MAX: Time = SECOND;

/// The replicas' addresses of group `gid` when a client joins it (`alt`: another
/// list, which the shardmaster refuses for a joined group).
pub fn servers(gid: Gid, alt: bool) -> Vec<String> {
    if alt {
        vec![format!("sim-g{gid}-alt:7000")]
    } else {
        (0..2).map(|i| format!("sim-g{gid}-{i}:7000")).collect()
    }
}

/// One operation of the history.
#[derive(Clone, Debug)]
pub struct MasterOp {
    /// The client.
    pub client: u64,
    /// Its sequence number (0 for a Query).
    pub seq: u64,
    /// The operation.
    pub op: Op,
    /// When the client invoked it.
    pub invoked: Time,
    /// When it returned, and what (`None`: still pending at the end).
    pub returned: Option<(Time, Result<OpResult, ShardmasterError>)>,
}

/// Every shardmaster operation of a run.
#[derive(Default)]
pub struct MasterHistory {
    /// In invocation order.
    pub ops: Vec<MasterOp>,
}

/// What a client does after an event.
pub enum Next {
    /// Send this attempt to replica `to`, and give up on it after the timeout.
    Send {
        /// The replica.
        to: usize,
        /// The attempt.
        call: MasterCall,
    },
    /// Try again after a pause.
    Pause(Time),
    /// Nothing (idle, or done).
    Idle,
}

/// The operation in flight.
pub struct Pending {
    /// Its entry in the history.
    pub hist: usize,
    /// The request (the same for every attempt).
    pub req: OpRequest,
    /// The operation's tag: replies carry it.
    pub tag: u64,
    /// When it was invoked.
    pub since: Time,
    /// Identifies the latest attempt.
    pub attempt_id: u64,
    /// The replica the round of attempts started at.
    first: usize,
    /// The current back-off.
    backoff: Time,
}

/// One shardmaster client.
pub struct MasterClient {
    /// Its client id.
    pub id: u64,
    /// Replicas of the shardmaster.
    replicas: usize,
    /// The replica that answered last.
    preferred: usize,
    /// The replica of the current attempt.
    target: usize,
    /// The last write's sequence number.
    seq: u64,
    /// Operations started (tags).
    ops: u64,
    /// Operations completed.
    pub done: u64,
    /// The operation in flight.
    pub pending: Option<Pending>,
    /// Stops taking new operations.
    pub stopping: bool,
}

impl MasterClient {
    /// Client `id` of a shardmaster of `replicas`.
    pub fn new(id: u64, replicas: usize) -> Self {
        MasterClient {
            id,
            replicas,
            preferred: (id as usize) % replicas,
            target: 0,
            seq: 0,
            ops: 0,
            done: 0,
            pending: None,
            stopping: false,
        }
    }

    /// Starts a random operation (or `op`) at `now`; `known` is the latest
    /// configuration number this client has heard of.
    pub fn start(
        &mut self,
        rng: &mut StdRng,
        history: &mut MasterHistory,
        now: Time,
        op: Option<Op>,
    ) -> Next {
        if self.pending.is_some() || (self.stopping && op.is_none()) {
            return Next::Idle;
        }
        let op = op.unwrap_or_else(|| random_op(rng, history));
        let seq = if op.is_write() {
            self.seq += 1;
            self.seq
        } else {
            0
        };
        self.ops += 1;
        history.ops.push(MasterOp {
            client: self.id,
            seq,
            op: op.clone(),
            invoked: now,
            returned: None,
        });
        self.target = self.preferred;
        self.pending = Some(Pending {
            hist: history.ops.len() - 1,
            req: OpRequest {
                client: self.id,
                seq,
                op,
            },
            tag: self.ops,
            since: now,
            attempt_id: 0,
            first: self.preferred,
            backoff: BACKOFF_MIN,
        });
        self.attempt()
    }

    fn attempt(&mut self) -> Next {
        let Some(p) = self.pending.as_mut() else {
            return Next::Idle;
        };
        p.attempt_id += 1;
        Next::Send {
            to: self.target,
            call: MasterCall {
                req: p.req.clone(),
                tag: p.tag,
            },
        }
    }

    /// The current attempt failed: the next replica, or a pause once every
    /// replica failed since the last one.
    fn failed(&mut self, rng: &mut StdRng) -> Next {
        let replicas = self.replicas;
        let Some(p) = self.pending.as_mut() else {
            return Next::Idle;
        };
        self.target = (self.target + 1) % replicas;
        if self.target != p.first {
            return self.attempt();
        }
        let pause = rng.gen_range(p.backoff / 2..=p.backoff);
        p.backoff = (p.backoff * 2).min(BACKOFF_MAX);
        Next::Pause(pause.max(1))
    }

    /// The current attempt got no answer in time.
    pub fn timed_out(&mut self, rng: &mut StdRng, attempt_id: u64) -> Next {
        match &self.pending {
            Some(p) if p.attempt_id == attempt_id => self.failed(rng),
            _ => Next::Idle,
        }
    }

    /// Resends after a pause.
    pub fn resume(&mut self) -> Next {
        self.attempt()
    }

    /// Replica `from` answered the operation tagged `tag` at `now`.
    pub fn reply(
        &mut self,
        rng: &mut StdRng,
        history: &mut MasterHistory,
        now: Time,
        from: usize,
        tag: u64,
        result: Result<OpResult, ShardmasterError>,
    ) -> Next {
        let Some(p) = self.pending.as_ref() else {
            return Next::Idle;
        };
        if p.tag != tag {
            return Next::Idle; // a late answer to an earlier operation
        }
        if result.as_ref().is_err_and(|e| e.is_retryable()) {
            if from != self.target {
                return Next::Idle; // an earlier attempt's failure: the current one runs
            }
            return self.failed(rng);
        }
        history.ops[p.hist].returned = Some((now, result));
        self.preferred = from;
        self.pending = None;
        self.done += 1;
        Next::Idle
    }
}

/// A random operation: Join, Leave, Move and Query (the latest, or a number
/// around the latest anyone heard of).
fn random_op(rng: &mut StdRng, history: &MasterHistory) -> Op {
    let gid = GIDS[rng.gen_range(0..GIDS.len())];
    match rng.gen_range(0..100) {
        0..=24 => Op::Join {
            gid,
            servers: servers(gid, rng.gen_bool(0.1)),
        },
        25..=44 => Op::Leave { gid },
        45..=59 => Op::Move {
            shard: rng.gen_range(0..crate::world::NSHARDS),
            gid,
        },
        60..=84 => Op::query(ConfigNum::Latest),
        _ => {
            let known = history
                .ops
                .iter()
                .filter_map(|o| match &o.returned {
                    Some((_, Ok(OpResult::Changed { num } | OpResult::Unchanged { num }))) => {
                        Some(*num)
                    }
                    Some((_, Ok(OpResult::Config(c)))) => Some(c.num),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            Op::query(ConfigNum::Num(rng.gen_range(0..=known + 2)))
        }
    }
}
