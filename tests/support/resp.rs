//! `diskv serve --resp` as a test fixture, and a raw RESP client: encode a
//! command, read one reply line, read a process's memory.

use super::http::START_LIMIT;
use super::process::{diskv_bin, reserve_addrs, wait_for, Process};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

/// Deadline of one client call (a write waits for an fsync on a busy machine).
pub const CALL: Duration = Duration::from_secs(30);
/// One mebibyte.
pub const MB: usize = 1 << 20;

/// A `diskv serve --resp` process, killed by pid when dropped.
pub struct RespNode {
    /// The process.
    pub proc: Process,
    /// Its HTTP API.
    pub http: String,
    /// Its Redis protocol listener.
    pub resp: String,
}

impl RespNode {
    /// Starts `diskv serve --resp` in `root` and waits until it serves.
    pub fn start(root: &Path) -> RespNode {
        RespNode::start_with_nofile(root, None)
    }

    /// [`RespNode::start`] with the child's descriptor limit set to `nofile`.
    pub fn start_with_nofile(root: &Path, nofile: Option<u64>) -> RespNode {
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
        RespNode {
            proc: p,
            http,
            resp,
        }
    }

    /// A `redis` crate connection with [`CALL`] deadlines.
    pub fn connect(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.resp)).unwrap();
        let con = client.get_connection_with_timeout(CALL).unwrap();
        con.set_read_timeout(Some(CALL)).unwrap();
        con.set_write_timeout(Some(CALL)).unwrap();
        con
    }

    /// A raw socket with [`CALL`] deadlines.
    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(&self.resp).unwrap();
        s.set_read_timeout(Some(CALL)).unwrap();
        s.set_write_timeout(Some(CALL)).unwrap();
        s
    }

    /// Sets `key` to `bytes` bytes over a raw socket.
    pub fn set_big(&self, key: &str, bytes: usize) {
        let mut s = self.raw();
        let value = vec![b'v'; bytes];
        s.write_all(&command(&[b"SET", key.as_bytes(), &value]))
            .unwrap();
        assert_eq!(line(&mut s), "+OK\r\n");
    }
}

/// `VmRSS` or `VmHWM` of `pid` in bytes.
pub fn mem(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap()
        * 1024
}

/// A command as a RESP array of bulk strings.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply line (enough for `+OK`, `:n`, `-ERR ...`).
pub fn line(s: &mut TcpStream) -> String {
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

/// Sends `request` to `node` on a raw socket that then does not read, and
/// watches the server's peak memory (`VmHWM`) for 15 s: how much it grew over
/// its resident memory before, in bytes, with the socket (still unread).
pub fn growth_while_unread(node: &RespNode, request: &[u8]) -> (usize, TcpStream) {
    let pid = node.proc.pid();
    let before = mem(pid, "VmRSS:");
    let mut s = node.raw();
    s.write_all(request).unwrap();
    let started = std::time::Instant::now();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(15) {
        peak = peak.max(mem(pid, "VmHWM:"));
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("RSS before {} MB, peak {} MB", before / MB, peak / MB);
    (peak.saturating_sub(before), s)
}
