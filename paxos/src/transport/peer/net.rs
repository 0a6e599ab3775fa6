//! The sending side of the peer network: [`PeerNet`], one queue and one task per peer.

use super::outbox::{approx_size, Counters, Outbox};
use super::PeerServiceClient;
use crate::message::Envelope;
use crate::transport::{codec, mux, Transport};
use crate::types::NodeId;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rand::Rng;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use tarpc::client::{self, NewClient, RpcError};
use tarpc::context;
use tokio::task::JoinHandle;

/// Tuning of a [`PeerNet`]. The defaults suit a LAN cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerNetConfig {
    /// Envelopes queued per peer; when full, the oldest is dropped (default 16384).
    pub queue_capacity: usize,
    /// Estimated bytes queued per peer; past it the oldest envelopes are dropped
    /// (default 256 MiB): a slow peer does not hold gigabytes of retransmitted
    /// large entries. One larger envelope is still queued, alone.
    pub queue_bytes: usize,
    /// While a peer is unreachable its queue is cut to this many newest envelopes at
    /// every failed attempt (default 1024).
    pub backlog_while_down: usize,
    /// Most envelopes in one `deliver` call (default 4096).
    pub max_batch_messages: usize,
    /// Approximate most bytes in one `deliver` call (default 4 MiB); a single larger
    /// envelope still goes alone.
    pub max_batch_bytes: usize,
    /// `deliver` calls awaiting their acknowledgement per peer (default 8).
    pub max_in_flight: usize,
    /// Deadline of one `deliver` call; a call that misses it counts as a broken
    /// connection (default 2 s), plus the time to move the bytes it carries and
    /// those of the calls ahead of it at `min_rate`.
    pub call_timeout: Duration,
    /// Bytes per second a peer is assumed to take in at least (default 10 MiB/s,
    /// the rate `CoreConfig::resend_ticks` assumes): a call queued behind 128 MiB
    /// of large entries is not judged a broken connection after 2 s, which threw
    /// away everything in flight and had it all sent again (issue #18, B3).
    pub min_rate: u64,
    /// Deadline of one TCP connect (default 1 s).
    pub connect_timeout: Duration,
    /// First reconnection delay; doubles at each failure (default 10 ms).
    pub backoff_min: Duration,
    /// Largest reconnection delay (default 1 s). Each delay is jittered to 50–100%.
    pub backoff_max: Duration,
}

