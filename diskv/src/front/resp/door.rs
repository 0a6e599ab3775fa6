//! [`Door`]: what every RESP connection shares (the Clerk pool, the SCAN cursors,
//! client ids and counts) and its tuning ([`RespOptions`]); [`Session`]: what one
//! connection keeps (protocol version, name, id).

use super::budget::{Budget, Charge};
use super::cursor::Cursors;
use super::parse::Limits;
use super::reply::{Protocol, Reply};
use crate::error::OptionsError;
use crate::front::access::Tokens;
use crate::front::http::pool::ClerkPool;
use crate::op::Op;
use crate::replica::server::KvServer;
// The store's answer, named apart from the RESP reply it becomes.
use crate::op::Reply as Outcome;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tuning of the RESP front door.
#[derive(Clone, Debug)]
pub struct RespOptions {
    /// Most connections open at once: a quarter of the process's file
    /// descriptors (the rest for the HTTP API, the replica's peers and files),
    /// between 16 and 4,096. One more is answered `-ERR max number of clients
    /// reached` and closed, so idle connections cannot take every descriptor.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (5 min); so is one
    /// that does not read its replies for this long.
    pub idle_timeout: Duration,
    /// How long one store operation may take, waiting for a Clerk included (10 s).
    pub op_timeout: Duration,
    /// How long connections get to finish the command in flight at shutdown (5 s).
    pub grace: Duration,
    /// Bounds on one command.
    pub limits: Limits,
    /// Most bytes all connections together may hold for unfinished commands,
    /// replies being gathered and replies not yet sent (256 MiB); a connection
    /// that would go over is told so and closed ([`super::budget`]).
    pub memory_budget: usize,
    /// The tokens a connection must `AUTH` with before anything but AUTH, HELLO
    /// and QUIT (`--tokens FILE`); `None`: no authentication.
    pub tokens: Option<Arc<Tokens>>,
    /// TLS with this server configuration (no client certificate asked);
    /// `None`: plaintext.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for RespOptions {
    fn default() -> Self {
        RespOptions {
            max_connections: (paxos::transport::guard::descriptor_limit() / 4).clamp(16, 4096),
            idle_timeout: Duration::from_secs(300),
            op_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(5),
            limits: Limits::default(),
            memory_budget: 256 << 20,
            tokens: None,
            tls: None,
        }
    }
}

impl RespOptions {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.max_connections == 0 || self.idle_timeout.is_zero() || self.op_timeout.is_zero() {
            return Err(OptionsError::NotPositive {
                settings: "max_connections, idle_timeout and op_timeout",
            });
        }
        Ok(())
    }
}

/// The shared state of one RESP front door.
pub struct Door {
    pub(crate) pool: Arc<ClerkPool>,
    pub(crate) opts: RespOptions,
    pub(crate) cursors: Cursors,
    pub(crate) budget: Arc<Budget>,
    next_client: AtomicU64,
    pub(crate) connected: AtomicUsize,
    pub(crate) started: Instant,
    /// The KV replica running in this process, if any (`INFO replication`).
    pub(crate) local: Option<Arc<KvServer>>,
}

impl Door {
    /// A front door running its operations through `pool` (share the HTTP front
    /// door's: [`crate::front::http::Front::pool`]).
    pub fn new(pool: Arc<ClerkPool>, opts: RespOptions) -> Door {
        Door {
            pool,
            budget: Budget::new(opts.memory_budget),
            opts,
            cursors: Cursors::default(),
            next_client: AtomicU64::new(1),
            connected: AtomicUsize::new(0),
            started: Instant::now(),
            local: None,
        }
    }

    /// Also reports `server`, a replica running in this process, in `INFO`
    /// (its Paxos role, log positions and storage state).
    pub fn with_local(mut self, server: Arc<KvServer>) -> Door {
        self.local = Some(server);
        self
    }

    /// Runs one store operation; a failure is the `-ERR` reply saying what went
    /// wrong (`insufficient storage: ...` for a full disk, the deadline for a
    /// timeout, whose write may or may not have taken effect).
    pub(crate) async fn run(&self, op: Op) -> Result<Outcome, Reply> {
        self.pool
            .run(op, self.opts.op_timeout)
            .await
            .map_err(Reply::err)
    }

    /// Runs single-key operations in order as batches
    /// ([`crate::front::http::pool::ClerkPool::run_batch`]), answering each;
    /// the error when none has a known outcome (the deadline passed). The
    /// answers are held until all are in, then encoded: their values may take
    /// half of what the memory budget has free, and the operations after that
    /// are not run (each is answered with an error saying so), as MGET stops.
    pub(crate) async fn run_batch(
        &self,
        ops: Vec<Op>,
    ) -> Result<Vec<Result<Outcome, Reply>>, Reply> {
        let free = self.budget.limit().saturating_sub(self.budget.used());
        let outcomes = self
            .pool
            .run_batch(ops, free / 2, self.opts.op_timeout)
            .await
            .map_err(Reply::err)?;
        Ok(outcomes
            .into_iter()
            .map(|o| o.map_err(Reply::err))
            .collect())
    }

    /// A new connection's session.
    pub(crate) fn session(&self) -> Session {
        Session {
            id: self.next_client.fetch_add(1, Ordering::Relaxed),
            name: None,
            proto: Protocol::Resp2,
            quit: false,
            charge: Charge::new(self.budget.clone()),
            token: None,
        }
    }
}

/// What one connection keeps between commands.
#[derive(Debug)]
pub struct Session {
    /// `CLIENT ID`.
    pub id: u64,
    /// `CLIENT SETNAME`.
    pub name: Option<String>,
    /// RESP2 until `HELLO 3`.
    pub proto: Protocol,
    /// Set by `QUIT`: close after the reply.
    pub quit: bool,
    /// The memory this connection holds, charged to the door's budget.
    pub charge: Charge,
    /// The token of the last successful `AUTH`, checked again before every
    /// command (a revoked token stops working on open connections too).
    pub token: Option<String>,
}
