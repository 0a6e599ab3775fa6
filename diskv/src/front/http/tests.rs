//! The front door without a store behind it: readiness, the request deadline, and
//! a graceful stop, over real TCP on 127.0.0.1.

use super::{serve_with, Front, FrontOptions, ServeOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request; returns the status and the body.
async fn call(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf[9..12].parse().unwrap();
    let body = buf.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

/// A shardmaster address nobody listens on.
fn nowhere() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn without_a_store_requests_time_out_and_health_says_not_ready() {
    let opts = FrontOptions {
        pool_size: 2,
        op_timeout: Duration::from_millis(500),
        ..FrontOptions::default()
    };
    let front = Arc::new(Front::new(vec![nowhere()], opts));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(
        listener,
        front.clone(),
        async {
            let _ = stopped.await;
        },
        ServeOptions::default(),
    ));

    let (status, body) = call(addr, "GET", "/health").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: recovery has not finished\n")
    );
    let start = Instant::now();
    let (status, body) = call(addr, "PUT", "/kv/k").await;
    assert_eq!((status, body.as_str()), (400, "value cannot be empty\n"));
    let (status, body) = call(addr, "GET", "/kv/k").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("may or may not"), "{body}");
    assert!(start.elapsed() < Duration::from_secs(5));
    front.set_ready();
    assert_eq!(call(addr, "GET", "/health").await.0, 200);
    assert!(front.metrics().count("get", 503) == 1);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(6), server)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

/// One raw request (`head` is everything up to the blank line, without it);
/// returns the status, 0 if the server answered nothing.
async fn raw(addr: std::net::SocketAddr, head: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{head}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Attack on issue #14 (docs/attacks/tls-auth.md, "what held up"): with a
/// token file, no spelling of a path, method or `Authorization` header gets a
/// request past the middleware without a valid token, and a read-only token
/// never writes. Without a store behind the front door, a request that reached
/// a handler of /kv or /clear would be answered 503 (or 400 for an empty
/// value); only 400 (hyper or the Host rule), 401, 403 and 431 are answers
/// given before any handler.
#[tokio::test]
async fn attack_no_request_reaches_the_store_without_a_valid_token() {
    use crate::front::access::{add, Role, Tokens};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    let writer = add(&file, "app", Role::Write).unwrap();
    let reader = add(&file, "dash", Role::Read).unwrap();
    let opts = FrontOptions {
        pool_size: 2,
        op_timeout: Duration::from_millis(300),
        tokens: Some(Arc::new(Tokens::open(&file).unwrap())),
        ..FrontOptions::default()
    };
    let front = Arc::new(Front::new(vec![nowhere()], opts));
    front.set_ready();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(
        listener,
        front.clone(),
        async {
            let _ = stopped.await;
        },
        ServeOptions::default(),
    ));
    let before_auth = [0u16, 400, 401, 403, 431];
    let long = "x".repeat(70 << 10);
    let no_token = [
        "GET /kv/a HTTP/1.1\r\nHost: t".to_string(),
        "HEAD /kv/a HTTP/1.1\r\nHost: t".to_string(),
        "GET //kv/a HTTP/1.1\r\nHost: t".to_string(),
        "GET /health/../kv/a HTTP/1.1\r\nHost: t".to_string(),
        "GET /health/%2e%2e/kv/a HTTP/1.1\r\nHost: t".to_string(),
        "GET /%68ealth/../kv/a HTTP/1.1\r\nHost: t".to_string(),
        "GET /%6bv/a HTTP/1.1\r\nHost: t".to_string(),
        "GET /health/ HTTP/1.1\r\nHost: t".to_string(),
        "GET /health;/kv/a HTTP/1.1\r\nHost: t".to_string(),
        "GET http://t/kv/a HTTP/1.1\r\nHost: t".to_string(),
        "GET http://t/health/../kv/a HTTP/1.1\r\nHost: t".to_string(),
        "DELETE /clear HTTP/1.1\r\nHost: t".to_string(),
        "DELETE /clear/ HTTP/1.1\r\nHost: t".to_string(),
        "DELETE /CLEAR HTTP/1.1\r\nHost: t".to_string(),
        "OPTIONS /kv/a HTTP/1.1\r\nHost: t".to_string(),
        "OPTIONS * HTTP/1.1\r\nHost: t".to_string(),
        "POST /kv/a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx".to_string(),
        "GET /metrics HTTP/1.1\r\nHost: t".to_string(),
        "GET /kv/a HTTP/1.0".to_string(),
        "GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Basic YTpi".to_string(),
        "GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer".to_string(),
        "GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ".to_string(),
        "GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: bearer dkv_guess".to_string(),
        format!("GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer\t{writer}"),
        format!("GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {writer}x"),
        format!("GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}", &writer[..20]),
        format!("GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}", writer.to_uppercase()),
        format!("GET /kv/a HTTP/1.1\r\nHost: t\r\nX-Authorization: Bearer {writer}"),
        format!("GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer dkv_guess\r\nAuthorization: Bearer {writer}"),
        format!("GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {long}"),
        format!("GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {writer}\r\n X-Folded: y"),
    ];
    for head in &no_token {
        let status = raw(addr, head).await;
        assert!(
            before_auth.contains(&status),
            "{status} for a request without a valid token: {:?}",
            &head[..head.len().min(120)]
        );
    }
    let read_only = [
        format!("PUT /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {reader}\r\nContent-Length: 1\r\n\r\nx"),
        format!("DELETE /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {reader}"),
        format!("DELETE /clear HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {reader}"),
        format!("POST /clear HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {reader}\r\nContent-Length: 0"),
        format!("PATCH /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {reader}\r\nContent-Length: 1\r\n\r\nx"),
        format!("PUT /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {reader}\r\nAuthorization: Bearer {writer}\r\nContent-Length: 1\r\n\r\nx"),
        format!("PUT /kv/a HTTP/1.1\r\nHost: t\r\nauthorization: BEARER {reader}\r\nX-HTTP-Method-Override: GET\r\nContent-Length: 1\r\n\r\nx"),
    ];
    for head in &read_only {
        let status = raw(addr, head).await;
        assert!(
            [400, 403].contains(&status),
            "{status} for a write with a read-only token: {head:?}"
        );
    }
    // The tokens themselves work: past the middleware, the missing store answers.
    let ok = raw(
        addr,
        &format!("GET /kv/a HTTP/1.1\r\nHost: t\r\nAuthorization: bearer  {reader} "),
    )
    .await;
    assert_eq!(ok, 503, "a read token was refused");
    assert_eq!(raw(addr, "GET /health HTTP/1.1\r\nHost: t").await, 200);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(6), server).await;
}
