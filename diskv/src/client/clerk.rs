//! The client library: routes each operation by key to the group that owns its
//! shard, finds that group's leader, and retries until the operation is done.
//!
//! A Clerk has one random client id and numbers its operations; a retry reuses the
//! number, so the group applies each operation at most once however often it is
//! sent. A Clerk runs one operation at a time (`&mut self`): callers that want
//! concurrency use several Clerks.

mod batch;

use crate::batch::Batch;
use crate::op::{ClientId, KvError, Op, Reply, Request, MAX_KEYS_PER_READ};
use crate::replica::server::Local;
use crate::rpc::conn::{deadline, Connections};
use paxos::transport::Fate;
use rand::Rng;
use shardmaster::{shard_of, Clerk as MasterClerk, Config, ConfigNum, Gid, NO_GROUP};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Deadline of one attempt at one replica.
const ATTEMPT: Duration = Duration::from_secs(3);
/// Longest pause between rounds of attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// A client of the KV service.
pub struct Clerk {
    masters: MasterClerk,
    config: Config,
    client: ClientId,
    seq: u64,
    conns: Connections,
    /// The replica of each group that answered last (tried first next time);
    /// shared by the requests of one fan-out, which run concurrently.
    leaders: Mutex<HashMap<Gid, usize>>,
    /// A replica in this process: called directly, not over loopback RPC.
    local: Option<Local>,
}

impl Clerk {
    /// A Clerk for the cluster whose shardmasters listen at `masters`. Waits until
    /// a shardmaster answers.
    pub async fn new(masters: Vec<String>) -> Clerk {
        let masters = MasterClerk::new(masters);
        let config = loop {
            match masters.query(ConfigNum::Latest).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, "no configuration from the shardmaster yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Clerk {
            masters,
            config,
            client: rand::random(),
            seq: 0,
            conns: Connections::default(),
            leaders: Mutex::new(HashMap::new()),
            local: None,
        }
    }

    /// Calls `local`, a replica running in this process, directly whenever the
    /// configuration names its address, instead of over loopback RPC: the same
    /// request, the same replies, without the serialization, the TCP round trip
    /// and the task hand-offs (`diskv serve`, `diskv server --http`).
    pub fn with_local(mut self, local: Local) -> Clerk {
        self.local = Some(local);
        self
    }

    /// One attempt of `call` at the replica at `addr`.
    async fn attempt(&self, addr: &str, call: &Call<'_>) -> Attempt {
        // A stopped replica is not called: another one may listen on its address
        // by now (restarted in this process), and RPC reaches that one.
        let local = self
            .local
            .as_ref()
            .filter(|l| l.addr == addr && !l.service.is_stopped());
        if let Some(local) = local {
            // The listener's --unreliable policy applies to a direct call too: a
            // dropped request or a discarded reply is an answer lost at the
            // attempt's deadline, as over RPC.
            let fate = local.unreliable.on_request();
            let lost_at = tokio::time::Instant::now() + ATTEMPT;
            if fate == Fate::Drop {
                tokio::time::sleep_until(lost_at).await;
                return Attempt::Lost("request dropped (--unreliable)".into());
            }
            let answer = match call {
                Call::One(req) => {
                    let run = local.service.execute_request((*req).clone());
                    tokio::time::timeout(ATTEMPT, run).await
                }
                Call::Many(batch) => {
                    let run = local.service.run_batch((*batch).clone());
                    tokio::time::timeout(ATTEMPT, run).await
                }
            }
            .unwrap_or(Err(KvError::Timeout));
            if fate == Fate::DiscardReply {
                tokio::time::sleep_until(lost_at).await;
                return Attempt::Lost("reply discarded (--unreliable)".into());
            }
            return Attempt::Answered(answer);
        }
        let Ok(client) = self.conns.get(addr).await else {
            return Attempt::NotSent;
        };
        let answer = match call {
            Call::One(req) => client.execute(deadline(ATTEMPT), (*req).clone()).await,
            Call::Many(batch) => {
                client
                    .execute_batch(deadline(ATTEMPT), (*batch).clone())
                    .await
            }
        };
        match answer {
            Ok(answer) => Attempt::Answered(answer),
            Err(e) => Attempt::Lost(e.to_string()),
        }
    }

