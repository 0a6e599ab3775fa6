//! [`Front`]: what the HTTP handlers share — the Clerk pool, the readiness flag,
//! the request metrics and, when the process runs a replica itself, that replica
//! (for its metrics).

use super::metrics::{single, RequestMetrics};
use super::pool::{ClerkPool, PoolError};
use super::replica_metrics;
use crate::error::OptionsError;
use crate::front::access::Tokens;
use crate::op::Op;
use crate::replica::server::KvServer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The key [`Front::probe`] reads. Any valid key does; it need not exist.
pub const PROBE_KEY: &str = "diskv:health-probe";

/// Tuning of a front door.
#[derive(Clone, Debug)]
pub struct FrontOptions {
    /// Most Clerks (so most operations in flight at once); default 64.
    pub pool_size: usize,
    /// How long one request may take, waiting for a Clerk included; default 10 s.
    /// A write that times out is answered 503: its outcome is unknown.
    pub op_timeout: Duration,
    /// The tokens requests must carry (`--tokens FILE`); `None`: no
    /// authentication, the documented default of the HTTP API.
    pub tokens: Option<Arc<Tokens>>,
    /// `/metrics` without a token even when tokens are required.
    pub open_metrics: bool,
}

impl Default for FrontOptions {
    fn default() -> Self {
        FrontOptions {
            pool_size: 64,
            op_timeout: Duration::from_secs(10),
            tokens: None,
            open_metrics: false,
        }
    }
}

impl FrontOptions {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.pool_size == 0 || self.op_timeout.is_zero() {
            return Err(OptionsError::NotPositive {
                settings: "pool_size and op_timeout",
            });
        }
        Ok(())
    }
}

/// The shared state of one HTTP front door to a cluster.
pub struct Front {
    pool: Arc<ClerkPool>,
    opts: FrontOptions,
    ready: AtomicBool,
    metrics: RequestMetrics,
    local: Option<Arc<KvServer>>,
    started: Instant,
    survey: super::ui::SurveyCache,
}

impl Front {
    /// A front door to the cluster whose shardmasters listen at `masters`. It is not
    /// ready (`/health` answers 503) until [`Front::set_ready`].
    pub fn new(masters: Vec<String>, opts: FrontOptions) -> Front {
        Front {
            pool: ClerkPool::new(masters, opts.pool_size),
            opts,
            ready: AtomicBool::new(false),
            metrics: RequestMetrics::default(),
            local: None,
            started: Instant::now(),
            survey: super::ui::SurveyCache::default(),
        }
    }

    /// Also reports the metrics of `server`, a replica running in this process,
    /// and has the pool's Clerks call it directly ([`ClerkPool::set_local`]).
    pub fn with_local(mut self, server: Arc<KvServer>) -> Front {
        self.pool.set_local(server.local());
        self.local = Some(server);
        self
    }

    /// Marks recovery as finished: `/health` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// True once [`Front::set_ready`] was called.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Why the local replica's storage is failed, while it is (a full disk: it
    /// resumes by itself once space is freed). `None` without a local replica.
    pub fn storage_failure(&self) -> Option<String> {
        let failure = self.local.as_ref()?.node().failure()?;
        Some(failure.advice())
    }

    /// Its settings.
    pub fn options(&self) -> &FrontOptions {
        &self.opts
    }

    /// The Clerk pool (shared with the Redis protocol front door).
    pub fn pool(&self) -> &Arc<ClerkPool> {
        &self.pool
    }

    /// The deadline of one operation.
    pub fn op_timeout(&self) -> Duration {
        self.opts.op_timeout
    }

    /// The dashboard's cluster survey, shared by every page.
    pub fn survey(&self) -> &super::ui::SurveyCache {
        &self.survey
    }

    /// The request metrics.
    pub fn metrics(&self) -> &RequestMetrics {
        &self.metrics
    }

    /// Runs one operation through a pooled Clerk, within the request deadline.
    pub async fn execute(&self, op: Op) -> Result<Option<String>, PoolError> {
        self.pool.execute(op, self.opts.op_timeout).await
    }

    /// One linearizable read of [`PROBE_KEY`] with deadline `within`: succeeds only
    /// if the group owning it has recovered and serves.
    pub async fn probe(&self, within: Duration) -> Result<(), PoolError> {
        self.pool
            .execute(
                Op::Get {
                    key: PROBE_KEY.into(),
                },
                within,
            )
            .await
            .map(|_| ())
    }

    /// Probes until one probe succeeds, then marks the front door ready.
    pub async fn wait_ready(&self) {
        loop {
            match self.probe(Duration::from_secs(5)).await {
                Ok(()) => break,
                Err(e) => tracing::info!(error = %e, "the store does not serve yet; probing again"),
            }
        }
        self.set_ready();
    }

    /// Every metric of this front door (and of the local replica, if any) in
    /// Prometheus text form.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        self.metrics.render(&mut out);
        single(
            &mut out,
            "diskv_http_ready",
            "gauge",
            "1 once recovery finished and the store serves requests.",
            u8::from(self.is_ready()),
        );
        single(
            &mut out,
            "diskv_http_operations_in_flight",
            "gauge",
            "Store operations running or waiting for a Clerk.",
            self.pool.busy(),
        );
        single(
            &mut out,
            "diskv_http_clerks_made_total",
            "counter",
            "Clerks the pool has made (a timed-out operation's Clerk is replaced).",
            self.pool.made(),
        );
        single(
            &mut out,
            "diskv_http_clerk_pool_capacity",
            "gauge",
            "Most Clerks, so most store operations in flight at once.",
            self.pool.capacity(),
        );
        single(
            &mut out,
            "diskv_uptime_seconds",
            "gauge",
            "Seconds since this front door started.",
            self.started.elapsed().as_secs_f64(),
        );
        if let Some(server) = &self.local {
            replica_metrics::render(server, &mut out);
        }
        out
    }
}
