//! The front door under abuse (issue #18): slow senders, oversized and lying
//! bodies, header limits, requests without `Host`, one address opening too many
//! connections. Raw `TcpStream`s on 127.0.0.1 against [`serve_with`] over a
//! [`Front`] with no store behind it: a request that reached the store would be
//! answered 503 after the short operation deadline, and
//! `diskv_http_clerks_made_total 0` shows no request ever borrowed a Clerk.

use super::{serve_with, BodyRules, Front, FrontOptions, ServeOptions, MAX_VALUE_BYTES};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A served front door with no store; stopped when dropped.
struct Door {
    addr: SocketAddr,
    front: Arc<Front>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for Door {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// The options of these tests: short body rules so that deadlines show in
/// seconds, everything else as shipped.
fn opts() -> ServeOptions {
    ServeOptions {
        body: BodyRules {
            grace: Duration::from_secs(1),
            min_rate: 1024,
        },
        ..ServeOptions::default()
    }
}

async fn door(opts: ServeOptions) -> Door {
    let front = Arc::new(Front::new(
        vec![nowhere()],
        FrontOptions {
            pool_size: 2,
            op_timeout: Duration::from_millis(300),
            ..FrontOptions::default()
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(
        listener,
        front.clone(),
        async {
            let _ = stopped.await;
        },
        opts,
    ));
    Door {
        addr,
        front,
        stop: Some(stop),
        task,
    }
}

/// A shardmaster address nobody listens on.
fn nowhere() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// What came back on a connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
    /// The server closed the connection after the response.
    closed: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response within `within`: its head, its Content-Length body, and
/// whether the server then closed the connection (checked for up to 1 s).
/// `Err` says what happened instead (a timeout, a reset, a close without answer).
async fn answer(s: &mut TcpStream, within: Duration) -> Result<Answer, String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let (head_end, len) = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break (end, len);
            }
        }
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return Err(format!("no answer within {within:?}: got {buf:?}")),
            Ok(Ok(0)) => return Err(format!("closed without an answer: got {buf:?}")),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(format!("{e} after {buf:?}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let body = String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + len]).into_owned();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut chunk)).await,
        Ok(Ok(0) | Err(_))
    );
    Ok(Answer {
        status,
        head,
        body,
        closed,
    })
}

/// Connects and sends `bytes`.
async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// `GET /health` on a new connection; its status.
async fn health(addr: SocketAddr) -> u16 {
    let mut s = send(
        addr,
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    answer(&mut s, Duration::from_secs(5))
        .await
        .expect("health answered")
        .status
}

#[track_caller]
fn assert_no_clerk_borrowed(front: &Front) {
    let m = front.render_metrics();
    assert!(
        m.contains("diskv_http_clerks_made_total 0\n"),
        "a request reached the store:\n{m}"
    );
}

fn put_head(len: usize) -> String {
    format!("PUT /kv/k HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
}

/// Issue #18: a Content-Length over the limit with a stalled body was answered
/// 408 after 30 s. It is 413 at once, then the connection is closed.
#[tokio::test]
async fn a_content_length_over_the_limit_is_413_at_once() {
    let d = door(opts()).await;
    for len in [MAX_VALUE_BYTES + 1, 40 << 20, 1 << 40] {
        let start = Instant::now();
        let mut s = send(d.addr, put_head(len).as_bytes()).await;
        let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
        assert_eq!(a.status, 413, "{a:?}");
        assert!(a.body.contains("16 MiB"), "{a:?}");
        assert_eq!(a.header("connection"), Some("close"), "{a:?}");
        assert!(
            a.header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "{a:?}"
        );
        assert!(a.closed, "the connection stays open: {a:?}");
        assert!(start.elapsed() < Duration::from_secs(2), "{len}");
    }
    // With `Expect: 100-continue` the client never has to send the body.
    let mut s = send(
        d.addr,
        format!(
            "PUT /kv/k HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            MAX_VALUE_BYTES + 1
        )
        .as_bytes(),
    )
    .await;
    let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
    assert_eq!(a.status, 413, "{a:?}");
    assert_no_clerk_borrowed(&d.front);
}

/// A client that sends a whole oversized body before it reads still gets the 413
/// (the server keeps reading and discarding for a while after answering, instead
/// of resetting the connection under the client's feet).
#[tokio::test]
async fn a_whole_oversized_body_sent_before_reading_gets_its_413() {
    let d = door(opts()).await;
    let len = MAX_VALUE_BYTES + (1 << 20);
    let mut msg = put_head(len).into_bytes();
    msg.resize(msg.len() + len, b'x');
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), s.write_all(&msg))
        .await
        .expect("the body is taken within 10 s")
        .expect("the server lets the client finish sending");
    let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.closed, "{a:?}");
    assert_no_clerk_borrowed(&d.front);
}

/// Issue #18: a chunked body over the limit was read on (up to 64 MiB or 30 s).
/// It is 413 as soon as the limit is crossed.
#[tokio::test]
async fn a_chunked_body_is_413_as_soon_as_it_crosses_the_limit() {
    let d = door(opts()).await;
    let mut s = send(
        d.addr,
        b"PUT /kv/k HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    let mib = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        s.write_all(b"100000\r\n").await.unwrap();
        s.write_all(&mib).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    // One byte over the limit, then the client stalls without ending the body.
    s.write_all(b"1\r\nx\r\n").await.unwrap();
    let start = Instant::now();
    let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.closed, "{a:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_no_clerk_borrowed(&d.front);
}

/// A body shorter than announced: once bytes stop arriving the request is 408
/// (after the grace, not 30 s) and closed; a client that hangs up gets nothing
/// stored. Neither borrows a Clerk.
#[tokio::test]
async fn a_body_shorter_than_announced_is_408_once_bytes_stop() {
    let d = door(opts()).await;
    let start = Instant::now();
    let mut s = send(d.addr, format!("{}only ten!!", put_head(100)).as_bytes()).await;
    let a = answer(&mut s, Duration::from_secs(5)).await.unwrap();
    assert_eq!(a.status, 408, "{a:?}");
    assert!(a.body.contains("request body"), "{a:?}");
    assert!(a.closed, "{a:?}");
    assert!(start.elapsed() < Duration::from_secs(4));

    // Hanging up half-way: the request ends there.
    let s = send(d.addr, format!("{}half", put_head(100)).as_bytes()).await;
    drop(s);
    assert_eq!(health(d.addr).await, 503);
    assert_no_clerk_borrowed(&d.front);
}

/// A body trickled one byte at a time never completes: it is cut by the minimum
/// rate (after the grace) instead of holding the connection for 30 s.
#[tokio::test]
async fn a_trickled_body_is_cut_by_the_minimum_rate() {
    let d = door(opts()).await;
    let start = Instant::now();
    let mut s = send(d.addr, put_head(10_000).as_bytes()).await;
    let got = loop {
        assert!(start.elapsed() < Duration::from_secs(8), "never cut");
        // One byte every 100 ms; stop when the server answers.
        if s.write_all(b"x").await.is_err() {
            break answer(&mut s, Duration::from_secs(1)).await;
        }
        match tokio::time::timeout(Duration::from_millis(100), s.peek(&mut [0u8; 1])).await {
            Ok(_) => break answer(&mut s, Duration::from_secs(1)).await,
            Err(_) => continue,
        }
    };
    let a = got.unwrap();
    assert_eq!(a.status, 408, "{a:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_no_clerk_borrowed(&d.front);
}

/// A body longer than announced: the announced bytes are the body, and the rest
/// is read as the next request (here garbage, so 400 and close). Nothing hangs.
#[tokio::test]
async fn a_body_longer_than_announced_ends_at_the_announced_length() {
    let d = door(opts()).await;
    let mut s = send(
        d.addr,
        b"PUT /kv/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcNOT A REQUEST\r\n\r\n",
    )
    .await;
    let first = answer(&mut s, Duration::from_secs(3)).await.unwrap();
    assert_eq!(
        (first.status, first.body.as_str()),
        (400, "key cannot be empty\n")
    );
    let second = answer(&mut s, Duration::from_secs(3)).await;
    if let Ok(a) = second {
        assert_eq!(a.status, 400, "{a:?}");
        assert!(a.closed, "{a:?}");
    }
}

/// HTTP/1.1 requires `Host` (RFC 9112 §3.2): without one, or with two, 400 with
/// a reason. HTTP/1.0 without `Host` is still served.
#[tokio::test]
async fn http11_without_host_is_400() {
    let d = door(opts()).await;
    let mut s = send(d.addr, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("Host"), "{a:?}");
    let mut s = send(
        d.addr,
        b"PUT /kv/k HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
    assert_eq!(a.status, 400, "{a:?}");
    let mut s = send(
        d.addr,
        b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
    assert_eq!(a.status, 400, "{a:?}");

    let mut s = send(d.addr, b"GET /health HTTP/1.0\r\n\r\n").await;
    let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
    assert_eq!(a.status, 503, "HTTP/1.0 without Host is served: {a:?}");
    let mut s = send(
        d.addr,
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        answer(&mut s, Duration::from_secs(3)).await.unwrap().status,
        503
    );
    assert_no_clerk_borrowed(&d.front);
}

/// Headers: more than 100 fields, or more than 64 KiB with the request line,
/// are 431 (or a closed connection if the client is still sending). Just under
/// both limits is served.
#[tokio::test]
async fn too_many_or_too_large_headers_are_431() {
    let d = door(opts()).await;
    let request = |fields: usize, each: usize| {
        let mut r = String::from("GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
        for i in 0..fields {
            r.push_str(&format!("x-{i}: {}\r\n", "v".repeat(each)));
        }
        r + "\r\n"
    };
    // 2 + 97 fields, ~60 KiB: served.
    let mut s = send(d.addr, request(97, 600).as_bytes()).await;
    assert_eq!(
        answer(&mut s, Duration::from_secs(3)).await.unwrap().status,
        503
    );
    for (what, fields, each) in [("101 fields", 99, 1), ("70 KiB", 10, 7_000)] {
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        let _ = s.write_all(request(fields, each).as_bytes()).await;
        match answer(&mut s, Duration::from_secs(3)).await {
            Ok(a) => {
                assert_eq!(a.status, 431, "{what}: {a:?}");
                assert!(a.closed, "{what}: {a:?}");
            }
            Err(e) => assert!(
                e.contains("reset") || e.contains("closed without"),
                "{what}: {e}"
            ),
        }
    }
    assert_no_clerk_borrowed(&d.front);
}

/// Slow senders (headers or bodies trickled a byte every 200 ms on 200
/// connections) do not delay a normal client, hold no Clerk, and are cut: bodies
/// once they fall behind the minimum rate (408), headers at the header deadline
/// (closed). The one-byte-a-second case against the real binary, with 300
/// connections, is in tests/front_door_abuse.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_do_not_starve_a_normal_client() {
    let mut o = opts();
    o.header_timeout = Duration::from_secs(3);
    let d = door(o).await;
    let mut slow = Vec::new();
    for i in 0..200 {
        let first: &[u8] = if i % 2 == 0 {
            b"GET /health HTTP/1.1\r\nHo"
        } else {
            b"PUT /kv/k HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nx"
        };
        slow.push(send(d.addr, first).await);
    }
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        assert_eq!(health(d.addr).await, 503);
        worst = worst.max(t.elapsed());
        for s in &mut slow {
            let _ = s.try_write(b"y");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        worst < Duration::from_millis(500),
        "a normal request took {worst:?}"
    );
    // Every slow connection is answered or closed by the server in time.
    for (i, mut s) in slow.into_iter().enumerate() {
        let a = answer(&mut s, Duration::from_secs(5)).await;
        if i % 2 == 1 {
            assert_eq!(a.as_ref().map(|a| a.status), Ok(408), "{a:?}");
        } else {
            assert!(a.is_err(), "{a:?}");
        }
    }
    assert_no_clerk_borrowed(&d.front);
}

/// One address may hold at most half the connections: past that it is answered
/// 503 and closed at once, and other requests still get through once it lets go.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let d = door(ServeOptions {
        max_connections: 8,
        ..opts()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(send(d.addr, b"").await);
    }
    // Let the accept loop admit them.
    let start = Instant::now();
    let a = loop {
        assert!(start.elapsed() < Duration::from_secs(5), "never refused");
        let mut s = send(d.addr, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
        if a.status != 503 || a.body.contains("too many") {
            break a;
        }
    };
    assert_eq!(a.status, 503, "{a:?}");
    assert!(
        a.body.contains("too many connections from 127.0.0.1"),
        "{a:?}"
    );
    assert!(a.closed, "{a:?}");
    drop(idle);
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(5), "still refused");
        let mut s = send(d.addr, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let a = answer(&mut s, Duration::from_secs(3)).await.unwrap();
        if !a.body.contains("too many") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
