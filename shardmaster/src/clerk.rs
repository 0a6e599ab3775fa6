//! The client library: [`Clerk`] finds a live shardmaster replica and retries until
//! an operation is answered.
//!
//! # Semantics
//!
//! - One random client id per Clerk; each Join, Leave and Move gets the next
//!   sequence number and keeps it through every retry, so the replicas apply it at
//!   most once and answer a retry with the first result. A Clerk's writes run one at
//!   a time (concurrent calls wait their turn); queries need no numbering and run
//!   concurrently.
//! - Each attempt has a deadline ([`ClerkOptions::attempt_timeout`]). A failed
//!   attempt (no connection, no reply in time, replica without a majority) moves on
//!   to the next replica; after trying every replica the Clerk sleeps a capped,
//!   exponentially growing, jittered delay. The replica that answered last is tried
//!   first next time.
//! - Retries go on forever unless [`ClerkOptions::deadline`] is set, in which case
//!   [`ShardmasterError::Unreachable`] is returned once it passes. Failures are
//!   logged at debug level, and at warn level while an operation stays unanswered.
//! - An answer that retrying cannot change (an invalid argument, an unknown gid, ...)
//!   is returned at once as a [`ShardmasterError`]. Arguments that are invalid
//!   whatever the state (gid 0, a malformed address) are refused without contacting
//!   any replica.

use crate::config::{Config, Gid};
use crate::error::ShardmasterError;
use crate::op::{ConfigNum, Op, OpResult};
use crate::rpc::{OpRequest, ShardmasterRpcClient};
use paxos::transport::{codec, mux};
use rand::Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tarpc::client::{self, RpcError};
use tarpc::context;

/// How long an operation may stay unanswered before the Clerk warns, and then how
/// often it warns again.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// Settings of a [`Clerk`].
#[derive(Clone, Debug)]
pub struct ClerkOptions {
    /// Deadline of one attempt at one replica (default 2 s).
    pub attempt_timeout: Duration,
    /// Deadline of one TCP connect (default 1 s).
    pub connect_timeout: Duration,
    /// First pause after every replica failed (default 20 ms); doubles each round.
    pub backoff_min: Duration,
    /// Longest pause (default 1 s). Each pause is jittered to 50–100%.
    pub backoff_max: Duration,
    /// Give up on an operation after this long (default `None`: never).
    pub deadline: Option<Duration>,
}

impl Default for ClerkOptions {
    fn default() -> Self {
        ClerkOptions {
            attempt_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
            deadline: None,
        }
    }
}

/// A client of the shardmaster. Cheap to share (`Arc<Clerk>`); see the module docs.
pub struct Clerk {
    masters: Vec<String>,
    opts: ClerkOptions,
    client: u64,
    /// The last write's sequence number; held for the whole of a write.
    seq: tokio::sync::Mutex<u64>,
    /// One lazily made connection per replica.
    conns: Mutex<Vec<Option<ShardmasterRpcClient>>>,
    /// The replica that answered last.
    preferred: AtomicUsize,
}

/// Why one attempt failed (the operation may be retried).
struct AttemptError(String);

impl Clerk {
    /// A Clerk for the replicas at `masters` (`host:port`), with the default options.
    pub fn new(masters: Vec<String>) -> Clerk {
        Clerk::with_options(masters, ClerkOptions::default())
    }

    /// A Clerk with explicit options.
    pub fn with_options(masters: Vec<String>, opts: ClerkOptions) -> Clerk {
        let n = masters.len();
        Clerk {
            masters,
            opts,
            client: rand::random(),
            seq: tokio::sync::Mutex::new(0),
            conns: Mutex::new(vec![None; n]),
            preferred: AtomicUsize::new(0),
        }
    }

    /// This Clerk's client id.
    pub fn client_id(&self) -> u64 {
        self.client
    }

    /// The replicas' addresses.
    pub fn masters(&self) -> &[String] {
        &self.masters
    }

    /// Adds group `gid` served by `servers` and rebalances.
    pub async fn join(&self, gid: Gid, servers: Vec<String>) -> Result<OpResult, ShardmasterError> {
        self.write(Op::Join { gid, servers }).await
    }

    /// Removes group `gid` and hands its shards to the others.
    pub async fn leave(&self, gid: Gid) -> Result<OpResult, ShardmasterError> {
        self.write(Op::Leave { gid }).await
    }

