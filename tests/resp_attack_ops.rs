//! Attack on the RESP door's memory budget (review branch attack-ops): the
//! 256 MiB budget is charged only after a reply is built, and a full budget
//! closes whichever connection next needs more than 64 KiB.

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
    #[allow(dead_code)]
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

/// GET of one 16 MiB value on 160 connections that do not read their replies:
/// each GET's value and its encoded reply are allocated before the budget is
/// asked (server.rs: `reply.encode` then `charge.set`), and GET is never
/// charged while it gathers, so the process grows by gigabytes with a
/// 256 MiB budget (measured: +1.6 GB with 64 connections, +3.4 GB peak with 250).
#[test]
#[ignore = "open (docs/attacks/new-ops.md finding 2): values read from the store are charged only once they are in memory; the Clerk pool (64 operations at a time) bounds them, not the budget"]
fn attack_gets_of_a_big_value_on_many_connections_overrun_the_budget() {
    let root = tempfile::tempdir().unwrap();
    let node = start(root.path(), None);
    set_big(&node, "big", 16 * MB);
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
    let node = start(root.path(), None);
    set_big(&node, "one", MB);
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
    let mut legit = raw(&node);
    let value = vec![b'v'; MB];
    let _ = legit.write_all(&command(&[b"SET", b"two", &value]));
    let set = line(&mut legit);
    let mut legit = raw(&node);
    legit.write_all(&command(&[b"GET", b"one"])).unwrap();
    let get = line(&mut legit);
    drop(held);
    assert!(
        set == "+OK\r\n" && get.starts_with(&format!("${MB}")),
        "while another client held the budget, a legit SET of 1 MiB got {set:?} and a GET of \
         1 MiB got {get:?}"
    );
}