    /// This Clerk's client id.
    pub fn id(&self) -> ClientId {
        self.client
    }

    /// The value of `key`, if any.
    pub async fn get(&mut self, key: &str) -> Result<Option<String>, KvError> {
        match self.keyed(Op::Get { key: key.into() }).await? {
            Reply::Value(v) => Ok(v),
            other => Err(other.unexpected()),
        }
    }

    /// Sets `key`; returns whether it existed before.
    pub async fn put(&mut self, key: &str, value: &str) -> Result<bool, KvError> {
        existed(
            self.keyed(Op::Put {
                key: key.into(),
                value: value.into(),
            })
            .await?,
        )
    }

    /// Appends to `key` (a missing key counts as ""); returns whether it existed.
    /// A value that would grow past [`crate::op::MAX_VALUE_BYTES`] is refused
    /// ([`KvError::TooLarge`]) and left as it was.
    pub async fn append(&mut self, key: &str, value: &str) -> Result<bool, KvError> {
        existed(
            self.keyed(Op::Append {
                key: key.into(),
                value: value.into(),
            })
            .await?
            .into_result()?,
        )
    }

    /// Adds `by` to the integer in `key` (a missing key counts as 0) and returns
    /// the sum, exactly once however often the request is retried. A value that
    /// is not an integer, or a sum that overflows, changes nothing and is
    /// [`KvError::Invalid`] with Redis's text.
    pub async fn incr(&mut self, key: &str, by: i64) -> Result<i64, KvError> {
        match self
            .keyed(Op::Incr {
                key: key.into(),
                by,
            })
            .await?
        {
            Reply::Counter(Ok(n)) => Ok(n),
            Reply::Counter(Err(e)) => Err(KvError::Invalid(e.to_string())),
            other => Err(other.unexpected()),
        }
    }

    /// Sets `key` and returns its previous value.
    pub async fn swap(&mut self, key: &str, value: &str) -> Result<Option<String>, KvError> {
        match self
            .keyed(Op::Swap {
                key: key.into(),
                value: value.into(),
            })
            .await?
        {
            Reply::Value(v) => Ok(v),
            other => Err(other.unexpected()),
        }
    }

    /// Removes `key`; returns whether it existed.
    pub async fn delete(&mut self, key: &str) -> Result<bool, KvError> {
        existed(self.keyed(Op::Delete { key: key.into() }).await?)
    }

    /// Every key in `[start, end]` with its value, sorted. Every shard is read
    /// linearizably, all at once (one round trip to each group, not one after
    /// another), and the pieces are merged in key order; the scan as a whole is
    /// not atomic. A scan of one key (`start == end`) reads only that key's
    /// shard, so it does not wait for groups that cannot hold the key.
    pub async fn scan(&mut self, start: &str, end: &str) -> Result<Vec<(String, String)>, KvError> {
        let nshards = self.config.shards.len();
        let shards: Vec<usize> = if start == end && !start.is_empty() {
            vec![shard_of(start.as_bytes(), nshards)]
        } else {
            (0..nshards).collect()
        };
        let op = Op::Scan {
            start: start.into(),
            end: end.into(),
        };
        let mut pieces = Vec::with_capacity(shards.len());
        for reply in self.run_each(&shards, &op).await? {
            match reply {
                Reply::Pairs(p) => pieces.push(p),
                other => return Err(other.unexpected()),
            }
        }
        Ok(merge(pieces))
    }

