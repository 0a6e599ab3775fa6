//! A `diskv client` child process speaking the line protocol (docs/REFERENCE.md §4),
//! with piped stdin and stdout, killed by pid when dropped.

use super::process::diskv_bin;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

/// Longest a single client request may take while its group is healthy.
pub const REPLY_LIMIT: Duration = Duration::from_secs(30);

/// A `diskv client` child with piped stdin and stdout, killed by pid when dropped.
pub struct Client {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr_log: PathBuf,
    reply_limit: Duration,
}

impl Client {
    pub fn spawn(name: &str, masters: &str, log_dir: &Path) -> Client {
        Client::spawn_cmd(name, masters, log_dir, Command::new(diskv_bin()))
    }

    /// Like [`Client::spawn`], inside network namespace `netns` (`ip netns exec`,
    /// which execs the client: its pid is the client's).
    pub fn spawn_in(name: &str, masters: &str, log_dir: &Path, netns: &str) -> Client {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, diskv_bin()]);
        Client::spawn_cmd(name, masters, log_dir, cmd)
    }

    fn spawn_cmd(name: &str, masters: &str, log_dir: &Path, mut cmd: Command) -> Client {
        std::fs::create_dir_all(log_dir).expect("log dir");
        let stderr_log = log_dir.join(format!("client-{name}.stderr.log"));
        let err = std::fs::File::create(&stderr_log).expect("client stderr log");
        let mut child = cmd
            .args(["client", "--masters", masters])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn diskv client");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("client stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Client {
            name: name.to_string(),
            child,
            stdin,
            lines: rx,
            stderr_log,
            reply_limit: REPLY_LIMIT,
        }
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("client {}: write {line:?}: {e}", self.name));
    }

    /// The next reply line, or `None` if none came within `limit`.
    pub fn try_recv(&mut self, limit: Duration) -> Option<String> {
        match self.lines.recv_timeout(limit) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!(
                "client {}: stdout closed; stderr: {}",
                self.name,
                std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
            ),
        }
    }

    /// Waits up to `limit` (instead of [`REPLY_LIMIT`]) for each reply of
    /// [`Client::recv`] and [`Client::req`].
    pub fn set_reply_limit(&mut self, limit: Duration) {
        self.reply_limit = limit;
    }

    pub fn recv(&mut self) -> String {
        let limit = self.reply_limit;
        self.try_recv(limit).unwrap_or_else(|| {
            panic!(
                "client {}: no reply within {limit:?}; stderr: {}",
                self.name,
                std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
            )
        })
    }

    /// Waits up to `limit` for the client to exit and returns its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next stdout line as the channel sees it: a line, a timeout, or the end
    /// of stdout (`Disconnected`).
    pub fn next_line(&mut self, limit: Duration) -> Result<String, RecvTimeoutError> {
        self.lines.recv_timeout(limit)
    }

    /// Reads the reply to `SCAN start end`: the BEGIN line, the pairs, the END line.
    pub fn recv_scan(&mut self, start: &str, end: &str) -> Vec<(String, String)> {
        let begin = self.recv();
        assert_eq!(
            begin,
            format!("SCAN {start} {end} BEGIN"),
            "client {}",
            self.name
        );
        self.recv_pairs()
    }

    /// Reads the `  k v` lines of a Scan reply up to and including `SCAN END`.
    pub fn recv_pairs(&mut self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        loop {
            let line = self.recv();
            if line == "SCAN END" {
                return pairs;
            }
            let (k, v) = line
                .strip_prefix("  ")
                .and_then(|kv| kv.split_once(' '))
                .unwrap_or_else(|| panic!("client {}: scan line {line:?}", self.name));
            pairs.push((k.to_string(), v.to_string()));
        }
    }

    /// Sends `SCAN start end` and returns the pairs of its reply.
    pub fn scan(&mut self, start: &str, end: &str) -> Vec<(String, String)> {
        self.send(&format!("SCAN {start} {end}"));
        self.recv_scan(start, end)
    }

    /// Sends one request and returns its (single-line) reply.
    pub fn req(&mut self, line: &str) -> String {
        self.send(line);
        self.recv()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stdin.take();
        if self.child.try_wait().ok().flatten().is_none() {
            // By pid: the child has not been reaped.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the cluster serves requests (start-up, join, elections).
pub fn wait_serving(c: &mut Client) {
    c.send("GET warmup");
    let deadline = Duration::from_secs(60);
    let r = c
        .try_recv(deadline)
        .unwrap_or_else(|| panic!("the cluster did not serve within {deadline:?}"));
    assert_eq!(r, "GET warmup null");
}
