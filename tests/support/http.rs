//! A minimal HTTP/1.1 client over `TcpStream`, and a `diskv serve` node for tests.
//!
//! Hand-written rather than a client crate so tests control every byte on the wire
//! (raw paths, invalid UTF-8 bodies, malformed requests, half-sent requests) and
//! add no dependency. One request per connection (`Connection: close`).

use super::process::{diskv_bin, reserve_addrs, wait_for, Process};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one request may take before the test fails.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, byte-exact.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body without one trailing newline: an error message.
    pub fn message(&self) -> String {
        let t = self.text();
        t.strip_suffix('\n').unwrap_or(&t).to_string()
    }
}

/// Sends `raw` bytes as they are and reads the whole response (until the server
/// closes the connection).
pub fn raw(addr: &str, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(REQUEST_LIMIT))?;
    s.set_write_timeout(Some(REQUEST_LIMIT))?;
    s.write_all(raw)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse(&buf)
}

/// One request: `method path` with `body` (Content-Length always sent).
pub fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> std::io::Result<Response> {
    let mut msg = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(body);
    raw(addr, &msg)
}

/// Parses one HTTP/1.1 response (Content-Length or read-to-close framing).
pub fn parse(buf: &[u8]) -> std::io::Result<Response> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `PUT /kv/{key}`; panics if the request fails.
pub fn put(addr: &str, key: &str, value: &str) -> Response {
    request(addr, "PUT", &format!("/kv/{key}"), value.as_bytes())
        .unwrap_or_else(|e| panic!("PUT {key}: {e}"))
}

/// `GET /kv/{key}`; panics if the request fails.
pub fn get(addr: &str, key: &str) -> Response {
    request(addr, "GET", &format!("/kv/{key}"), b"").unwrap_or_else(|e| panic!("GET {key}: {e}"))
}

/// `DELETE /kv/{key}`; panics if the request fails.
pub fn delete(addr: &str, key: &str) -> Response {
    request(addr, "DELETE", &format!("/kv/{key}"), b"")
        .unwrap_or_else(|e| panic!("DELETE {key}: {e}"))
}

/// The value of `key`, `None` on 404; panics on any other answer.
pub fn value(addr: &str, key: &str) -> Option<String> {
    let r = get(addr, key);
    match r.status {
        200 => Some(r.text()),
        404 => None,
        s => panic!("GET {key}: status {s}: {}", r.text()),
    }
}

/// Sets `key`, panicking unless the answer is 200.
pub fn must_put(addr: &str, key: &str, value: &str) {
    let r = put(addr, key, value);
    assert_eq!(r.status, 200, "PUT {key}: {}", r.text());
}

/// A `diskv serve` process on a data directory, restartable.
pub struct ServeNode {
    // First, so the process is killed before anything else is dropped.
    proc: Option<Process>,
    /// `127.0.0.1:PORT` of the HTTP API.
    pub addr: String,
    /// The data directory.
    pub data: PathBuf,
    logs: PathBuf,
    starts: usize,
}

/// How long a node may take to print `Loaded N keys`.
pub const START_LIMIT: Duration = Duration::from_secs(30);

impl ServeNode {
    /// Starts `diskv serve --listen 127.0.0.1:<free> --data-dir <root>/data`, logs
    /// in `<root>/logs`, and waits until it is ready.
    pub fn start(root: &Path) -> ServeNode {
        let mut node = ServeNode {
            proc: None,
            addr: reserve_addrs(1).remove(0),
            data: root.join("data"),
            logs: root.join("logs"),
            starts: 0,
        };
        node.restart();
        node
    }

    /// The running process.
    pub fn process(&mut self) -> &mut Process {
        self.proc.as_mut().expect("the node is running")
    }

    /// Starts the process again (after a stop) and waits until it is ready; returns
    /// the `N` of its `Loaded N keys` line. The API gets a fresh port each time (a
    /// port left free meanwhile could be taken by any outgoing connection).
    pub fn restart(&mut self) -> usize {
        assert!(self.proc.is_none(), "the node is already running");
        if self.starts > 0 {
            self.addr = reserve_addrs(1).remove(0);
        }
        self.starts += 1;
        let name = format!("serve-{}", self.starts);
        let data = self.data.display().to_string();
        let p = Process::spawn(
            &name,
            &self.logs,
            diskv_bin(),
            ["serve", "--listen", &self.addr, "--data-dir", &data],
        );
        self.proc = Some(p);
        self.wait_loaded()
    }

    /// Waits for `Server listening on ADDR` and `Loaded N keys from DIR`; returns N.
    pub fn wait_loaded(&mut self) -> usize {
        let data = self.data.display().to_string();
        let addr = self.addr.clone();
        let p = self.process();
        wait_for(START_LIMIT, "diskv serve ready", || {
            assert!(
                p.is_running(),
                "diskv serve exited during start-up:\n{}",
                p.stderr_tail(30)
            );
            let out = p.stdout();
            let listening = out
                .lines()
                .any(|l| l == format!("Server listening on {addr}"));
            let loaded = out.lines().find_map(|l| {
                l.strip_prefix("Loaded ")?
                    .strip_suffix(&format!(" keys from {data}"))?
                    .parse::<usize>()
                    .ok()
            });
            loaded.filter(|_| listening)
        })
    }

    /// SIGTERM; asserts a clean exit (status 0) within 5 s.
    pub fn sigterm(&mut self) {
        let mut p = self.proc.take().expect("the node is running");
        p.sigterm();
        let status = p.wait_exit(Duration::from_secs(5));
        assert!(
            status.is_some_and(|s| s.success()),
            "diskv serve did not exit 0 within 5 s of SIGTERM ({status:?}):\n{}",
            p.stderr_tail(30)
        );
    }

    /// SIGKILL at once.
    pub fn kill9(&mut self) {
        let mut p = self.proc.take().expect("the node is running");
        p.kill9();
    }
}
