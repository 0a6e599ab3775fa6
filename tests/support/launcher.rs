//! `diskv cluster` as a test fixture: start the launcher, wait until it serves,
//! learn its children's pids from what it prints, and kill those children by pid
//! if the test fails half-way.

use super::process::{diskv_bin, wait_for, Process};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a (re)started cluster may take to serve.
pub const READY_LIMIT: Duration = Duration::from_secs(60);

/// The pids the launcher printed for its children (`..., pid N, ...`).
pub fn child_pids(stdout: &str) -> Vec<i32> {
    stdout.lines().filter_map(pid_on_line).collect()
}

/// The pid the launcher printed for its child `name` (`group-1-replica-0`).
pub fn child_pid(stdout: &str, name: &str) -> Option<i32> {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(pid_on_line)
}

fn pid_on_line(line: &str) -> Option<i32> {
    line.split(", pid ").nth(1)?.split(',').next()?.parse().ok()
}

/// True while `pid` exists (a zombie counts).
pub fn exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence; nothing is delivered.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Kills (by pid) the children of a launcher that did not stop them, when a test
/// fails half-way. Children also get SIGTERM from the kernel when their launcher
/// dies, so this is a second line of defence.
pub struct Orphans(pub Vec<i32>);

impl Drop for Orphans {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if exists(pid) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Starts `diskv cluster --dir DIR --http HTTP ARGS...` (logs of the launcher
/// under `logs`, as `name`) and waits until it serves; returns it with its
/// children's pids.
pub fn launch(
    dir: &Path,
    http: &str,
    logs: &Path,
    name: &str,
    args: &[&str],
) -> (Process, Vec<i32>) {
    launch_with(dir, http, logs, name, args, |_| {})
}

/// [`launch`], letting `configure` adjust the launcher's command (its
/// environment: `RUST_LOG`, `NO_COLOR`) before it starts.
pub fn launch_with(
    dir: &Path,
    http: &str,
    logs: &Path,
    name: &str,
    args: &[&str],
    configure: impl FnOnce(&mut std::process::Command),
) -> (Process, Vec<i32>) {
    let d = dir.display().to_string();
    let mut all = vec!["cluster", "--dir", &d, "--http", http];
    all.extend_from_slice(args);
    let mut p = Process::spawn_with(name, logs, diskv_bin(), all, configure);
    let start = Instant::now();
    let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(READY_LIMIT, "the cluster serves", || {
            assert!(
                p.is_running(),
                "the launcher exited:\n{}\n{}",
                p.stdout(),
                p.stderr_tail(30)
            );
            p.stdout()
                .contains(&format!("Server listening on {http}\n"))
                .then_some(())
        })
    }));
    if let Err(panic) = ready {
        // Not ready: kill the children it printed, by pid, before failing.
        drop(Orphans(child_pids(&p.stdout())));
        std::panic::resume_unwind(panic);
    }
    eprintln!("{name}: ready after {:?}", start.elapsed());
    let pids = child_pids(&p.stdout());
    (p, pids)
}

/// [`launch`] with `--resp RESP` added to `args`, waiting also until the Redis
/// protocol listens.
pub fn launch_with_resp(
    dir: &Path,
    http: &str,
    resp: &str,
    logs: &Path,
    name: &str,
    args: &[&str],
) -> (Process, Vec<i32>) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--resp", resp]);
    let (p, pids) = launch(dir, http, logs, name, &all);
    let line = format!("Redis protocol listening on {resp}\n");
    wait_for(READY_LIMIT, "the Redis protocol listens", || {
        p.stdout().contains(&line).then_some(())
    });
    (p, pids)
}

/// SIGINT to the launcher: it exits 0, says `stopped`, and none of `pids` (its
/// children) is left.
pub fn interrupt(p: &mut Process, pids: &[i32]) {
    let start = Instant::now();
    p.signal(libc::SIGINT);
    let status = p.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "launcher status {status:?}:\n{}",
        p.stderr_tail(30)
    );
    let left: Vec<i32> = pids.iter().copied().filter(|&pid| exists(pid)).collect();
    assert!(left.is_empty(), "children still running: {left:?}");
    assert!(p.stdout().ends_with("stopped\n"), "{}", p.stdout());
    eprintln!("stopped in {:?}", start.elapsed());
}
