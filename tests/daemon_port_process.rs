//! A daemon's port under a hostile or careless client (issue #18, B6 and B7): a
//! `diskv shardmaster` process, run with few file descriptors, keeps answering
//! its admin client while connections announce gigabyte frames and while more
//! idle tagged connections are opened than it has descriptors.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};
use support::process::{diskv_bin, reserve_addrs, run, wait_for, Process};

/// The descriptor limit the daemon runs under (B7 used 1,024; less keeps the
/// test light).
const NOFILE: u64 = 256;

/// Starts a one-replica shardmaster with at most `NOFILE` file descriptors.
fn start(root: &std::path::Path) -> (Process, String) {
    let addr = reserve_addrs(1).remove(0);
    let args = [
        "shardmaster".to_string(),
        "--me".into(),
        "0".into(),
        "--peers".into(),
        addr.clone(),
        "--dir".into(),
        root.join("sm0").display().to_string(),
    ];
    let p = Process::spawn_with("sm0", &root.join("logs"), diskv_bin(), args, |c| {
        c.env("RUST_LOG", "info,tarpc=warn");
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            c.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: NOFILE,
                    rlim_max: NOFILE,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    (p, addr)
}

/// `diskv admin query -1` succeeds within `limit`; returns how long it took.
fn query_within(addr: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    let out = run(
        diskv_bin(),
        ["admin", "--masters", addr, "--timeout", "20", "query", "-1"],
        limit,
    );
    assert!(
        out.success(),
        "the admin query failed ({:?}): {}",
        out.status,
        out.stderr
    );
    started.elapsed()
}

/// Resident memory of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[test]
fn frame_bombs_and_idle_floods_do_not_stop_a_daemon() {
    let root = tempfile::tempdir().unwrap();
    let (mut sm, addr) = start(root.path());
    wait_for(Duration::from_secs(30), "the shardmaster answers", || {
        run(
            diskv_bin(),
            ["admin", "--masters", &addr, "--timeout", "2", "query", "-1"],
            Duration::from_secs(10),
        )
        .success()
        .then_some(())
    });
    let before = rss(sm.pid());

    // B6: sixteen client connections each announce a 256 MiB frame and send
    // 4 MiB of it. Each is closed at its header; nothing is buffered.
    let bomb: Vec<u8> = [b'C']
        .into_iter()
        .chain(0x0FFF_FFFFu32.to_be_bytes())
        .chain(std::iter::repeat_n(0u8, 4 << 20))
        .collect();
    let mut bombs = Vec::new();
    for _ in 0..16 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        // The daemon closes the connection mid-send: a write error is expected.
        let _ = s.write_all(&bomb);
        bombs.push(s);
    }
    // Measured while the senders still hold their connections open.
    let after = rss(sm.pid());
    drop(bombs);
    assert!(
        after < before + (64 << 20),
        "the daemon grew from {before} to {after} bytes under frame bombs"
    );
    query_within(&addr, Duration::from_secs(30));

    // B7: more idle peer connections than the daemon has descriptors. The new
    // admin client is still served: the daemon closes the longest-silent ones.
    let mut idle = Vec::new();
    for _ in 0..NOFILE + 64 {
        match TcpStream::connect(&addr) {
            Ok(mut s) => {
                let _ = s.write_all(b"P");
                idle.push(s);
            }
            Err(_) => break,
        }
    }
    assert!(idle.len() as u64 > NOFILE / 2, "opened only {}", idle.len());
    let took = query_within(&addr, Duration::from_secs(30));
    assert!(took < Duration::from_secs(10), "the query took {took:?}");
    drop(idle);
    sm.kill9();
    let log: String = ["stderr", "stdout"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(root.path().join(format!("logs/sm0.{f}.log")))
                .unwrap_or_default()
        })
        .collect();
    assert!(
        log.contains("above this service's limit"),
        "no log line named the refused frames"
    );
}
