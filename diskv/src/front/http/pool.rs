//! A pool of [`Clerk`]s. A Clerk runs one operation at a time, so concurrent HTTP
//! requests (and RESP commands, [`crate::front::resp`]) each borrow one: at most `size`
//! exist, made lazily and reused.
//!
//! Every operation runs in its own task, so a client that hangs up does not cancel
//! a write half-way (the Clerk stays consistent and goes back to the pool). An
//! operation that outlives its deadline is abandoned together with its Clerk: its
//! outcome is unknown, and a fresh Clerk (new client id) replaces it.

use crate::client::clerk::Clerk;
use crate::op::{KvError, Op, Reply};
use crate::replica::server::Local;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Why an operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The servers refused the request as malformed; retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// A key or value is above the store's limit (answered 413).
    #[error("{0}")]
    TooLarge(String),
    /// The group's disks are full (answered 507): writes are refused until space
    /// is freed; reads are still served.
    #[error("{0}")]
    NoSpace(String),
    /// No answer before the deadline. A write may or may not have taken effect.
    #[error(
        "no answer from the store within {0:?}; a write may or may not have taken effect, retry it"
    )]
    Timeout(Duration),
    /// The operation failed in an unexpected way (a reply of the wrong kind, a task
    /// that panicked).
    #[error("the store failed: {0}")]
    Failed(String),
}

impl From<KvError> for PoolError {
    fn from(e: KvError) -> PoolError {
        match e {
            KvError::Invalid(why) => PoolError::Invalid(why),
            e @ KvError::TooLarge { .. } => PoolError::TooLarge(e.to_string()),
            e @ KvError::NoSpace { .. } => PoolError::NoSpace(e.to_string()),
            e => PoolError::Failed(e.to_string()),
        }
    }
}

/// A bounded, lazily filled pool of Clerks for one cluster.
pub struct ClerkPool {
    masters: Vec<String>,
    local: OnceLock<Local>,
    idle: Mutex<Vec<Clerk>>,
    slots: Arc<Semaphore>,
    made: AtomicUsize,
    size: usize,
}

impl ClerkPool {
    /// A pool of at most `size` Clerks (at least one) of the cluster whose
    /// shardmasters listen at `masters`.
    pub fn new(masters: Vec<String>, size: usize) -> Arc<ClerkPool> {
        let size = size.max(1);
        Arc::new(ClerkPool {
            masters,
            local: OnceLock::new(),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(size)),
            made: AtomicUsize::new(0),
            size,
        })
    }

    /// The shardmasters' addresses.
    pub fn masters(&self) -> &[String] {
        &self.masters
    }

    /// Makes every Clerk of the pool call `local`, a replica in this process,
    /// directly ([`Clerk::with_local`]). Set once, before the first operation.
    pub fn set_local(&self, local: Local) {
        if self.local.set(local).is_err() {
            tracing::warn!("the Clerk pool's local replica was already set");
        }
    }

    /// How many Clerks the pool may hold.
    pub fn capacity(&self) -> usize {
        self.size
    }

    /// How many Clerks have been made so far (replacements included).
    pub fn made(&self) -> usize {
        self.made.load(Ordering::Relaxed)
    }

    /// How many operations are running or waiting for a Clerk right now.
    pub fn busy(&self) -> usize {
        self.size - self.slots.available_permits()
    }

    /// Runs `op` with a Clerk of the pool, waiting for one if all are busy.
    /// `deadline` covers the wait, making the Clerk and the operation itself.
    /// The answer is the value of a Get or Swap, `None` for the others.
    pub async fn execute(
        self: &Arc<Self>,
        op: Op,
        deadline: Duration,
    ) -> Result<Option<String>, PoolError> {
        self.run(op, deadline).await.map(|reply| match reply {
            Reply::Value(v) => v,
            _ => None,
        })
    }

    /// [`ClerkPool::execute`], answering everything the Clerk returned (as the
    /// servers' [`Reply`]; a multi-shard Scan's pairs are merged and sorted).
    pub async fn run(self: &Arc<Self>, op: Op, deadline: Duration) -> Result<Reply, PoolError> {
        self.with_clerk(deadline, |mut clerk| async move {
            let out = clerk.execute(op).await;
            (clerk, out)
        })
        .await?
        .map_err(PoolError::from)
    }

    /// Runs `ops`, single-key operations, in order with one Clerk of the pool
    /// ([`Clerk::execute_batch_within`]: consecutive operations of one group
    /// are one request and one log instance), answering each; once the values
    /// answered are over `reply_limit` bytes, the rest are not run. `deadline`
    /// covers them all; past it, none has a known outcome.
    pub async fn run_batch(
        self: &Arc<Self>,
        ops: Vec<Op>,
        reply_limit: usize,
        deadline: Duration,
    ) -> Result<Vec<Result<Reply, PoolError>>, PoolError> {
        let replies = self
            .with_clerk(deadline, move |mut clerk| async move {
                let out = clerk.execute_batch_within(ops, reply_limit).await;
                (clerk, out)
            })
            .await?;
        Ok(replies
            .into_iter()
            .map(|r| r.map_err(PoolError::from))
            .collect())
    }

    /// Runs `work` with a Clerk of the pool in a task of its own, waiting for a
    /// Clerk if all are busy; `deadline` covers the wait, making the Clerk and
    /// the work. The work hands the Clerk back with its answer; past the
    /// deadline the Clerk is abandoned with the work.
    async fn with_clerk<T, F, W>(
        self: &Arc<Self>,
        deadline: Duration,
        work: W,
    ) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = (Clerk, T)> + Send + 'static,
        W: FnOnce(Clerk) -> F + Send + 'static,
    {
        let pool = self.clone();
        let task = tokio::spawn(async move {
            let run = async {
                let _slot = pool
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| PoolError::Failed("the Clerk pool is closed".into()))?;
                let clerk = pool.take().await;
                let (clerk, out) = work(clerk).await;
                pool.give_back(clerk);
                Ok::<_, PoolError>(out)
            };
            tokio::time::timeout(deadline, run)
                .await
                .unwrap_or(Err(PoolError::Timeout(deadline)))
        });
        task.await.unwrap_or_else(|e| {
            Err(PoolError::Failed(format!(
                "the operation's task failed: {e}"
            )))
        })
    }

    async fn take(&self) -> Clerk {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) => c,
            None => {
                self.made.fetch_add(1, Ordering::Relaxed);
                let mut clerk = Clerk::new(self.masters.clone()).await;
                if let Some(local) = self.local.get() {
                    clerk = clerk.with_local(local.clone());
                }
                tracing::debug!(client = clerk.id(), "new clerk in the HTTP pool");
                clerk
            }
        }
    }

    fn give_back(&self, clerk: Clerk) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(clerk);
    }
}