    /// Records that group `gid`'s replicas now listen at `servers` (its replica
    /// set changed); no shard moves.
    pub async fn set_servers(
        &self,
        gid: Gid,
        servers: Vec<String>,
    ) -> Result<OpResult, ShardmasterError> {
        self.write(Op::Servers { gid, servers }).await
    }

    /// Gives `shard` to group `gid`.
    pub async fn move_shard(&self, shard: usize, gid: Gid) -> Result<OpResult, ShardmasterError> {
        self.write(Op::Move { shard, gid }).await
    }

    /// Configuration `which` (a number past the latest reads the latest). The
    /// answer reflects every operation completed before the call.
    pub async fn query(&self, which: ConfigNum) -> Result<Config, ShardmasterError> {
        let req = OpRequest {
            client: self.client,
            seq: 0,
            op: Op::query(which),
        };
        into_config(self.run(req).await?)
    }

    /// One attempt at one replica (`master` indexes [`Clerk::masters`]), without
    /// retries: any failure to get an answer is [`ShardmasterError::Unavailable`].
    /// For tests and diagnostics.
    pub async fn query_at(
        &self,
        master: usize,
        which: ConfigNum,
        timeout: Duration,
    ) -> Result<Config, ShardmasterError> {
        if master >= self.masters.len() {
            return Err(ShardmasterError::BadOptions {
                reason: format!("no master {master}: the Clerk knows {}", self.masters.len()),
            });
        }
        let req = OpRequest {
            client: self.client,
            seq: 0,
            op: Op::query(which),
        };
        match self.attempt(master, &req, timeout).await {
            Ok(result) => into_config(result?),
            Err(AttemptError(reason)) => Err(ShardmasterError::Unavailable { reason }),
        }
    }

    async fn write(&self, op: Op) -> Result<OpResult, ShardmasterError> {
        check(&op)?;
        let mut seq = self.seq.lock().await;
        *seq += 1;
        let req = OpRequest {
            client: self.client,
            seq: *seq,
            op,
        };
        self.run(req).await
    }

