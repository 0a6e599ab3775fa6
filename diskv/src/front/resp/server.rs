//! The accept loop and the connection loop.
//!
//! A connection reads whatever bytes have arrived, runs every complete command in
//! them in order, and writes the replies in one go before reading again.
//! Consecutive single-key commands go to the store together, as one batch
//! ([`super::pipeline`]); any other command starts only once those before it
//! have their replies. A client may pipeline as many commands as it likes;
//! TCP's flow control holds the rest while one batch runs. Limits: [`RespOptions::max_connections`](super::RespOptions::max_connections) (one more
//! gets `-ERR max number of clients reached`), [`RespOptions::idle_timeout`](super::RespOptions::idle_timeout) on
//! every read and write, [`super::parse::Limits`] on every command; a protocol
//! error is answered and the connection closed, as Redis does.

use super::dispatch::{self, plan, Step};
use super::door::{Door, Session};
use super::parse::Decoder;
use super::pipeline::Run;
use super::reply::{Protocol, Reply};
use paxos::transport::tls::accept_public;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use crate::front::running::Running;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 << 10;
/// Replies are written once this many bytes are waiting, even mid-batch.
const FLUSH_AT: usize = 1 << 20;
/// Buffer capacity a connection keeps between commands; more is given back.
const KEEP_BUFFER: usize = 256 << 10;

/// Serves RESP on `listener` through `door` until `shutdown` resolves; then
/// stops accepting and gives connections [`RespOptions::grace`](super::RespOptions::grace) to finish the
/// command in flight.
pub async fn serve(
    listener: TcpListener,
    door: Door,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    door.opts
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let addr = listener.local_addr()?;
    let door = Arc::new(door);
    let slots = Arc::new(Semaphore::new(door.opts.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Some((mut stream, peer)) =
            crate::front::running::accepted(accepted, addr, "RESP").await
        else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%addr, %peer, "RESP: too many connections; refusing one");
            conns.spawn(async move {
                let refusal = b"-ERR max number of clients reached\r\n";
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(refusal)).await;
            });
            continue;
        };
        let (door, stop) = (door.clone(), stop_rx.clone());
        conns.spawn(async move {
            let _slot = slot;
            door.connected.fetch_add(1, Ordering::Relaxed);
            match door.opts.tls.clone() {
                None => connection(&door, stream, stop).await,
                Some(config) => {
                    let accepted =
                        accept_public(config, stream, peer, HANDSHAKE_LIMIT, "RESP").await;
                    if let Some(tls) = accepted {
                        connection(&door, tls, stop).await;
                    }
                }
            }
            door.connected.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(%peer, "RESP: connection closed");
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = door.opts.grace;
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(%addr, left = conns.len(), ?grace, "RESP: commands still running after the grace period; dropping them");
        conns.shutdown().await;
    }
    Ok(())
}

/// Serves one connection until the client leaves, QUITs, idles, breaks the
/// protocol, or the server stops.
async fn connection<S>(door: &Door, mut stream: S, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let idle = door.opts.idle_timeout;
    let mut session = door.session();
    let _cursors = ForgetCursors(door, session.id);
    let mut decoder = Decoder::new(door.opts.limits);
    let mut input: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut output: Vec<u8> = Vec::new();
    let mut run = Run::default();
    loop {
        let mut used = 0;
        let mut close = false;
        loop {
            match decoder.decode(&input[used..]) {
                Ok((n, Some(args))) => {
                    used += n;
                    match plan(door, &mut session, &args) {
                        Step::Ready(reply) => run.ready(reply),
                        Step::Op(planned) => {
                            if run.op(planned) {
                                run.answer(door, session.proto, &mut output).await;
                            }
                        }
                        Step::Run(spec) => {
                            run.answer(door, session.proto, &mut output).await;
                            let reply = dispatch::run(door, &mut session, spec, args).await;
                            reply.encode(session.proto, &mut output);
                        }
                    }
                    if session.quit {
                        close = true;
                        break;
                    }
                    if !session
                        .charge
                        .set(input.capacity() + output.capacity() + decoder.holds() + run.holds())
                    {
                        run.answer(door, session.proto, &mut output).await;
                        over_budget(door, &session, &mut output);
                        close = true;
                        break;
                    }
                    if output.len() >= FLUSH_AT && !flush(&mut stream, &mut output, idle).await {
                        return;
                    }
                }
                Ok((n, None)) => {
                    used += n;
                    break;
                }
                Err(e) => {
                    run.answer(door, session.proto, &mut output).await;
                    tracing::debug!(client = session.id, error = %e, "RESP: protocol error; closing");
                    Reply::err(e).encode(Protocol::Resp2, &mut output);
                    close = true;
                    break;
                }
            }
        }
        run.answer(door, session.proto, &mut output).await;
        input.drain(..used);
        if !flush(&mut stream, &mut output, idle).await || close || *stop.borrow() {
            return;
        }
        // Give back what a big command or reply left allocated.
        if input.capacity() > KEEP_BUFFER {
            input.shrink_to(KEEP_BUFFER.max(input.len()));
        }
        if output.capacity() > KEEP_BUFFER {
            output.shrink_to(KEEP_BUFFER);
        }
        input.reserve(READ_CHUNK);
        if !session
            .charge
            .set(input.capacity() + output.capacity() + decoder.holds())
        {
            over_budget(door, &session, &mut output);
            let _ = flush(&mut stream, &mut output, idle).await;
            return;
        }
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_buf(&mut input)) => r,
            _ = stop.wait_for(|&s| s) => return,
        };
        match read {
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(client = session.id, error = %e, "RESP: read failed");
                return;
            }
            Err(_) => {
                tracing::debug!(client = session.id, ?idle, "RESP: idle connection closed");
                return;
            }
        }
    }
}

/// Answers a connection that would take the door over its memory budget; the
/// caller closes it.
fn over_budget(door: &Door, session: &Session, output: &mut Vec<u8>) {
    let (used, limit) = (door.budget.used() >> 20, door.budget.limit() >> 20);
    tracing::warn!(
        client = session.id,
        used_mib = used,
        limit_mib = limit,
        "RESP: memory budget used up; closing a connection"
    );
    Reply::err(format!(
        "the server's memory for commands and replies in flight is used up ({used} of {limit} MiB); \
         closing this connection: retry later, or send smaller commands"
    ))
    .encode(session.proto, output);
}

/// Forgets a connection's SCAN cursors when it ends, however it ends.
struct ForgetCursors<'a>(&'a Door, u64);

impl Drop for ForgetCursors<'_> {
    fn drop(&mut self) {
        self.0.cursors.forget(self.1);
    }
}

/// Writes and clears `output`; false if the client is gone or does not read.
async fn flush<S>(stream: &mut S, output: &mut Vec<u8>, within: Duration) -> bool
where
    S: AsyncWrite + Unpin,
{
    if output.is_empty() {
        return true;
    }
    // TLS buffers what is written until flushed.
    let write = async {
        stream.write_all(output).await?;
        stream.flush().await
    };
    let sent = tokio::time::timeout(within, write).await;
    output.clear();
    matches!(sent, Ok(Ok(())))
}

/// Starts [`serve`] on `listener` in a task; [`Running::stop`] ends it.
pub fn spawn(listener: TcpListener, door: Door) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    Ok(Running::spawn("RESP", addr, move |shutdown| {
        serve(listener, door, shutdown)
    }))
}
