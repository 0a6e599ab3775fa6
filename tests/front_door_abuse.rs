//! The front doors of the real binary under abuse (issue #18).
//!
//! - `diskv serve` under slow senders (deliverable 3): 300 connections trickling
//!   headers or bodies one byte a second do not stop a normal client's PUT and
//!   GET from being answered promptly, hold no Clerk, and are cut by the server
//!   (bodies with 408 by the minimum-rate rule, headers by the header deadline);
//!   nothing they sent is stored.
//! - `diskv client` fed a line that is not UTF-8 answers it with one `ERROR`
//!   line and goes on with the next lines.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::http::{must_put, request, value, ServeNode};
use support::process::{diskv_bin, run_with_input};

/// How long a normal request may take while the slow senders trickle.
const PROMPT: Duration = Duration::from_secs(1);

/// Slow connections of each kind.
const SLOW: usize = 150;

/// One slow connection and whether the server has ended it.
struct Slow {
    stream: TcpStream,
    body: bool,
    /// What the server sent before closing (empty for a silent close).
    answer: Option<Vec<u8>>,
}

impl Slow {
    fn open(addr: &str, body: bool) -> Slow {
        let mut stream = TcpStream::connect(addr).unwrap();
        let first: &[u8] = if body {
            b"PUT /kv/slow HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nx"
        } else {
            b"GET /kv/slow HTTP/1.1\r\nHo"
        };
        stream.write_all(first).unwrap();
        stream.set_nonblocking(true).unwrap();
        Slow {
            stream,
            body,
            answer: None,
        }
    }

    /// Sends one more byte unless the server has ended the connection; notes
    /// what the server sent once it closes.
    fn tick(&mut self) {
        if self.answer.is_some() {
            return;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.answer = Some(got);
                    return;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.answer = Some(got);
                    return;
                }
            }
        }
        if !got.is_empty() {
            // A response arrived; the close follows.
            self.answer = Some(got);
            return;
        }
        let _ = self.stream.write(b"y");
    }
}

#[test]
fn slow_senders_do_not_starve_normal_clients() {
    let root = tempfile::tempdir().unwrap();
    let node = ServeNode::start(root.path());
    let a = node.addr.as_str();
    must_put(a, "slow", "before");

    let mut slow: Vec<Slow> = (0..2 * SLOW).map(|i| Slow::open(a, i % 2 == 0)).collect();
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    let mut round = 0;
    // Bounded: every slow connection must be ended within 25 s.
    while slow.iter().any(|s| s.answer.is_none()) {
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "{} slow connections still open after {:?}",
            slow.iter().filter(|s| s.answer.is_none()).count(),
            start.elapsed()
        );
        let tick = Instant::now();
        for s in &mut slow {
            s.tick();
        }
        if round < 8 {
            // A normal client, while every slow connection is still trickling.
            let t = Instant::now();
            must_put(a, &format!("normal{round}"), "v");
            assert_eq!(value(a, &format!("normal{round}")).as_deref(), Some("v"));
            let m = request(a, "GET", "/metrics", b"").unwrap().text();
            assert!(
                m.contains("diskv_http_operations_in_flight 0\n"),
                "a slow body holds a Clerk:\n{m}"
            );
            worst = worst.max(t.elapsed());
        }
        round += 1;
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    let took = start.elapsed();
    eprintln!("normal requests took at most {worst:?}; slow ones ended within {took:?}");
    assert!(
        worst < PROMPT * 3,
        "a normal PUT+GET+metrics took {worst:?}"
    );
    for s in &slow {
        let answer = String::from_utf8_lossy(s.answer.as_deref().unwrap_or_default()).into_owned();
        if s.body {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        } else {
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
                "{answer:?}"
            );
        }
    }
    assert_eq!(value(a, "slow").as_deref(), Some("before"));
}

/// The shardmaster address of a `diskv serve` node (from `DATA/ports`).
fn shardmaster_of(node: &ServeNode) -> String {
    let ports = std::fs::read_to_string(node.data.join("ports")).unwrap();
    let ports: serde_json::Value = serde_json::from_str(&ports).unwrap();
    format!("127.0.0.1:{}", ports["shardmaster"].as_u64().unwrap())
}

/// Issue #18: a non-UTF-8 line made `diskv client` exit, skipping the valid
/// lines after it.
#[test]
fn the_line_client_answers_a_non_utf8_line_with_error_and_reads_on() {
    let root = tempfile::tempdir().unwrap();
    let node = ServeNode::start(root.path());
    let masters = shardmaster_of(&node);
    let input = b"PUT a 1\nGET \xff\xfe\n\xc3\nGET a\nSTOP\n".to_vec();
    // `diskv serve` speaks mutual TLS on its internal ports, with the client
    // identity it made in DATA/tls/client.
    let tls_dir = node.data.join("tls").join("client").display().to_string();
    let out = run_with_input(
        diskv_bin(),
        ["client", "--masters", &masters, "--tls-dir", &tls_dir],
        Some(input),
        Duration::from_secs(60),
    );
    assert!(out.success(), "{:?}\n{}", out.status, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    assert_eq!(lines[0], "PUT a not_found");
    for bad in &lines[1..3] {
        assert!(
            bad.starts_with("ERROR the line is not valid UTF-8"),
            "{}",
            out.stdout
        );
    }
    assert_eq!(&lines[3..], ["GET a 1", "STOP"]);
}
