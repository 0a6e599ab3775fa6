//! Transport tests over real TCP on 127.0.0.1, port 0. Every wait has a deadline.

use super::codec;
use super::peer::{serve_peers, PeerNet, PeerNetConfig, PeerServer};
use super::unreliable::Unreliable;
use super::Transport;
use crate::message::{Envelope, Message};
use crate::types::{Ballot, NodeId};
use futures::StreamExt;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tarpc::client::{self, RpcError};
use tarpc::context;
use tarpc::server::{incoming::Incoming as _, BaseChannel};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- helpers

fn heartbeat(from: NodeId, to: NodeId, round: u64) -> Envelope {
    Envelope {
        from,
        to,
        msg: Message::Heartbeat {
            ballot: Ballot::new(1, from),
            commit: 0,
            round,
            done: vec![],
        },
    }
}

fn round_of(env: &Envelope) -> u64 {
    match env.msg {
        Message::Heartbeat { round, .. } => round,
        _ => u64::MAX,
    }
}

/// Polls `cond` until it holds; fails the test after `DEADLINE`.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Receives until `done` holds for an envelope; returns everything received.
async fn recv_until(
    inbox: &mut mpsc::Receiver<Envelope>,
    what: &str,
    mut done: impl FnMut(&Envelope) -> bool,
) -> Vec<Envelope> {
    let mut got = Vec::new();
    let res = tokio::time::timeout(DEADLINE, async {
        while let Some(env) = inbox.recv().await {
            let stop = done(&env);
            got.push(env);
            if stop {
                return;
            }
        }
    })
    .await;
    assert!(
        res.is_ok(),
        "timed out waiting for {what}; got {}",
        got.len()
    );
    got
}

async fn recv_n(inbox: &mut mpsc::Receiver<Envelope>, n: usize) -> Vec<Envelope> {
    let mut count = 0;
    recv_until(inbox, &format!("{n} envelopes"), |_| {
        count += 1;
        count == n
    })
    .await
}

/// Binds `addr` again, retrying while the old socket lingers.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let give_up = Instant::now() + DEADLINE;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) => assert!(Instant::now() < give_up, "cannot rebind {addr}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn bind_any() -> TcpListener {
    match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("cannot bind 127.0.0.1:0: {e}"),
    }
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("no local address: {e}"),
    }
}

/// A running peer server with its inbox.
struct Replica {
    server: PeerServer,
    inbox: mpsc::Receiver<Envelope>,
    task: JoinHandle<io::Result<()>>,
    stop: Option<oneshot::Sender<()>>,
}

fn start_replica(listener: TcpListener, inbox_capacity: usize, policy: Unreliable) -> Replica {
    let (tx, inbox) = mpsc::channel(inbox_capacity);
    let server = PeerServer::new(tx, Arc::new(policy));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.clone().run(listener, async {
        let _ = stopped.await;
    }));
    Replica {
        server,
        inbox,
        task,
        stop: Some(stop),
    }
}

fn fast_config() -> PeerNetConfig {
    PeerNetConfig {
        backoff_max: Duration::from_millis(100),
        ..PeerNetConfig::default()
    }
}

fn peer_net(me: NodeId, addrs: &[SocketAddr]) -> PeerNet {
    let addrs = addrs.iter().map(|a| a.to_string()).collect();
    match PeerNet::with_config(me, addrs, fast_config()) {
        Ok(net) => net,
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------- codec

#[tarpc::service]
trait Echo {
    async fn echo(env: Envelope, tag: String) -> (Envelope, String);
    async fn add(a: u64, b: u64) -> Option<u64>;
}

#[derive(Clone)]
struct EchoServer {
    handled: Arc<AtomicU64>,
}

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, env: Envelope, tag: String) -> (Envelope, String) {
        self.handled.fetch_add(1, Ordering::SeqCst);
        (env, tag)
    }

    async fn add(self, _: context::Context, a: u64, b: u64) -> Option<u64> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        a.checked_add(b)
    }
}

