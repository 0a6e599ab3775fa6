//! Attacks on the RESP front door (review branches attack-resp and attack-ops):
//! process tests of the memory, descriptor and scan limits a hostile or merely
//! large workload could break. Each test names its finding; see
//! docs/attacks/resp-door.md and docs/attacks/new-ops.md. The two findings
//! still open are ignored with their reason.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::resp::{command, growth_while_unread, line, mem, RespNode, CALL, MB};

/// Found by the attack (fixed since; the test now guards it): MGET builds its whole reply in memory (and then a second, encoded
/// copy), with no bound but the 1,048,576-argument limit. A 2 KB request naming
/// one 16 MiB key 64 times makes the server (which is also the replica, in
/// `diskv serve`) allocate about 2 GiB; naming it 10,000 times asks for 320 GB
/// and the kernel OOM-kills the durable store. KEYS holds every value too.
#[test]
fn attack_mget_of_one_big_value_many_times_is_unbounded() {
    let root = tempfile::tempdir().unwrap();
    let node = RespNode::start(root.path());
    node.set_big("big", 16 * MB);
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(std::iter::repeat_n(&b"big"[..], 64));
    let (grew, s) = growth_while_unread(&node, &command(&args));
    drop(s);
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
    let node = RespNode::start(root.path());
    let pid = node.proc.pid();
    let before = mem(pid, "VmRSS:");
    let bulk = vec![b'x'; 16 * MB];
    let mut held = Vec::new();
    for _ in 0..24 {
        let mut s = node.raw();
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
    let node = RespNode::start(root.path());
    let keys: Vec<String> = (0..)
        .map(|i| format!("big:{i}"))
        .filter(|k| shardmaster::shard_of(k.as_bytes(), 10) == 0)
        .take(18)
        .collect();
    for k in &keys {
        node.set_big(k, 16 * MB);
    }
    let mut s = node.raw();
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
    let node = RespNode::start_with_nofile(root.path(), Some(256));
    let mut first = node.raw();
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
    let node = RespNode::start(root.path());
    let mut a = node.raw();
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
    let mut b = node.raw();
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
    let node = RespNode::start(root.path());
    let mut s = node.raw();
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
        let mut c = node.raw();
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
    let node = RespNode::start(root.path());
    node.set_big("k", 1024);
    let pid = node.proc.pid();
    let before = mem(pid, "VmRSS:");
    let s = node.raw();
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
    let node = RespNode::start(root.path());
    let mut conns = Vec::new();
    for _ in 0..4096 {
        conns.push(TcpStream::connect(&node.resp).unwrap());
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut extra = node.raw();
    extra.write_all(b"PING\r\n").unwrap();
    assert_eq!(line(&mut extra), "-ERR max number of clients reached\r\n");
    let first = &mut conns[0];
    first.set_read_timeout(Some(CALL)).unwrap();
    first.write_all(b"PING\r\n").unwrap();
    assert_eq!(line(first), "+PONG\r\n");
}

/// GET of one 16 MiB value on 160 connections that do not read their replies:
/// each GET's value and its encoded reply are allocated before the budget is
/// asked (server.rs: `reply.encode` then `charge.set`), and GET is never
/// charged while it gathers, so the process grows by gigabytes with a
/// 256 MiB budget (measured: +1.6 GB with 64 connections, +3.4 GB peak with 250).
#[test]
#[ignore = "open (docs/attacks/new-ops.md finding 2): values read from the store are charged only once they are in memory; the Clerk pool (64 operations at a time) bounds them, not the budget"]
fn attack_gets_of_a_big_value_on_many_connections_overrun_the_budget() {
    let root = tempfile::tempdir().unwrap();
    let node = RespNode::start(root.path());
    node.set_big("big", 16 * MB);
    let pid = node.proc.pid();
    std::thread::sleep(Duration::from_secs(1));
    let before = mem(pid, "VmHWM:");
    let mut conns = Vec::new();
    for _ in 0..160 {
        let Ok(mut s) = TcpStream::connect(&node.resp) else {
            continue;
        };
        let get = command(&[b"GET", b"big"]);
        let wire: Vec<u8> = get.iter().copied().cycle().take(get.len() * 4).collect();
        if s.write_all(&wire).is_ok() {
            conns.push(s);
        }
    }
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(10) {
        peak = peak.max(mem(pid, "VmHWM:"));
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(conns);
    let grew = peak.saturating_sub(before);
    println!("HWM before {} MB, peak {} MB", before / MB, peak / MB);
    assert!(
        grew < 768 * MB,
        "160 pipelined GETs of one 16 MiB value grew the server by {} MB (budget 256 MiB)",
        grew / MB
    );
}

/// One client fills the budget with unfinished commands (17 connections: 15 MiB
/// each, then 1 MiB and 256 KiB ones until refused; it may keep them open by
/// trickling a byte every few minutes). From then on every other client that
/// needs more than the 64 KiB free allowance is answered "memory ... used up"
/// and disconnected: a legit SET or GET of a 1 MiB value fails for as long as
/// the attacker likes.
#[test]
#[ignore = "open (docs/attacks/new-ops.md finding 3): the budget is first come, first served; one client holding it makes others be closed"]
fn attack_a_full_budget_closes_legit_clients_needing_over_64_kib() {
    let root = tempfile::tempdir().unwrap();
    let node = RespNode::start(root.path());
    node.set_big("one", MB);
    let mut held = Vec::new();
    let sizes = std::iter::repeat_n(15 * MB, 20)
        .chain(std::iter::repeat_n(MB, 20))
        .chain(std::iter::repeat_n(256 << 10, 20));
    for size in sizes {
        let Ok(mut s) = TcpStream::connect(&node.resp) else {
            continue;
        };
        let mut wire = format!("*3\r\n$3\r\nSET\r\n$1\r\nf\r\n${}\r\n", 16 * MB).into_bytes();
        wire.extend(std::iter::repeat_n(b'x', size));
        if s.write_all(&wire).is_ok() {
            std::thread::sleep(Duration::from_millis(200));
            held.push(s);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut legit = node.raw();
    let value = vec![b'v'; MB];
    let _ = legit.write_all(&command(&[b"SET", b"two", &value]));
    let set = line(&mut legit);
    let mut legit = node.raw();
    legit.write_all(&command(&[b"GET", b"one"])).unwrap();
    let get = line(&mut legit);
    drop(held);
    assert!(
        set == "+OK\r\n" && get.starts_with(&format!("${MB}")),
        "while another client held the budget, a legit SET of 1 MiB got {set:?} and a GET of \
         1 MiB got {get:?}"
    );
}
