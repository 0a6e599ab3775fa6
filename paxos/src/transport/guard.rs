//! What a daemon port accepts from whoever connects: how many connections, how
//! long one may stay silent or take to send a frame, and how many bytes of
//! half-received frames the whole process holds.
//!
//! Every accepted connection is a [`Guarded`] stream holding a slot of its
//! listener's [`Admission`]. A listener at its cap (or an address at its share)
//! makes room by closing the connection that has been silent longest; if none
//! has been silent for a second, the new connection is refused. Once its
//! service tag is read, a connection that carries length-prefixed frames (the
//! tarpc services) has each frame header checked as the bytes arrive: a frame
//! above the service's limit, or one the process's [`FrameBudget`] cannot hold
//! now, closes the connection before anything is allocated for it; a frame must
//! arrive whole within [`Limits::frame_deadline`]. Every refusal is one log line
//! naming the peer's address and the reason.

use futures::task::AtomicWaker;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Bytes of half-received frames the whole process may hold at once (frames
/// above [`SMALL_FRAME`] only): enough for dozens of 16 MiB writes in flight.
pub const FRAME_BUDGET_BYTES: usize = 1 << 30;

/// Frames up to this size need nothing from the budget: they are what peers
/// and clients send all the time, and a connection holds at most one.
pub const SMALL_FRAME: usize = 64 << 10;

/// The limits of one listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_ip: usize,
    /// How long a frame may take to arrive once its header has.
    pub frame_deadline: Duration,
    /// A connection silent this long may be closed to make room for a new one.
    pub evictable_after: Duration,
}

impl Default for Limits {
    /// Three quarters of the process's file descriptors (the rest for files and
    /// outgoing connections), at most 8,192; half of them per address.
    fn default() -> Self {
        let max = (descriptor_limit() / 4 * 3).clamp(16, 8192);
        Limits {
            max_connections: max,
            max_per_ip: (max / 2).max(8),
            frame_deadline: Duration::from_secs(60),
            evictable_after: Duration::from_secs(1),
        }
    }
}

/// The soft limit on open file descriptors (1,024 if it cannot be read): every
/// listener sizes its connection limit from it.
pub fn descriptor_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if ok && lim.rlim_cur != libc::RLIM_INFINITY {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else if ok {
        usize::MAX
    } else {
        1024
    }
}

/// The process's budget for bytes of half-received large frames, shared by
/// every listener.
#[derive(Clone, Debug)]
pub struct FrameBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl FrameBudget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        FrameBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The process's budget ([`FRAME_BUDGET_BYTES`]).
    pub fn process() -> FrameBudget {
        static BUDGET: OnceLock<FrameBudget> = OnceLock::new();
        BUDGET
            .get_or_init(|| FrameBudget::new(FRAME_BUDGET_BYTES))
            .clone()
    }

    /// Bytes not held by any frame now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    fn take(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(len).ok()?;
        self.bytes.clone().try_acquire_many_owned(n).ok()
    }
}

/// What a connection shares with its listener's table.
#[derive(Debug)]
struct Shared {
    /// When bytes last arrived, in milliseconds since the table's epoch.
    last_read: AtomicU64,
    /// Closed by the listener to make room.
    evicted: AtomicBool,
    /// Wakes the connection's reader when it is evicted.
    waker: AtomicWaker,
    ip: IpAddr,
}

#[derive(Debug, Default)]
struct Table {
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
    conns: Vec<Weak<Shared>>,
}

