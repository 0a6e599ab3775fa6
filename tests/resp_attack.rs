//! Attack on the RESP front door (review branch attack-resp): process tests that
//! show memory, descriptor and scan limits a hostile or merely large workload
//! breaks. Each test names its finding; see docs/attacks/resp-door.md.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};
use support::http::START_LIMIT;
use support::process::{diskv_bin, reserve_addrs, wait_for, Process};

const CALL: Duration = Duration::from_secs(30);
const MB: usize = 1 << 20;

struct Node {
    proc: Process,
    http: String,
    resp: String,
}

fn start(root: &Path, nofile: Option<u64>) -> Node {
    let addrs = reserve_addrs(2);
    let (http, resp) = (addrs[0].clone(), addrs[1].clone());
    let data = root.join("data").display().to_string();
    let args = [
        "serve".to_string(),
        "--listen".into(),
        http.clone(),
        "--resp".into(),
        resp.clone(),
        "--data-dir".into(),
        data,
    ];
    let mut p = Process::spawn_with("serve", &root.join("logs"), diskv_bin(), args, |c| {
        if let Some(n) = nofile {
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                c.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    });
    let line = format!("Redis protocol listening on {resp}");
    wait_for(START_LIMIT, "diskv serve --resp ready", || {
        assert!(p.is_running(), "diskv serve exited:\n{}", p.stderr_tail(30));
        p.stdout().lines().any(|l| l == line).then_some(())
    });
    Node {
        proc: p,
        http,
        resp,
    }
}

/// `VmRSS` or `VmHWM` of `pid` in bytes.
fn mem(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap()
        * 1024
}

fn raw(node: &Node) -> TcpStream {
    let s = TcpStream::connect(&node.resp).unwrap();
    s.set_read_timeout(Some(CALL)).unwrap();
    s.set_write_timeout(Some(CALL)).unwrap();
    s
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply line (enough for `+OK`, `:n`, `-ERR ...`).
fn line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        match s.read(&mut b) {
            Ok(1) => out.push(b[0]),
            Ok(_) => break,
            Err(e) => return format!("<read failed: {e}>"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn set_big(node: &Node, key: &str, bytes: usize) {
    let mut s = raw(node);
    let value = vec![b'v'; bytes];
    s.write_all(&command(&[b"SET", key.as_bytes(), &value]))
        .unwrap();
    assert_eq!(line(&mut s), "+OK\r\n");
}

/// Found by the attack (fixed since; the test now guards it): MGET builds its whole reply in memory (and then a second, encoded
/// copy), with no bound but the 1,048,576-argument limit. A 2 KB request naming
/// one 16 MiB key 64 times makes the server (which is also the replica, in
/// `diskv serve`) allocate about 2 GiB; naming it 10,000 times asks for 320 GB
/// and the kernel OOM-kills the durable store. KEYS holds every value too.
#[test]
fn attack_mget_of_one_big_value_many_times_is_unbounded() {
    let root = tempfile::tempdir().unwrap();
    let node = start(root.path(), None);
    set_big(&node, "big", 16 * MB);
    let pid = node.proc.pid();
    let before = mem(pid, "VmRSS:");
    let mut s = raw(&node);
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(std::iter::repeat_n(&b"big"[..], 64));
    s.write_all(&command(&args)).unwrap();
    // Do not read: watch the server's peak while the reply is built and queued.
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(15) {
        peak = peak.max(mem(pid, "VmHWM:"));
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(s);
    let grew = peak.saturating_sub(before);
    println!("RSS before {} MB, peak {} MB", before / MB, peak / MB);
    assert!(
        grew < 512 * MB,
        "one 2 KB MGET made the server grow by {} MB (no bound on a reply)",
        grew / MB
    );
}

/// Found by the attack (fixed since; the test now guards it): each connection may hold one unfinished command of up to 64 MiB of
/// arguments (plus a 17 MiB bulk in its read buffer), and nothing bounds the sum
/// over the 4,096 connections allowed (~330 GB). The peer transport has a
/// process-wide budget for half-received frames (1 GiB, `FRAME_BUDGET_BYTES`);
/// the RESP door has none. 24 connections that never finish a command hold 1.5 GB.
#[test]
fn attack_unfinished_commands_have_no_process_wide_budget() {
    let root = tempfile::tempdir().unwrap();
    let node = start(root.path(), None);
    let pid = node.proc.pid();
    let before = mem(pid, "VmRSS:");
    let bulk = vec![b'x'; 16 * MB];
    let mut held = Vec::new();
    for _ in 0..24 {
        let mut s = raw(&node);
        // *10: SET plus three 16 MiB bulks and one 15 MiB: 63 MiB, under the
        // 64 MiB command limit; the other 5 elements never come.
        let mut wire = b"*10\r\n$3\r\nSET\r\n".to_vec();
        for _ in 0..3 {
            wire.extend_from_slice(format!("${}\r\n", bulk.len()).as_bytes());
            wire.extend_from_slice(&bulk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(format!("${}\r\n", 15 * MB).as_bytes());
        wire.extend_from_slice(&bulk[..15 * MB]);
        wire.extend_from_slice(b"\r\n");
        // Once the door's memory budget is used up it answers and closes the
        // connection, so the write may fail half-way: that is the defence.
        if s.write_all(&wire).is_ok() {
            held.push(s);
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let now = mem(pid, "VmRSS:");
    println!(
        "RSS before {} MB, with 24 unfinished commands {} MB",
        before / MB,
        now / MB
    );
    drop(held);
    assert!(
        now.saturating_sub(before) < 1024 * MB,
        "24 unfinished commands hold {} MB of the server's memory",
        (now - before) / MB
    );
}

/// Found by the attack (fixed since; the test now guards it): SCAN (and KEYS, DBSIZE, INFO keyspace) asks every shard for every
/// key *and value* after the cursor in one RPC reply. Once one shard holds more
/// than the 256 MiB RPC frame limit (17 values of 16 MiB), that reply can never
/// be sent: `SCAN 0 COUNT 1` retries until the 10 s deadline and answers
/// "no answer from the store ... a write may or may not have taken effect", on
/// every call, for good. SCAN exists precisely for stores too large for KEYS.
#[test]
fn attack_scan_count_1_fails_once_a_shard_outgrows_the_rpc_frame() {
    let root = tempfile::tempdir().unwrap();
    let node = start(root.path(), None);
    let keys: Vec<String> = (0..)
        .map(|i| format!("big:{i}"))
        .filter(|k| shardmaster::shard_of(k.as_bytes(), 10) == 0)
        .take(18)
        .collect();
    for k in &keys {
        set_big(&node, k, 16 * MB);
    }
    let mut s = raw(&node);
    let started = Instant::now();
    s.write_all(&command(&[b"SCAN", b"0", b"COUNT", b"1"]))
        .unwrap();
    let first = line(&mut s);
    println!(
        "SCAN 0 COUNT 1 answered {first:?} after {:?}",
        started.elapsed()
    );
    assert!(
        first.starts_with("*2"),
        "SCAN 0 COUNT 1 over 18 keys of 16 MiB answered {first:?}"
    );
}

/// Found by the attack (fixed since; the test now guards it): the RESP door's connection limit (4,096) is not tied to the
/// process's descriptor limit, unlike the peer transport's (three quarters of
/// it). Under `ulimit -n 256` (1,024 is a common default), 300 idle
/// connections from one client use every descriptor: a new client is neither
/// served nor told `-ERR max number of clients reached` (accept fails with
/// EMFILE and the connection sits in the backlog).
#[test]
fn attack_idle_connections_exhaust_descriptors_before_the_limit() {
    let root = tempfile::tempdir().unwrap();
    let node = start(root.path(), Some(256));
    let mut first = raw(&node);
    first.write_all(&command(&[b"SET", b"k", b"v"])).unwrap();
    assert_eq!(line(&mut first), "+OK\r\n");
    let mut flood = Vec::new();
    for _ in 0..300 {
        match TcpStream::connect(&node.resp) {
            Ok(s) => flood.push(s),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    // The connection opened before the flood still works?
    first.write_all(&command(&[b"SET", b"k", b"w"])).unwrap();
    let old = line(&mut first);
    // A new client gets an answer: PONG, or the refusal the README promises.
    let mut late = TcpStream::connect(&node.resp).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    late.write_all(b"PING\r\n").unwrap();
    let got = line(&mut late);
    // And HTTP on the same process?
    let http = support::http::request(&node.http, "GET", "/kv/k", b"").map(|r| r.text());
    println!("old connection: {old:?}; new RESP client: {got:?}; HTTP: {http:?}");
    drop(flood);
    assert!(
        got == "+PONG\r\n" || got.starts_with("-ERR max number of clients"),
        "after 300 idle connections a new RESP client got {got:?}"
    );
}

/// Found by the attack (fixed since: cursors belong to their connection): the SCAN
/// cursor table is one FIFO of 10,000 entries shared by every connection, and a
/// cursor is saved for every SCAN page. One client sending 10,000 `SCAN 0 COUNT
/// 1` (cheap on a small store) pushes out every other client's cursor, so their
/// walks end in `-ERR invalid cursor` and can be kept from ever finishing.
#[test]
fn attack_one_client_evicts_every_other_clients_scan_cursor() {
    let root = tempfile::tempdir().unwrap();
    let node = start(root.path(), None);
    let mut a = raw(&node);
    a.write_all(
        &[
            command(&[b"SET", b"k1", b"v"]),
            command(&[b"SET", b"k2", b"v"]),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(line(&mut a), "+OK\r\n");
    assert_eq!(line(&mut a), "+OK\r\n");
    let client = redis::Client::open(format!("redis://{}/", node.resp)).unwrap();
    let mut victim = client.get_connection_with_timeout(CALL).unwrap();
    let (cursor, _): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(1)
        .query(&mut victim)
        .unwrap();
    assert_ne!(cursor, 0);
    // The other client: 10,000 pipelined SCAN 0 COUNT 1.
    let mut b = raw(&node);
    let mut wire = Vec::new();
    for _ in 0..10_000 {
        wire.extend(command(&[b"SCAN", b"0", b"COUNT", b"1"]));
    }
    let mut w = b.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&wire).unwrap());
    let mut replies = 0;
    let mut buf = vec![0u8; 1 << 16];
    let mut got = Vec::new();
    while replies < 10_000 {
        let n = b.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
        replies = got.windows(4).filter(|w| w == b"*2\r\n").count();
    }
    writer.join().unwrap();
    let next: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
        .arg(cursor)
        .arg("COUNT")
        .arg(1)
        .query(&mut victim);
    assert!(next.is_ok(), "the victim's SCAN walk was cut off: {next:?}");
}

// ---- attacks that held up (these pass) ----------------------------------------

/// Held up: a key present for a whole SCAN iteration is returned, while other
/// clients add and delete keys all around it.
#[test]
fn attack_scan_returns_every_stable_key_under_churn() {
    let root = tempfile::tempdir().unwrap();
    let node = start(root.path(), None);
    let mut s = raw(&node);
    let stable: Vec<String> = (0..150).map(|i| format!("s:{i:03}")).collect();
    let mut wire = Vec::new();
    for k in &stable {
        wire.extend(command(&[b"SET", k.as_bytes(), b"v"]));
    }
    s.write_all(&wire).unwrap();
    for _ in &stable {
        assert_eq!(line(&mut s), "+OK\r\n");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let mut c = raw(&node);
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Keys sorting before, between and after the stable ones.
                for p in ["a", "s:0x", "s:05x", "s:1x", "z"] {
                    let k = format!("{p}{i}");
                    c.write_all(&command(&[b"SET", k.as_bytes(), b"x"]))
                        .unwrap();
                    line(&mut c);
                    let old = format!("{p}{}", i.saturating_sub(3));
                    c.write_all(&command(&[b"DEL", old.as_bytes()])).unwrap();
                    line(&mut c);
                }
                i += 1;
            }
        })
    };
    let client = redis::Client::open(format!("redis://{}/", node.resp)).unwrap();
    let mut con = client.get_connection_with_timeout(CALL).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(3)
            .query(&mut con)
            .unwrap();
        seen.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    let missing: Vec<&String> = stable.iter().filter(|k| !seen.contains(*k)).collect();
    assert!(missing.is_empty(), "SCAN skipped stable keys {missing:?}");
}

/// Held up: a client that pipelines 200,000 GETs of a 1 KiB value and never
/// reads its replies does not grow the server (replies are flushed at 1 MiB,
/// and the server stops reading while a write is blocked).
#[test]
fn attack_pipelining_without_reading_is_bounded() {
    let root = tempfile::tempdir().unwrap();
    let node = start(root.path(), None);
    set_big(&node, "k", 1024);
    let pid = node.proc.pid();
    let before = mem(pid, "VmRSS:");
    let s = raw(&node);
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(8))).unwrap();
    let writer = std::thread::spawn(move || {
        let one = command(&[b"GET", b"k"]);
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
        for _ in 0..200 {
            if w.write_all(&batch).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(10));
    let now = mem(pid, "VmRSS:");
    println!(
        "RSS before {} MB, while flooded {} MB",
        before / MB,
        now / MB
    );
    drop(s);
    writer.join().unwrap();
    assert!(
        now.saturating_sub(before) < 64 * MB,
        "grew {} MB",
        (now - before) / MB
    );
}

/// Held up: with descriptors to spare, connection 4,097 is told
/// `-ERR max number of clients reached` and the first 4,096 keep working.
#[test]
fn attack_connection_4097_is_refused_in_redis_words() {
    let root = tempfile::tempdir().unwrap();
    let node = start(root.path(), None);
    let mut conns = Vec::new();
    for _ in 0..4096 {
        conns.push(TcpStream::connect(&node.resp).unwrap());
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut extra = raw(&node);
    extra.write_all(b"PING\r\n").unwrap();
    assert_eq!(line(&mut extra), "-ERR max number of clients reached\r\n");
    let first = &mut conns[0];
    first.set_read_timeout(Some(CALL)).unwrap();
    first.write_all(b"PING\r\n").unwrap();
    assert_eq!(line(first), "+PONG\r\n");
}