    /// Up to `limit` (at most [`MAX_KEYS_PER_READ`]) keys from `start` (included)
    /// over every shard, sorted, without their values: every shard is read
    /// linearizably for its smallest keys from `start`, all at once, and the
    /// first `limit` of all are kept (the page is not one snapshot).
    pub async fn keys(&mut self, start: &str, limit: u32) -> Result<Vec<String>, KvError> {
        let limit = limit.min(MAX_KEYS_PER_READ);
        let shards: Vec<usize> = (0..self.config.shards.len()).collect();
        let op = Op::Keys {
            start: start.into(),
            limit,
        };
        let mut all = Vec::new();
        for reply in self.run_each(&shards, &op).await? {
            match reply {
                Reply::Keys(k) => all.extend(k),
                other => return Err(other.unexpected()),
            }
        }
        all.sort();
        all.truncate(limit as usize);
        Ok(all)
    }

    /// Removes every key of every shard.
    pub async fn clear(&mut self) -> Result<(), KvError> {
        for shard in 0..self.config.shards.len() {
            match self.run(shard, Op::Clear).await {
                Err(KvError::NoSpace { reason, .. }) if shard > 0 => {
                    return Err(KvError::NoSpace {
                        reason: format!(
                            "{reason} (shards 0 to {} were already cleared, the others were not)",
                            shard - 1
                        ),
                        outcome_unknown: true,
                    })
                }
                result => {
                    result?;
                }
            }
        }
        Ok(())
    }

    /// Runs any operation and returns the servers' reply: a Scan or a Clear fans
    /// out over every shard as [`Clerk::scan`] and [`Clerk::clear`] do; the rest go
    /// to their key's shard. What each reply means is written on [`Op`].
    pub async fn execute(&mut self, op: Op) -> Result<Reply, KvError> {
        match op {
            Op::Scan { start, end } => Ok(Reply::Pairs(self.scan(&start, &end).await?)),
            Op::Clear => self.clear().await.map(|()| Reply::Cleared),
            Op::Keys { start, limit } => Ok(Reply::Keys(self.keys(&start, limit).await?)),
            op => self.keyed(op).await?.into_result(),
        }
    }

    async fn keyed(&mut self, op: Op) -> Result<Reply, KvError> {
        let key = op.key().unwrap_or_default();
        if key.is_empty() {
            return Err(KvError::Invalid("key cannot be empty".into()));
        }
        op.check_size()?;
        let shard = shard_of(key.as_bytes(), self.config.shards.len());
        self.run(shard, op).await
    }

    /// Sends `op` for `shard` until a group executes it. Only an invalid request
    /// ends with an error; everything else is retried.
    pub(super) async fn run(&mut self, shard: usize, op: Op) -> Result<Reply, KvError> {
        let req = self.request(shard, op);
        let mut config = self.config.clone();
        let reply = self.run_call(&Call::One(&req), &mut config).await;
        self.adopt(config);
        reply
    }