    /// Sends `req` until a replica gives a final answer (or the deadline passes).
    async fn run(&self, req: OpRequest) -> Result<OpResult, ShardmasterError> {
        let n = self.masters.len();
        let started = Instant::now();
        let mut backoff = self.opts.backoff_min;
        let mut next_warn = started + WARN_EVERY;
        let mut last_error = String::from("no shardmaster address given");
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        let mut i = first;
        let mut attempts: u64 = 0;
        loop {
            let remaining = match self.opts.deadline {
                Some(d) => d.saturating_sub(started.elapsed()),
                None => Duration::MAX,
            };
            if remaining.is_zero() || n == 0 {
                return Err(ShardmasterError::Unreachable {
                    masters: self.masters.clone(),
                    waited_ms: started.elapsed().as_millis() as u64,
                    last_error,
                });
            }
            let timeout = self.opts.attempt_timeout.min(remaining);
            let failure = match self.attempt(i, &req, timeout).await {
                Ok(Err(e)) if e.is_retryable() => e.to_string(),
                Ok(answer) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    if attempts > 0 {
                        tracing::debug!(
                            client = self.client,
                            seq = req.seq,
                            master = %self.masters[i],
                            attempts,
                            "answered after retries"
                        );
                    }
                    return answer;
                }
                Err(AttemptError(reason)) => reason,
            };
            attempts += 1;
            last_error = format!("{}: {failure}", self.masters[i]);
            tracing::debug!(
                client = self.client,
                seq = req.seq,
                op = ?req.op,
                master = %self.masters[i],
                attempts,
                error = %failure,
                "shardmaster attempt failed; trying the next replica"
            );
            if Instant::now() >= next_warn {
                next_warn = Instant::now() + WARN_EVERY;
                tracing::warn!(
                    client = self.client,
                    seq = req.seq,
                    op = ?req.op,
                    masters = ?self.masters,
                    waited = ?started.elapsed(),
                    attempts,
                    last_error = %last_error,
                    "no shardmaster has answered yet; still retrying"
                );
            }
            i = (i + 1) % n;
            if i == first {
                // Every replica failed once since the last pause.
                let pause = jitter(backoff).min(remaining);
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(self.opts.backoff_max);
            }
        }
    }

    /// One call to replica `i`. `Err` if no answer came; `Ok` holds the answer.
    async fn attempt(
        &self,
        i: usize,
        req: &OpRequest,
        timeout: Duration,
    ) -> Result<Result<OpResult, ShardmasterError>, AttemptError> {
        let deadline = Instant::now() + timeout;
        let rpc = self.connection(i, timeout).await?;
        let mut ctx = context::current();
        ctx.deadline = deadline;
        let left = deadline.saturating_duration_since(Instant::now());
        // tarpc enforces the deadline itself; the outer timeout is a second guard.
        match tokio::time::timeout(
            left + Duration::from_millis(100),
            rpc.call(ctx, req.clone()),
        )
        .await
        {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(RpcError::DeadlineExceeded)) | Err(_) => Err(AttemptError(format!(
                "no reply within {} ms",
                timeout.as_millis()
            ))),
            Ok(Err(e)) => {
                self.forget_connection(i);
                Err(AttemptError(format!("connection failed: {e}")))
            }
        }
    }

    /// The connection to replica `i`, made if needed.
    async fn connection(
        &self,
        i: usize,
        timeout: Duration,
    ) -> Result<ShardmasterRpcClient, AttemptError> {
        if let Some(Some(c)) = self.lock_conns().get(i) {
            return Ok(c.clone());
        }
        let addr = &self.masters[i];
        let limit = self.opts.connect_timeout.min(timeout);
        let stream =
            match tokio::time::timeout(limit, mux::connect(addr.as_str(), mux::CLIENT)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(AttemptError(format!("cannot connect: {e}"))),
                Err(_) => {
                    return Err(AttemptError(format!(
                        "cannot connect within {} ms",
                        limit.as_millis()
                    )))
                }
            };
        let rpc =
            ShardmasterRpcClient::new(client::Config::default(), codec::framed(stream)).spawn();
        if let Some(slot) = self.lock_conns().get_mut(i) {
            *slot = Some(rpc.clone());
        }
        Ok(rpc)
    }

    fn forget_connection(&self, i: usize) {
        if let Some(slot) = self.lock_conns().get_mut(i) {
            *slot = None;
        }
    }

    fn lock_conns(&self) -> std::sync::MutexGuard<'_, Vec<Option<ShardmasterRpcClient>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Refuses an op that is invalid whatever the cluster's state (shard ranges are
/// checked by the replicas, which know the shard count).
fn check(op: &Op) -> Result<(), ShardmasterError> {
    op.validate(usize::MAX)
}

fn into_config(result: OpResult) -> Result<Config, ShardmasterError> {
    match result {
        OpResult::Config(c) => Ok(c),
        other => Err(ShardmasterError::BadRequest {
            reason: format!("a Query was answered with {other:?}"),
        }),
    }
}

/// A delay between half and all of `d`.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(rand::thread_rng().gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_all() {
        for _ in 0..1000 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(50) && j <= Duration::from_millis(100));
        }
    }

    #[tokio::test]
    async fn invalid_arguments_are_refused_without_any_replica() {
        let clerk = Clerk::new(vec!["127.0.0.1:1".into()]);
        assert_eq!(
            clerk.join(0, vec!["a:1".into()]).await,
            Err(ShardmasterError::ReservedGid)
        );
        assert!(matches!(
            clerk.join(3, vec!["nope".into()]).await,
            Err(ShardmasterError::MalformedAddress { .. })
        ));
        assert_eq!(clerk.leave(0).await, Err(ShardmasterError::ReservedGid));
    }

    #[tokio::test]
    async fn a_deadline_turns_endless_retries_into_unreachable() {
        // Port 1 on localhost refuses connections.
        let clerk = Clerk::with_options(
            vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            ClerkOptions {
                deadline: Some(Duration::from_millis(300)),
                ..ClerkOptions::default()
            },
        );
        let started = Instant::now();
        let err = clerk.query(ConfigNum::Latest).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        match &err {
            ShardmasterError::Unreachable {
                masters,
                last_error,
                ..
            } => {
                assert_eq!(masters.len(), 2);
                assert!(last_error.contains("cannot connect"), "{last_error}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("127.0.0.1:1,127.0.0.1:2"), "{err}");
    }

    #[tokio::test]
    async fn no_masters_is_unreachable_at_once() {
        let clerk = Clerk::new(Vec::new());
        assert!(matches!(
            clerk.query(ConfigNum::Latest).await,
            Err(ShardmasterError::Unreachable { .. })
        ));
    }
}