/// The connections of one listener, with its [`Limits`].
#[derive(Clone, Debug)]
pub struct Admission {
    limits: Limits,
    budget: FrameBudget,
    epoch: Instant,
    table: Arc<Mutex<Table>>,
}

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl Admission {
    /// A listener's table with `limits`, drawing large frames from `budget`.
    pub fn new(limits: Limits, budget: FrameBudget) -> Self {
        Admission {
            limits,
            budget,
            epoch: Instant::now(),
            table: Arc::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).open
    }

    /// Admits a connection from `remote`, closing the longest-silent one (of the
    /// same address if that address is at its share) if the listener is full.
    pub fn admit<S>(&self, stream: S, remote: SocketAddr) -> Result<Guarded<S>, Refused> {
        let ip = remote.ip();
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.conns.retain(|w| w.strong_count() > 0);
        let from_ip = t.per_ip.get(&ip).copied().unwrap_or(0);
        let full = t.open >= self.limits.max_connections;
        let ip_full = from_ip >= self.limits.max_per_ip;
        if full || ip_full {
            let now = self.now_ms();
            let silent_ms = self.limits.evictable_after.as_millis() as u64;
            let victim = t
                .conns
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|c| !c.evicted.load(Ordering::Relaxed))
                .filter(|c| !ip_full || c.ip == ip)
                .filter(|c| now.saturating_sub(c.last_read.load(Ordering::Relaxed)) >= silent_ms)
                .min_by_key(|c| c.last_read.load(Ordering::Relaxed));
            let Some(victim) = victim else {
                let why = if ip_full {
                    format!(
                        "{from_ip} connections from {ip} already, the most one address may have \
                         ({}), and none of them idle",
                        self.limits.max_per_ip
                    )
                } else {
                    format!(
                        "{} connections open, the listener's limit, and none of them idle",
                        self.limits.max_connections
                    )
                };
                return Err(Refused(why));
            };
            victim.evicted.store(true, Ordering::Relaxed);
            victim.waker.wake();
            tracing::debug!(
                addr = %remote,
                evicted_ip = %victim.ip,
                "connection limit reached: closed the longest-silent connection to make room"
            );
        }
        let shared = Arc::new(Shared {
            last_read: AtomicU64::new(self.now_ms()),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            ip,
        });
        t.open += 1;
        *t.per_ip.entry(ip).or_default() += 1;
        t.conns.push(Arc::downgrade(&shared));
        drop(t);
        Ok(Guarded {
            inner: stream,
            remote,
            slot: Slot {
                admission: self.clone(),
                ip,
            },
            shared,
            idle: Duration::from_secs(5),
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(5))),
            frames: None,
            budget: self.budget.clone(),
            frame_deadline: self.limits.frame_deadline,
        })
    }
}

/// A connection's place in its listener's table, given back when it closes.
#[derive(Debug)]
struct Slot {
    admission: Admission,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self
            .admission
            .table
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        t.open = t.open.saturating_sub(1);
        if let Some(n) = t.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Where a connection is in its stream of length-prefixed frames.
#[derive(Debug)]
struct Frames {
    max: usize,
    header: [u8; 4],
    header_len: usize,
    body_left: usize,
    /// The budget a large frame holds until it has arrived.
    held: Option<OwnedSemaphorePermit>,
    /// When the frame in progress must have arrived.
    due: Option<Instant>,
}

impl Frames {
    /// Follows `bytes` through the frames; an error closes the connection.
    fn feed(
        &mut self,
        mut bytes: &[u8],
        budget: &FrameBudget,
        deadline: Duration,
    ) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.body_left == 0 {
                let n = (4 - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                bytes = &bytes[n..];
                if self.header_len < 4 {
                    self.due.get_or_insert_with(|| Instant::now() + deadline);
                    return Ok(());
                }
                self.header_len = 0;
                let len = u32::from_be_bytes(self.header) as usize;
                if len > self.max {
                    return Err(format!(
                        "a frame of {len} bytes announced, above this service's limit of {}",
                        self.max
                    ));
                }
                if len > SMALL_FRAME {
                    self.held = Some(budget.take(len).ok_or_else(|| {
                        format!(
                            "a frame of {len} bytes announced while the process already holds \
                             {} of its {} bytes for incoming frames",
                            budget.total - budget.available(),
                            budget.total
                        )
                    })?);
                }
                self.body_left = len;
                self.due = (len > 0).then(|| Instant::now() + deadline);
            } else {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                if self.body_left == 0 {
                    self.held = None;
                    self.due = None;
                }
            }
        }
        Ok(())
    }
}