impl Default for PeerNetConfig {
    fn default() -> Self {
        PeerNetConfig {
            queue_capacity: 16 * 1024,
            queue_bytes: 256 << 20,
            backlog_while_down: 1024,
            max_batch_messages: 4096,
            max_batch_bytes: 4 << 20,
            max_in_flight: 8,
            call_timeout: Duration::from_secs(2),
            min_rate: 10 << 20,
            connect_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// A [`PeerNetConfig`] that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid peer network config: {0}")]
pub struct PeerNetConfigError(&'static str);

impl PeerNetConfig {
    /// How long a `deliver` call may take when `bytes_in_flight` bytes (its own
    /// and those of the calls ahead of it on the connection) are on their way.
    pub fn call_budget(&self, bytes_in_flight: u64) -> Duration {
        self.call_timeout + Duration::from_secs_f64(bytes_in_flight as f64 / self.min_rate as f64)
    }

    /// Checks that every bound is positive and the back-off range is ordered.
    pub fn validate(&self) -> Result<(), PeerNetConfigError> {
        let fail = |what| Err(PeerNetConfigError(what));
        if self.queue_capacity == 0 || self.max_batch_messages == 0 || self.max_in_flight == 0 {
            return fail("queue_capacity, max_batch_messages and max_in_flight must be positive");
        }
        if self.max_batch_bytes == 0 || self.max_batch_bytes > codec::MAX_FRAME_LEN / 2 {
            return fail("max_batch_bytes must be in 1..=MAX_FRAME_LEN/2");
        }
        if self.call_timeout.is_zero() || self.connect_timeout.is_zero() || self.min_rate == 0 {
            return fail("call_timeout, connect_timeout and min_rate must be positive");
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return fail("backoff_min must be positive and at most backoff_max");
        }
        Ok(())
    }
}

/// Counters of the link to one peer. `enqueued = delivered + dropped + queued + (in
/// flight)` once the link is idle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer.
    pub peer: NodeId,
    /// Its address as configured.
    pub addr: String,
    /// Envelopes handed to [`Transport::send`] for this peer.
    pub enqueued: u64,
    /// Envelopes in `deliver` calls the peer acknowledged (its server may still drop
    /// them on a full inbox or in unreliable mode).
    pub delivered: u64,
    /// Envelopes dropped here: queue overflow, trimmed while the peer was unreachable,
    /// or in a call that failed.
    pub dropped: u64,
    /// `deliver` calls issued.
    pub calls: u64,
    /// `deliver` calls that failed (broken connection or missed deadline).
    pub failed_calls: u64,
    /// Successful TCP connects.
    pub connects: u64,
    /// Connection attempts that failed (refused, unresolvable, timed out).
    pub failed_connects: u64,
    /// Envelopes waiting in the queue now.
    pub queued: usize,
}

/// The replica-to-replica network of one replica, implementing [`Transport`].
///
/// `send` never blocks: it appends to the peer's bounded queue (dropping the oldest
/// envelope when full). A task per peer connects lazily, sends everything queued in
/// batches with up to `max_in_flight` calls outstanding, and after any failure waits an
/// exponentially growing, jittered delay before reconnecting, trimming its queue to
/// `backlog_while_down` envelopes meanwhile.
///
/// Envelopes addressed to `me` are a caller bug: the driver loops them back itself. They
/// trip a `debug_assert!` and are dropped (and logged) in release builds, as are envelopes
/// for a replica without an address.
///
/// Dropping the `PeerNet` aborts its tasks and closes its connections; what is queued
/// is lost. It must be created inside a Tokio runtime.
#[derive(Debug)]
pub struct PeerNet {
    me: NodeId,
    /// By peer index; grows and changes when a membership change gives a
    /// peer a new address ([`Transport::readdress`]).
    links: RwLock<Vec<Option<Link>>>,
    config: Arc<PeerNetConfig>,
    misaddressed: AtomicU64,
}

#[derive(Debug)]
struct Link {
    addr: String,
    outbox: Arc<Outbox>,
    task: JoinHandle<()>,
}

impl PeerNet {
    /// The network of replica `me` of a group whose replica `i` listens at `addrs[i]`
    /// (`host:port`, resolved at each connect), with the default configuration.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn new(me: NodeId, addrs: Vec<String>) -> Self {
        Self::spawn(me, addrs, PeerNetConfig::default())
    }

    /// Like [`PeerNet::new`] with an explicit, validated configuration.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn with_config(
        me: NodeId,
        addrs: Vec<String>,
        config: PeerNetConfig,
    ) -> Result<Self, PeerNetConfigError> {
        config.validate()?;
        Ok(Self::spawn(me, addrs, config))
    }

    fn spawn(me: NodeId, addrs: Vec<String>, config: PeerNetConfig) -> Self {
        let config = Arc::new(config);
        let links = addrs
            .into_iter()
            .enumerate()
            .map(|(peer, addr)| (peer != me).then(|| Link::start(me, peer, addr, &config)))
            .collect();
        PeerNet {
            me,
            links: RwLock::new(links),
            config,
            misaddressed: AtomicU64::new(0),
        }
    }

    fn links(&self) -> RwLockReadGuard<'_, Vec<Option<Link>>> {
        self.links.read().unwrap_or_else(|p| p.into_inner())
    }

    /// This replica.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Counters of every peer link, by peer id (this replica is skipped).
    pub fn stats(&self) -> Vec<PeerStats> {
        self.links()
            .iter()
            .enumerate()
            .filter_map(|(peer, link)| link.as_ref().map(|link| link_stats(peer, link)))
            .collect()
    }

    /// Counters of the link to `peer`, if it is a peer.
    pub fn peer_stats(&self, peer: NodeId) -> Option<PeerStats> {
        let links = self.links();
        let link = links.get(peer)?.as_ref()?;
        Some(link_stats(peer, link))
    }

    /// Envelopes dropped because they were addressed to `me` or to an unknown replica.
    pub fn misaddressed(&self) -> u64 {
        self.misaddressed.load(Ordering::Relaxed)
    }
}

impl Link {
    /// A link to `peer` at `addr`, with its task running.
    fn start(me: NodeId, peer: NodeId, addr: String, config: &Arc<PeerNetConfig>) -> Link {
        let outbox = Arc::new(Outbox::new(config.queue_capacity, config.queue_bytes));
        let task = tokio::spawn(run_link(
            me,
            peer,
            addr.clone(),
            Arc::clone(&outbox),
            Arc::clone(config),
        ));
        Link { addr, outbox, task }
    }
}

fn link_stats(peer: NodeId, link: &Link) -> PeerStats {
    let c = &link.outbox.counters;
    PeerStats {
        peer,
        addr: link.addr.clone(),
        enqueued: Counters::get(&c.enqueued),
        delivered: Counters::get(&c.delivered),
        dropped: Counters::get(&c.dropped),
        calls: Counters::get(&c.calls),
        failed_calls: Counters::get(&c.failed_calls),
        connects: Counters::get(&c.connects),
        failed_connects: Counters::get(&c.failed_connects),
        queued: link.outbox.len(),
    }
}