/// Serves `EchoServer` through the codec helpers, optionally behind an unreliable policy.
async fn start_echo(
    policy: Option<Arc<Unreliable>>,
) -> io::Result<(SocketAddr, Arc<AtomicU64>, oneshot::Sender<()>)> {
    let handled = Arc::new(AtomicU64::new(0));
    let server = EchoServer {
        handled: Arc::clone(&handled),
    };
    let incoming = codec::listen::<EchoRequest, EchoResponse>("127.0.0.1:0").await?;
    let addr = incoming.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    match policy {
        None => {
            let channels = incoming
                .map(BaseChannel::with_defaults)
                .execute(server.serve());
            tokio::spawn(codec::serve_until(channels, shutdown));
        }
        Some(policy) => {
            let channels = incoming
                .map(BaseChannel::with_defaults)
                .execute(policy.wrap(server.serve()));
            tokio::spawn(codec::serve_until(channels, shutdown));
        }
    }
    Ok((addr, handled, stop))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_round_trip_over_tcp() -> anyhow_free::Result {
    let (addr, handled, stop) = start_echo(None).await?;
    let transport = codec::connect::<EchoRequest, EchoResponse>(addr).await?;
    assert!(transport.get_ref().nodelay()?, "TCP_NODELAY set");
    let client = EchoClient::new(client::Config::default(), transport).spawn();

    let env = heartbeat(2, 0, 99);
    let (back, tag) = client
        .echo(context::current(), env.clone(), "héllo".into())
        .await?;
    assert_eq!((back, tag.as_str()), (env, "héllo"));
    assert_eq!(client.add(context::current(), 2, 3).await?, Some(5));
    assert_eq!(client.add(context::current(), u64::MAX, 1).await?, None);

    // Many concurrent calls on one connection.
    let calls = (0..200u64).map(|i| {
        let client = client.clone();
        async move { client.add(context::current(), i, i).await }
    });
    let sums = futures::future::join_all(calls).await;
    for (i, sum) in sums.into_iter().enumerate() {
        assert_eq!(sum?, Some(2 * i as u64));
    }
    assert_eq!(handled.load(Ordering::SeqCst), 203);

    // After shutdown the connection is closed and calls fail instead of hanging.
    let _ = stop.send(());
    let mut ctx = context::current();
    ctx.deadline = std::time::Instant::now() + Duration::from_secs(5);
    let give_up = Instant::now() + DEADLINE;
    while client.add(ctx, 1, 1).await.is_ok() {
        assert!(
            Instant::now() < give_up,
            "server still answering after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_serve_drops_and_discards_over_tcp() -> anyhow_free::Result {
    let policy = Arc::new(Unreliable::seeded(true, 1).with_rates(1.0, 0.0));
    let (addr, handled, _stop) = start_echo(Some(Arc::clone(&policy))).await?;
    let transport = codec::connect::<EchoRequest, EchoResponse>(addr).await?;
    let client = EchoClient::new(client::Config::default(), transport).spawn();
    let short = || {
        let mut ctx = context::current();
        ctx.deadline = std::time::Instant::now() + Duration::from_millis(200);
        ctx
    };

    // Drop: never processed, the caller's deadline expires.
    let res = client.add(short(), 1, 2).await;
    assert!(matches!(res, Err(RpcError::DeadlineExceeded)), "{res:?}");
    assert_eq!(handled.load(Ordering::SeqCst), 0);

    // DiscardReply: processed, but the caller still sees its deadline expire.
    let policy = Arc::new(Unreliable::seeded(true, 1).with_rates(0.0, 1.0));
    let (addr, handled, _stop2) = start_echo(Some(Arc::clone(&policy))).await?;
    let transport = codec::connect::<EchoRequest, EchoResponse>(addr).await?;
    let client = EchoClient::new(client::Config::default(), transport).spawn();
    let res = client.add(short(), 1, 2).await;
    assert!(matches!(res, Err(RpcError::DeadlineExceeded)), "{res:?}");
    wait_until("the discarded request to be handled", || {
        handled.load(Ordering::SeqCst) == 1
    })
    .await;

    // Disabled: delivered.
    policy.set_enabled(false);
    assert_eq!(client.add(short(), 1, 2).await?, Some(3));
    Ok(())
}

// ---------------------------------------------------------------- peer network

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_mesh_delivers_everything_in_order() {
    const N: usize = 3;
    const PER_PAIR: u64 = 500;
    let listeners = [bind_any().await, bind_any().await, bind_any().await];
    let addrs: Vec<SocketAddr> = listeners.iter().map(local_addr).collect();
    let mut replicas: Vec<Replica> = listeners
        .into_iter()
        .map(|l| start_replica(l, 4096, Unreliable::disabled()))
        .collect();
    let nets: Vec<PeerNet> = (0..N).map(|me| peer_net(me, &addrs)).collect();

    for round in 0..PER_PAIR {
        for (from, net) in nets.iter().enumerate() {
            for to in (0..N).filter(|&to| to != from) {
                net.send(heartbeat(from, to, round));
            }
        }
    }

    for (me, replica) in replicas.iter_mut().enumerate() {
        let got = recv_n(&mut replica.inbox, (N - 1) * PER_PAIR as usize).await;
        let mut per_sender: HashMap<NodeId, Vec<u64>> = HashMap::new();
        for env in &got {
            assert_eq!(env.to, me);
            per_sender.entry(env.from).or_default().push(round_of(env));
        }
        for from in (0..N).filter(|&from| from != me) {
            let expected: Vec<u64> = (0..PER_PAIR).collect();
            assert_eq!(per_sender.get(&from), Some(&expected), "{from} -> {me}");
        }
    }
    // Acknowledgements may trail the envelopes themselves.
    wait_until("every batch acknowledged", || {
        nets.iter()
            .flat_map(PeerNet::stats)
            .all(|s| s.delivered == PER_PAIR)
    })
    .await;
    for stats in nets.iter().flat_map(PeerNet::stats) {
        assert_eq!((stats.enqueued, stats.dropped), (PER_PAIR, 0), "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_late_start_reconnects_with_backoff() {
    let listener = bind_any().await;
    let addr_b = local_addr(&listener);
    drop(listener);
    let addr_a = local_addr(&bind_any().await);
    let net = peer_net(0, &[addr_a, addr_b]);

    for round in 0..10 {
        net.send(heartbeat(0, 1, round));
    }
    wait_until("a few failed connects", || {
        net.peer_stats(1).is_some_and(|s| s.failed_connects >= 3)
    })
    .await;

    let mut b = start_replica(rebind(addr_b).await, 1024, Unreliable::disabled());
    for round in 1000..1010 {
        net.send(heartbeat(0, 1, round));
    }
    let got = recv_until(&mut b.inbox, "envelopes sent after start", |env| {
        round_of(env) == 1009
    })
    .await;
    let late: Vec<u64> = got.iter().map(round_of).filter(|&r| r >= 1000).collect();
    assert_eq!(late, (1000..1010).collect::<Vec<_>>());
    let stats = net.peer_stats(1);
    assert!(stats.as_ref().is_some_and(|s| s.connects >= 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_restart_resumes_traffic() {
    let listener = bind_any().await;
    let addr_b = local_addr(&listener);
    let addr_a = local_addr(&bind_any().await);
    let mut b = start_replica(listener, 1024, Unreliable::disabled());
    let net = peer_net(0, &[addr_a, addr_b]);

    net.send(heartbeat(0, 1, 1));
    recv_until(&mut b.inbox, "first envelope", |env| round_of(env) == 1).await;

    // Kill the server: its listener and connections go away with the task.
    b.task.abort();
    assert!(matches!(b.task.await, Err(e) if e.is_cancelled()));
    // Traffic while down is lost or trimmed; the link notices the broken connection.
    let give_up = Instant::now() + DEADLINE;
    let mut round = 100;
    let noticed = |net: &PeerNet| {
        net.peer_stats(1)
            .is_some_and(|s| s.failed_calls + s.failed_connects > 0)
    };
    while !noticed(&net) {
        assert!(Instant::now() < give_up, "link never noticed the dead peer");
        net.send(heartbeat(0, 1, round));
        round += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut b = start_replica(rebind(addr_b).await, 1024, Unreliable::disabled());
    for round in 2000..2010 {
        net.send(heartbeat(0, 1, round));
    }
    let got = recv_until(&mut b.inbox, "envelopes after restart", |env| {
        round_of(env) == 2009
    })
    .await;
    let resumed: Vec<u64> = got.iter().map(round_of).filter(|&r| r >= 2000).collect();
    assert_eq!(resumed, (2000..2010).collect::<Vec<_>>());
    assert!(net.peer_stats(1).is_some_and(|s| s.connects >= 2));
    if let Some(stop) = b.stop.take() {
        let _ = stop.send(());
    }
    assert!(matches!(b.task.await, Ok(Ok(()))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_batching_uses_far_fewer_calls_than_messages() {
    const MESSAGES: u64 = 10_000;
    let listener = bind_any().await;
    let addr_b = local_addr(&listener);
    let addr_a = local_addr(&bind_any().await);
    let mut b = start_replica(listener, 2 * MESSAGES as usize, Unreliable::disabled());
    let net = peer_net(0, &[addr_a, addr_b]);

    for round in 0..MESSAGES {
        net.send(heartbeat(0, 1, round));
    }
    let got = recv_n(&mut b.inbox, MESSAGES as usize).await;
    assert!(got.iter().map(round_of).eq(0..MESSAGES), "order kept");

    let server_calls = b.server.stats().calls;
    let client_calls = net.peer_stats(1).map_or(0, |s| s.calls);
    assert!(server_calls <= MESSAGES / 20, "{server_calls} calls");
    assert!(client_calls <= MESSAGES / 20, "{client_calls} calls");
    assert_eq!(b.server.stats().received, MESSAGES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_full_inbox_drops_and_counts() {
    const MESSAGES: u64 = 2_000;
    let listener = bind_any().await;
    let addr_b = local_addr(&listener);
    let addr_a = local_addr(&bind_any().await);
    let (tx, mut inbox) = mpsc::channel(10);
    let server = PeerServer::new(tx, Arc::new(Unreliable::disabled()))
        .with_inbox_wait(Duration::from_millis(5));
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.clone().run(listener, async {
        let _ = stopped.await;
    }));
    let net = peer_net(0, &[addr_a, addr_b]);

    for round in 0..MESSAGES {
        net.send(heartbeat(0, 1, round));
    }
    wait_until("every envelope received or dropped", || {
        let s = server.stats();
        s.received + s.dropped_inbox_full == MESSAGES
    })
    .await;
    let stats = server.stats();
    assert_eq!(stats.received, 10, "{stats:?}");
    assert_eq!(stats.dropped_inbox_full, MESSAGES - 10, "{stats:?}");

    // The network task was never stuck: once the driver drains, traffic flows again.
    recv_n(&mut inbox, 10).await;
    net.send(heartbeat(0, 1, 7777));
    recv_until(&mut inbox, "envelope after draining", |env| {
        round_of(env) == 7777
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_unreliable_drops_about_ten_percent() {
    const MESSAGES: u64 = 4_000;
    let listener = bind_any().await;
    let addr_b = local_addr(&listener);
    let addr_a = local_addr(&bind_any().await);
    let b = start_replica(
        listener,
        2 * MESSAGES as usize,
        Unreliable::seeded(true, 42),
    );
    let net = peer_net(0, &[addr_a, addr_b]);
    for round in 0..MESSAGES {
        net.send(heartbeat(0, 1, round));
    }
    wait_until("every envelope received or dropped", || {
        let s = b.server.stats();
        s.received + s.dropped_unreliable == MESSAGES
    })
    .await;
    let dropped = b.server.stats().dropped_unreliable as f64 / MESSAGES as f64;
    assert!((dropped - 0.1).abs() < 0.03, "dropped {dropped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_server_survives_garbage_input() -> anyhow_free::Result {
    let listener = bind_any().await;
    let addr_b = local_addr(&listener);
    let addr_a = local_addr(&bind_any().await);
    let (tx, mut inbox) = mpsc::channel(1024);
    let (_stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_peers(
        listener,
        tx,
        Arc::new(Unreliable::disabled()),
        async {
            let _ = stopped.await;
        },
    ));

    // A frame of junk, then a frame longer than the limit, then a truncated frame.
    let mut junk = TcpStream::connect(addr_b).await?;
    junk.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .await?;
    let mut huge = TcpStream::connect(addr_b).await?;
    huge.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await?;
    let mut short = TcpStream::connect(addr_b).await?;
    short.write_all(&[0, 0, 1, 0, 1]).await?;
    drop(short);

    let net = peer_net(0, &[addr_a, addr_b]);
    net.send(heartbeat(0, 1, 5));
    recv_until(&mut inbox, "a valid envelope", |env| round_of(env) == 5).await;
    assert!(!server.is_finished());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_net_drops_misaddressed_and_closes_on_drop() {
    let listener = bind_any().await;
    let addr_b = local_addr(&listener);
    let addr_a = local_addr(&bind_any().await);
    let (tx, mut inbox) = mpsc::channel(16);
    let (stop, stopped) = oneshot::channel::<()>();
    let peer_server = PeerServer::new(tx, Arc::new(Unreliable::disabled()));
    let server = tokio::spawn(peer_server.clone().run(listener, async {
        let _ = stopped.await;
    }));
    let net = peer_net(0, &[addr_a, addr_b]);
    net.send(heartbeat(0, 9, 1));
    assert_eq!(net.misaddressed(), 1);
    assert_eq!(net.stats().len(), 1);

    net.send(heartbeat(0, 1, 2));
    recv_until(&mut inbox, "envelope", |env| round_of(env) == 2).await;
    assert_eq!(peer_server.stats().open_connections, 1);
    drop(net);
    wait_until("the dropped PeerNet to close its connection", || {
        peer_server.stats().open_connections == 0
    })
    .await;
    let _ = stop.send(());
    let res = tokio::time::timeout(DEADLINE, server).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "{res:?}");
    // Every sender handle is gone with the server: the inbox reports closure.
    drop(peer_server);
    let closed = tokio::time::timeout(DEADLINE, inbox.recv()).await;
    assert!(matches!(closed, Ok(None)), "{closed:?}");
}

#[test]
fn peer_net_config_validation() {
    assert_eq!(PeerNetConfig::default().validate(), Ok(()));
    let bad = PeerNetConfig {
        max_in_flight: 0,
        ..PeerNetConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = PeerNetConfig {
        backoff_min: Duration::from_secs(2),
        ..PeerNetConfig::default()
    };
    assert!(bad.validate().is_err());
}

/// A call queued behind 128 MiB of large entries gets the time to move them at
/// the assumed minimum rate, not 2 s: missing the deadline tears the connection
/// down and loses everything on it (issue #18, B3).
#[test]
fn a_call_behind_many_bytes_gets_the_time_to_move_them() {
    let config = PeerNetConfig::default();
    assert_eq!(config.call_budget(0), config.call_timeout);
    let behind = config.call_budget(128 << 20);
    assert!(
        behind >= config.call_timeout + Duration::from_secs(12),
        "{behind:?}"
    );
    let bad = PeerNetConfig {
        min_rate: 0,
        ..PeerNetConfig::default()
    };
    assert!(
        bad.validate().is_err(),
        "a zero rate would make every deadline infinite"
    );
}

/// `?` in tests without pulling in anyhow (not a dependency of this crate).
mod anyhow_free {
    /// Any error, boxed.
    pub type Result = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
}