    /// [`Clerk::run`] of a read-only `op` (a Scan or Keys) on every shard of
    /// `shards`, all at once: one batch of reads to each group owning several
    /// of them, so a scan costs one request and one linearizable read per
    /// group, not per shard. The replies come in the order of `shards`, or the
    /// first error. Reads are never deduplicated, so the order in which they
    /// are served does not matter.
    async fn run_each(&mut self, shards: &[usize], op: &Op) -> Result<Vec<Reply>, KvError> {
        debug_assert!(op.is_read(), "only reads fan out concurrently");
        let ops = shards.iter().map(|&shard| (shard, op.clone())).collect();
        let parts = batch::split(&self.config, (0..shards.len()).collect(), ops);
        let reads: Vec<(Vec<usize>, Batch)> = parts
            .into_iter()
            .map(|part| {
                let batch = Batch {
                    client: self.client,
                    seq: self.next_seq(),
                    ops: part.ops,
                };
                (part.positions, batch)
            })
            .collect();
        let this = &*self;
        let runs = reads.iter().map(|(positions, batch)| async move {
            let mut config = this.config.clone();
            let replies = this.read_group(batch, &mut config).await;
            (positions, replies, config)
        });
        let outcomes = futures::future::join_all(runs).await;
        let mut out: Vec<Option<Reply>> = vec![None; shards.len()];
        for (positions, replies, config) in outcomes {
            self.adopt(config);
            for (&pos, reply) in positions.iter().zip(replies?) {
                out[pos] = Some(reply);
            }
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| KvError::Unavailable("a shard was not read".into())))
            .collect()
    }

    /// One group's reads of [`Clerk::run_each`]: its shards as one batch; one
    /// request per shard (all at once) for a lone shard, or when the batch
    /// comes back because its shards moved, its replies are too large for one
    /// batch, or the group does not take reads in a batch (`Invalid`: a
    /// replica of a version before them).
    async fn read_group(&self, batch: &Batch, config: &mut Config) -> Result<Vec<Reply>, KvError> {
        if batch.ops.len() > 1 {
            match self.run_call(&Call::Many(batch), config).await {
                Ok(Reply::Batch(replies)) if replies.len() == batch.ops.len() => {
                    return replies.into_iter().map(Reply::into_result).collect();
                }
                Ok(other) => return Err(other.unexpected()),
                Err(
                    e @ (KvError::WrongGroup { .. }
                    | KvError::RepliesTooLarge { .. }
                    | KvError::Invalid(_)),
                ) => {
                    tracing::debug!(seq = batch.seq, error = %e, "reads sent one per shard");
                }
                Err(e) => return Err(e),
            }
        }
        let requests: Vec<Request> = batch
            .ops
            .iter()
            .map(|(shard, op)| Request {
                client: batch.client,
                seq: batch.seq,
                shard: *shard,
                op: op.clone(),
            })
            .collect();
        let runs = requests.iter().map(|req| {
            let mut config = config.clone();
            async move {
                let reply = self.run_call(&Call::One(req), &mut config).await;
                (reply, config)
            }
        });
        let mut replies = Vec::with_capacity(requests.len());
        for (reply, seen) in futures::future::join_all(runs).await {
            keep_newer(config, seen);
            replies.push(reply?);
        }
        Ok(replies)
    }

    /// The next request of this Clerk: its own sequence number.
    fn request(&mut self, shard: usize, op: Op) -> Request {
        Request {
            client: self.client,
            seq: self.next_seq(),
            shard,
            op,
        }
    }

    /// The next sequence number of this Clerk.
    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Keeps `config` if it is newer than the one held.
    pub(super) fn adopt(&mut self, config: Config) {
        keep_newer(&mut self.config, config);
    }

    /// Sends `call` until a group executes it, following `config` (refreshed
    /// from the shardmasters between rounds). A batch whose shards `config`
    /// gives to more than one group comes back as [`KvError::WrongGroup`], at
    /// once: its caller splits it ([`Clerk::execute_batch`]).
    pub(super) async fn run_call(
        &self,
        call: &Call<'_>,
        config: &mut Config,
    ) -> Result<Reply, KvError> {
        let mut backoff = Duration::from_millis(10);
        let mut outcome_unknown = false;
        loop {
            if let Some(split) = call.split_by(config) {
                return Err(split);
            }
            match self.round(call, config, &mut outcome_unknown).await {
                Some(Ok(reply)) => return Ok(reply),
                Some(Err(KvError::NoSpace { reason, .. })) => {
                    return Err(KvError::NoSpace {
                        reason,
                        outcome_unknown,
                    })
                }
                Some(Err(e)) if !e.is_retryable() => return Err(e),
                _ => {}
            }
            let jitter = rand::thread_rng().gen_range(0.5..1.0);
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if let Ok(Ok(c)) =
                tokio::time::timeout(ATTEMPT, self.masters.query(ConfigNum::Latest)).await
            {
                if c.num > config.num {
                    *config = c;
                }
            }
        }
    }

    /// One round over the owning group's replicas, leader first. `None` when no
    /// replica could execute the request. A write is given up with
    /// [`KvError::NoSpace`] once a majority of the group answered that its disk is
    /// full: the group cannot decide it until space is freed. `outcome_unknown`
    /// is set when an attempt may have reached a replica and its answer was lost.
    async fn round(
        &self,
        call: &Call<'_>,
        config: &Config,
        outcome_unknown: &mut bool,
    ) -> Option<Result<Reply, KvError>> {
        let gid = *config.shards.get(call.shard())?;
        if gid == NO_GROUP {
            return None;
        }
        let servers = config.groups.get(&gid)?;
        let last = self.leaders().get(&gid).copied().unwrap_or(0);
        let mut idx = last % servers.len();
        let mut full = std::collections::BTreeSet::new();
        // A hint is followed only to a replica not asked yet this round: a
        // replica that applied an older list than this Clerk's names the leader
        // by its place in that list, which here may be another follower, and
        // two such could send the Clerk back and forth without ever asking the
        // leader (found by the attack on replica-set changes).
        let mut asked = vec![false; servers.len()];
        for _ in 0..2 * servers.len() {
            asked[idx] = true;
            let addr = &servers[idx];
            let next = (idx + 1) % servers.len();
            let answer = match self.attempt(addr, call).await {
                Attempt::Answered(answer) => Ok(answer),
                Attempt::NotSent => {
                    idx = next;
                    continue;
                }
                Attempt::Lost(e) => Err(e),
            };
            match answer {
                Ok(Ok(reply)) => {
                    self.leaders().insert(gid, idx);
                    return Some(Ok(reply));
                }
                Ok(Err(KvError::NotLeader { leader: Some(l) }))
                    if l < servers.len() && !asked[l] =>
                {
                    idx = l
                }
                Ok(Err(KvError::WrongGroup { .. })) => return None,
                Ok(Err(e @ KvError::NoSpace { .. })) => {
                    tracing::debug!(%addr, error = %e, "replica's disk is full");
                    full.insert(idx);
                    if 2 * full.len() > servers.len() {
                        return Some(Err(e));
                    }
                    idx = next;
                }
                Ok(Err(e)) if !e.is_retryable() => return Some(Err(e)),
                Ok(Err(e)) => {
                    *outcome_unknown |= e == KvError::Timeout;
                    tracing::debug!(%addr, error = %e, "attempt failed");
                    idx = next;
                }
                Err(e) => {
                    *outcome_unknown = true;
                    tracing::debug!(%addr, error = %e, "replica unreachable");
                    self.conns.drop_conn(addr);
                    idx = next;
                }
            }
        }
        None
    }
}