impl Transport for PeerNet {
    fn send(&self, env: Envelope) {
        debug_assert_ne!(env.to, self.me, "the driver loops messages to itself back");
        match self.links().get(env.to) {
            Some(Some(link)) => link.outbox.push(env),
            _ => {
                self.misaddressed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    node = self.me,
                    peer = env.to,
                    kind = env.msg.kind(),
                    "no link to peer; envelope dropped"
                );
            }
        }
    }

    fn readdress(&self, peer: NodeId, addr: &str) {
        if peer == self.me || peer >= crate::membership::MAX_SEATS {
            return;
        }
        let mut links = self.links.write().unwrap_or_else(|p| p.into_inner());
        if links.len() <= peer {
            links.resize_with(peer + 1, || None);
        }
        if links[peer].as_ref().is_some_and(|l| l.addr == addr) {
            return;
        }
        tracing::info!(node = self.me, peer, addr, "peer has a new address");
        let new = Link::start(self.me, peer, addr.to_string(), &self.config);
        if let Some(old) = links[peer].replace(new) {
            old.task.abort();
        }
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        for link in self.links().iter().flatten() {
            link.task.abort();
        }
    }
}

/// Exponential back-off with jitter between `min` and `max`.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    /// The delay to wait now: the current step jittered to 50–100%. Doubles the step.
    fn delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(self.max);
        step.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The task serving one peer: wait for work, connect, pump, back off, repeat.
async fn run_link(
    me: NodeId,
    peer: NodeId,
    addr: String,
    outbox: Arc<Outbox>,
    config: Arc<PeerNetConfig>,
) {
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let mut failures: u32 = 0;
    loop {
        outbox.wait_nonempty().await;
        let error = match connect(me, peer, &addr, &config).await {
            Ok(client) => {
                Counters::add(&outbox.counters.connects, 1);
                tracing::debug!(node = me, peer, %addr, "connected to peer");
                let delivered = Counters::get(&outbox.counters.delivered);
                let error = pump(&client, &outbox, &config, &mut backoff).await;
                if Counters::get(&outbox.counters.delivered) > delivered {
                    failures = 0; // the link worked for a while: warn again
                }
                error.to_string()
            }
            Err(error) => {
                Counters::add(&outbox.counters.failed_connects, 1);
                error.to_string()
            }
        };
        failures = failures.saturating_add(1);
        let trimmed = outbox.trim(config.backlog_while_down);
        let delay = backoff.delay();
        if failures == 1 {
            tracing::warn!(node = me, peer, %addr, %error, trimmed, "peer unreachable; retrying with back-off");
        } else {
            tracing::debug!(node = me, peer, %addr, %error, trimmed, failures, ?delay, "peer still unreachable");
        }
        tokio::time::sleep(delay).await;
    }
}

/// Connects and starts the client's dispatch task.
async fn connect(
    me: NodeId,
    peer: NodeId,
    addr: &str,
    config: &PeerNetConfig,
) -> io::Result<PeerServiceClient> {
    let transport = tokio::time::timeout(config.connect_timeout, mux::connect(addr, mux::PEER))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let transport = codec::framed(transport);
    let NewClient { client, dispatch } =
        PeerServiceClient::new(client::Config::default(), transport);
    let addr = addr.to_owned();
    tokio::spawn(async move {
        if let Err(error) = dispatch.await {
            tracing::debug!(node = me, peer, %addr, %error, "peer connection closed");
        }
    });
    Ok(client)
}

/// Sends batches over one connection until a call fails; returns that failure.
async fn pump(
    client: &PeerServiceClient,
    outbox: &Outbox,
    config: &PeerNetConfig,
    backoff: &mut Backoff,
) -> RpcError {
    let counters = &outbox.counters;
    let mut in_flight = FuturesUnordered::new();
    let mut in_flight_envelopes = 0;
    let mut in_flight_bytes = 0u64;
    loop {
        while in_flight.len() < config.max_in_flight {
            let batch = outbox.take_batch(config.max_batch_messages, config.max_batch_bytes);
            if batch.is_empty() {
                break;
            }
            let (n, bytes) = (
                batch.len(),
                batch.iter().map(approx_size).sum::<usize>() as u64,
            );
            in_flight_envelopes += n;
            in_flight_bytes += bytes;
            Counters::add(&counters.calls, 1);
            let mut ctx = context::current();
            ctx.deadline = Instant::now() + config.call_budget(in_flight_bytes);
            let client = client.clone();
            in_flight.push(async move { (n, bytes, client.deliver(ctx, batch).await) });
        }
        tokio::select! {
            Some((n, bytes, result)) = in_flight.next(), if !in_flight.is_empty() => {
                in_flight_envelopes -= n;
                in_flight_bytes -= bytes;
                match result {
                    Ok(()) => {
                        Counters::add(&counters.delivered, n);
                        backoff.reset();
                    }
                    Err(error) => {
                        // The connection is suspect: abandon it with everything on it.
                        Counters::add(&counters.failed_calls, 1 + in_flight.len());
                        Counters::add(&counters.dropped, n + in_flight_envelopes);
                        return error;
                    }
                }
            }
            () = outbox.pushed(), if in_flight.len() < config.max_in_flight => {}
        }
    }
}
