//! Fixtures written once for the in-process tests and benches of the workspace
//! (`diskv/tests/`, `shardmaster/tests/`, `diskv/benches/`): listeners on
//! 127.0.0.1 (and an address bound again for a restarted replica), a deadline on
//! a future, polling a condition until a deadline, and the tests' logs.
//! A test waits on observable state with a deadline, never a bare sleep.

use std::future::Future;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Binds `n` listeners on 127.0.0.1 ephemeral ports; returns them and their
/// addresses.
pub async fn listeners(n: usize) -> (Vec<TcpListener>, Vec<String>) {
    let mut ls = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        addrs.push(l.local_addr().expect("local address").to_string());
        ls.push(l);
    }
    (ls, addrs)
}

/// Binds `addr` again after its previous owner closed it, retrying for up to
/// 10 s while the old socket lingers (a replica restarted on its address).
pub async fn bind_again(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => assert!(Instant::now() < deadline, "cannot bind {addr} again: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs to the test's output when `RUST_LOG` is set (`RUST_LOG=info cargo test
/// ...`); once per process, later calls do nothing.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Runs `f` with a deadline; the test fails with `what` if it passes.
pub async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done within {limit:?}"),
    }
}

/// Polls `cond` every 20 ms until it holds; fails with `what` after `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: still false after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