impl Clerk {
    fn leaders(&self) -> std::sync::MutexGuard<'_, HashMap<Gid, usize>> {
        self.leaders.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pairs of every shard (shards hold disjoint keys) in one run sorted by key.
fn merge(pieces: Vec<Vec<(String, String)>>) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = pieces.into_iter().flatten().collect();
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    all
}

/// What a Clerk sends: one operation, or a batch of them to one group.
pub(super) enum Call<'a> {
    One(&'a Request),
    Many(&'a Batch),
}

impl Call<'_> {
    /// The shard whose owner the call goes to.
    fn shard(&self) -> usize {
        match self {
            Call::One(req) => req.shard,
            Call::Many(batch) => batch.ops.first().map_or(0, |(shard, _)| *shard),
        }
    }

    /// For a batch whose shards `config` gives to several groups, the error
    /// that sends it back to be split.
    fn split_by(&self, config: &Config) -> Option<KvError> {
        let Call::Many(batch) = self else {
            return None;
        };
        let owner = |shard: usize| config.shards.get(shard).copied();
        let first = owner(self.shard());
        let other = batch.ops.iter().find(|(s, _)| owner(*s) != first)?;
        Some(KvError::WrongGroup {
            shard: other.0,
            config: config.num,
        })
    }
}

/// What became of one attempt.
enum Attempt {
    /// The replica could not be reached: the request was not sent.
    NotSent,
    /// The request was sent and its answer lost (the connection broke): its
    /// outcome is unknown.
    Lost(String),
    /// The replica answered.
    Answered(Result<Reply, KvError>),
}

/// Replaces `held` with `seen` if `seen` is a newer configuration.
fn keep_newer(held: &mut Config, seen: Config) {
    if seen.num > held.num {
        *held = seen;
    }
}

fn existed(reply: Reply) -> Result<bool, KvError> {
    match reply {
        Reply::Existed(b) => Ok(b),
        other => Err(other.unexpected()),
    }
}
