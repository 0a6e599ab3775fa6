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