/// A stream admitted by an [`Admission`]: closed when silent for its idle time,
/// when a frame breaks the limits, or when evicted to make room.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    remote: SocketAddr,
    slot: Slot,
    shared: Arc<Shared>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    frames: Option<Frames>,
    budget: FrameBudget,
    frame_deadline: Duration,
}

impl<S> Guarded<S> {
    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The stream under the guard (to read what its handshake established;
    /// reading and writing go through the guard).
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The connection is closed once nothing arrives for `idle`.
    pub fn set_idle(&mut self, idle: Duration) {
        self.idle = idle;
        self.rearm();
    }

    /// From here on the stream carries length-prefixed frames (4-byte big-endian
    /// length, as tarpc's transport writes them) of at most `max` bytes.
    pub fn expect_frames(&mut self, max: usize) {
        self.frames = Some(Frames {
            max,
            header: [0; 4],
            header_len: 0,
            body_left: 0,
            held: None,
            due: None,
        });
    }

    /// Replaces the stream under the guard, keeping its slot and limits: the TLS
    /// handshake turns an admitted TCP connection into a TLS one, so the
    /// connection counts against the listener from its first byte and the frame
    /// checks see the bytes inside TLS. The handshake reads the stream under the
    /// guard, so an eviction meanwhile is watched for here: an evicted
    /// connection ends at once (`ConnectionAborted`) and gives its slot back,
    /// rather than at the end of the handshake's time limit.
    pub async fn upgrade<T, F, Fut>(self, f: F) -> io::Result<Guarded<T>>
    where
        F: FnOnce(S) -> Fut,
        Fut: Future<Output = io::Result<T>>,
    {
        let Guarded {
            inner,
            remote,
            slot,
            shared,
            idle,
            timer,
            frames,
            budget,
            frame_deadline,
        } = self;
        let evicted = std::future::poll_fn(|cx| {
            shared.waker.register(cx.waker());
            if shared.evicted.load(Ordering::Relaxed) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let upgraded = std::pin::pin!(f(inner));
        let evicted = std::pin::pin!(evicted);
        let inner = match futures::future::select(upgraded, evicted).await {
            futures::future::Either::Left((upgraded, _)) => upgraded?,
            futures::future::Either::Right(((), _)) => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed during its handshake to make room for a new connection",
                ))
            }
        };
        Ok(Guarded {
            inner,
            remote,
            slot,
            shared,
            idle,
            timer,
            frames,
            budget,
            frame_deadline,
        })
    }

    fn rearm(&mut self) {
        let mut at = Instant::now() + self.idle;
        if let Some(due) = self.frames.as_ref().and_then(|f| f.due) {
            at = at.min(due);
        }
        self.timer.as_mut().reset(at.into());
    }

    /// Closes the connection for `why`: a warning when the peer broke a limit,
    /// a debug line when it merely went silent.
    fn refuse(&self, kind: io::ErrorKind, why: String) -> io::Error {
        if kind == io::ErrorKind::TimedOut {
            tracing::debug!(addr = %self.remote, reason = %why, "connection closed");
        } else {
            tracing::warn!(addr = %self.remote, reason = %why, "connection closed");
        }
        io::Error::new(kind, why)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shared.waker.register(cx.waker());
        if this.shared.evicted.load(Ordering::Relaxed) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for a new connection",
            )));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if !got.is_empty() {
                    let now = this.slot.admission.now_ms();
                    this.shared.last_read.store(now, Ordering::Relaxed);
                    if let Some(frames) = this.frames.as_mut() {
                        if let Err(why) = frames.feed(got, &this.budget, this.frame_deadline) {
                            return Poll::Ready(Err(this.refuse(io::ErrorKind::InvalidData, why)));
                        }
                    }
                    this.rearm();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    let half_sent = this
                        .frames
                        .as_ref()
                        .and_then(|f| f.due)
                        .is_some_and(|due| Instant::now() >= due);
                    let why = if half_sent {
                        format!("a frame still incomplete after {:?}", this.frame_deadline)
                    } else {
                        format!("nothing received for {:?}", this.idle)
                    };
                    return Poll::Ready(Err(this.refuse(io::ErrorKind::TimedOut, why)));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
