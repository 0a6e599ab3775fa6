//! The cluster's processes: each shardmaster and replica is a child process of
//! this binary, with its output in `DIR/logs/<name>.log`. Children are stopped by
//! pid only: SIGTERM, a grace period, then SIGKILL for stragglers.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How long children get to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What one child is and how it is started.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Its name: `shardmaster-0`, `group-1-replica-2`.
    pub name: String,
    /// The address others dial it at: where it listens, unless its `args`
    /// hold `--listen`.
    pub addr: String,
    /// The arguments after the binary.
    pub args: Vec<String>,
}

/// A running (or exited) child.
pub struct Running {
    /// Its spec.
    pub spec: Spec,
    /// Its log file.
    pub log: PathBuf,
    /// Its pid.
    pub pid: u32,
    child: Child,
    exited: Option<ExitStatus>,
}

/// Every child of the launcher.
#[derive(Default)]
pub struct Children {
    list: Vec<Running>,
    /// The program children run, if not this one.
    exe: Option<PathBuf>,
}

impl Children {
    /// Children that run `exe` instead of this program (a benchmark comparing
    /// two builds).
    pub fn running(exe: PathBuf) -> Children {
        Children {
            list: Vec::new(),
            exe: Some(exe),
        }
    }

    /// Starts `spec` as `current_exe() <args>` (or the program of
    /// [`Children::running`]), output appended to
    /// `logs/<name>.log`, in its own process group (so a terminal's Ctrl-C reaches
    /// the launcher only, which stops the children in order).
    pub fn spawn(&mut self, spec: Spec, logs: &Path) -> anyhow::Result<&Running> {
        let exe = match &self.exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe().context("cannot find this program's path")?,
        };
        let log = logs.join(format!("{}.log", spec.name));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("NO_COLOR", "1")
            .process_group(0)
            .kill_on_drop(true);
        stop_with_launcher(cmd.as_std_mut());
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} ({})", spec.name, exe.display()))?;
        let pid = child.id().context("a child without a pid")?;
        tracing::info!(name = %spec.name, pid, addr = %spec.addr, "started");
        self.list.push(Running {
            spec,
            log,
            pid,
            child,
            exited: None,
        });
        Ok(self.list.last().expect("just pushed"))
    }

    /// Children that exited since the last call, with how they ended.
    pub fn newly_exited(&mut self) -> Vec<(&Running, ExitStatus)> {
        let mut changed = Vec::new();
        for (i, r) in self.list.iter_mut().enumerate() {
            if r.exited.is_some() {
                continue;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                r.exited = Some(status);
                changed.push((i, status));
            }
        }
        changed
            .into_iter()
            .map(|(i, s)| (&self.list[i], s))
            .collect()
    }

    /// `kill -9` of the running child named `name` (by pid), waiting until it is
    /// gone; returns its spec, to start it again. `None` if no such child runs.
    pub async fn kill(&mut self, name: &str) -> Option<Spec> {
        let r = self
            .list
            .iter_mut()
            .find(|r| r.spec.name == name && r.exited.is_none())?;
        let _ = r.child.start_kill();
        if let Ok(status) = r.child.wait().await {
            r.exited = Some(status);
        }
        tracing::info!(name, pid = r.pid, "killed");
        Some(r.spec.clone())
    }

    /// The pid of the running child named `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.list
            .iter()
            .find(|r| r.spec.name == name && r.exited.is_none())
            .map(|r| r.pid)
    }

    /// How many children are still running.
    pub fn alive(&self) -> usize {
        self.list.iter().filter(|r| r.exited.is_none()).count()
    }

    /// Stops every child: SIGTERM by pid, up to 5 s to exit, then SIGKILL.
    pub async fn stop(&mut self) {
        for r in self.list.iter_mut().filter(|r| r.exited.is_none()) {
            // SAFETY: kill(2) with a pid of our own, not yet reaped, child.
            if unsafe { libc::kill(r.pid as libc::pid_t, libc::SIGTERM) } != 0 {
                tracing::warn!(name = %r.spec.name, pid = r.pid, error = %std::io::Error::last_os_error(), "SIGTERM failed");
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for r in self.list.iter_mut().filter(|r| r.exited.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, r.child.wait()).await {
                Ok(Ok(status)) => r.exited = Some(status),
                Ok(Err(e)) => tracing::warn!(name = %r.spec.name, error = %e, "cannot wait"),
                Err(_) => {
                    tracing::warn!(name = %r.spec.name, pid = r.pid, "did not stop within {STOP_GRACE:?}; SIGKILL");
                    let _ = r.child.start_kill();
                    if let Ok(status) = r.child.wait().await {
                        r.exited = Some(status);
                    }
                }
            }
        }
    }
}

/// Linux: the child gets SIGTERM when the launcher dies, even by SIGKILL (so no
/// replica outlives a launcher that could not stop it).
#[cfg(target_os = "linux")]
pub fn stop_with_launcher(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let launcher = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes the
    // async-signal-safe calls prctl(2) and getppid(2).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The launcher may have died before prctl: then do not start at all.
            if libc::getppid() as u32 != launcher {
                return Err(std::io::Error::other("the launcher exited"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn stop_with_launcher(_: &mut std::process::Command) {}
