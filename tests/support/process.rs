//! Running the real `diskv` binary from integration tests.
//!
//! - [`reserve_addrs`]: free `127.0.0.1` ports for daemons to listen on.
//! - [`Process`]: a spawned daemon whose stdout and stderr go to log files in the
//!   test's directory. It is killed (SIGKILL, by pid) and reaped when dropped, even
//!   when the test panics — then the tail of its logs is printed to help debugging.
//!   [`Process::kill9`], [`Process::sigterm`], [`Process::sigstop`],
//!   [`Process::sigcont`] and [`Process::wait_exit`] drive it.
//! - [`run`]: a short command (an admin command, a client) run to completion with a
//!   deadline, its output captured.
//! - [`wait_until`] / [`wait_for`]: poll a condition until a deadline, instead of
//!   sleeping and hoping.
//!
//! Processes are only ever signalled by the pid of a child this harness spawned and
//! has not reaped yet, so a signal can never reach an unrelated process.

use std::ffi::OsStr;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `diskv` binary built for this test run.
pub fn diskv_bin() -> &'static str {
    env!("CARGO_BIN_EXE_diskv")
}

/// The ports [`reserve_addrs`] hands out: below Linux's default ephemeral range
/// (32768–60999), so an outgoing connection of some other process cannot be given
/// one of them by the kernel between the reservation and the daemon's bind.
const RESERVABLE: std::ops::Range<u16> = 12_000..32_000;

/// `n` distinct `127.0.0.1:PORT` addresses that were free a moment ago and that no
/// earlier call in this test binary returned, so daemons started at different
/// moments of one test (or by tests running in parallel) never get the same port.
/// The walk starts at an offset derived from the pid, so test binaries run at the
/// same time mostly use different ports too.
pub fn reserve_addrs(n: usize) -> Vec<String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(RESERVABLE.end - RESERVABLE.start);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..span {
        if addrs.len() == n {
            break;
        }
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = RESERVABLE.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            addrs.push(format!("127.0.0.1:{port}"));
        }
    }
    assert_eq!(addrs.len(), n, "no {n} free ports left in {RESERVABLE:?}");
    addrs
}

/// A spawned child process, killed by pid when dropped.
pub struct Process {
    name: String,
    child: Child,
    /// Set once the child has been reaped; its pid may then belong to someone else.
    status: Option<ExitStatus>,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
}

impl Process {
    /// Spawns `program args` with stdin closed and stdout / stderr appended to
    /// `log_dir/NAME.stdout.log` and `log_dir/NAME.stderr.log`.
    pub fn spawn<I, S>(name: &str, log_dir: &Path, program: &str, args: I) -> Process
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::spawn_with(name, log_dir, program, args, |_| {})
    }

    /// Like [`Process::spawn`], letting `configure` adjust the command (environment,
    /// working directory) before it starts.
    pub fn spawn_with<I, S>(
        name: &str,
        log_dir: &Path,
        program: &str,
        args: I,
        configure: impl FnOnce(&mut Command),
    ) -> Process
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        std::fs::create_dir_all(log_dir).expect("create the log directory");
        let stdout_log = log_dir.join(format!("{name}.stdout.log"));
        let stderr_log = log_dir.join(format!("{name}.stderr.log"));
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", p.display()))
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(open(&stdout_log))
            .stderr(open(&stderr_log));
        configure(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name} ({program}): {e}"));
        Process {
            name: name.to_string(),
            child,
            status: None,
            stdout_log,
            stderr_log,
        }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_log).unwrap_or_default()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// The exit status if the child has exited (reaping it), `None` while it runs.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Whether the child is still running (a stopped child counts as running).
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Sends `signal` to the child, if it has not been reaped.
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.is_running() {
            // The child is not reaped, so its pid is still ours (at worst a zombie).
            let pid = self.pid() as libc::pid_t;
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// SIGKILL, then waits for the child to exit (reaping it).
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        let status = self.child.wait().expect("wait for a killed child");
        self.status = Some(status);
        status
    }

    /// SIGTERM (asks for a clean stop; see [`Process::wait_exit`]).
    pub fn sigterm(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGSTOP: freezes the child (it holds its ports but answers nothing).
    pub fn sigstop(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT: resumes a frozen child.
    pub fn sigcont(&mut self) {
        self.signal(libc::SIGCONT);
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last `lines` lines of the child's stderr.
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&self.stderr(), lines)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_running() {
            self.sigcont();
            self.kill9();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {}, {:?}): last lines of stderr ----\n{}",
                self.name,
                self.child.id(),
                self.status,
                self.stderr_tail(30)
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a command run by [`run`] did.
#[derive(Debug)]
pub struct Output {
    /// Its exit status; `None` if it was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Output {
    /// True if it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `program args` to completion with stdin closed, capturing its output. If it
/// is still running after `timeout` it is killed and `status` is `None`.
pub fn run<I, S>(program: &str, args: I, timeout: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_input(program, args, None, timeout)
}

/// [`run`] with `input` (if any) written to stdin, which is then closed.
pub fn run_with_input<I, S>(
    program: &str,
    args: I,
    input: Option<Vec<u8>>,
    timeout: Duration,
) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {program}: {e}"));
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        // A thread, so a child that does not read cannot block the test; the
        // pipe closes when the thread ends.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&input);
        });
    }
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(s) => break Some(s),
            None if Instant::now() >= deadline => {
                let _ = child.kill(); // by pid: the child is not reaped yet
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(limit, what, || cond().then_some(()))
}

/// Polls `f` every 20 ms until it returns `Some`; panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not true after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
