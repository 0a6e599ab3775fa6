//! A peer's server process (an `etcd` member, a `redis-server`): started with its
//! output in a log file, killed by pid when dropped (also when a launch fails half
//! way or the benchmark panics), and told to die with the benchmark on Linux.

use super::PeerError;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often readiness is polled while a peer starts.
const POLL: Duration = Duration::from_millis(100);

/// One running server process of a peer.
pub struct Daemon {
    name: String,
    log: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `program args`, with stdout and stderr in `<log_dir>/<name>.log`.
    pub fn spawn(
        name: &str,
        program: &str,
        args: &[String],
        log_dir: &Path,
    ) -> Result<Daemon, PeerError> {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).map_err(|e| PeerError::Io {
            what: format!("create {}", log.display()),
            source: e,
        })?;
        let err = out.try_clone().map_err(|e| PeerError::Io {
            what: format!("open {}", log.display()),
            source: e,
        })?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        diskv_launch::children::stop_with_launcher(&mut cmd);
        let child = cmd.spawn().map_err(|e| PeerError::Start {
            program: program.to_string(),
            source: e,
        })?;
        tracing::info!(name, pid = child.id(), program, log = %log.display(), "peer started");
        Ok(Daemon {
            name: name.to_string(),
            log,
            child,
        })
    }

    /// An error if the process has exited (with the tail of its log).
    pub fn check_running(&mut self) -> Result<(), PeerError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(PeerError::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log_tail: self.log_tail(20),
            }),
            Err(e) => Err(PeerError::Io {
                what: format!("wait for {}", self.name),
                source: e,
            }),
        }
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGKILL by pid (Child::kill), then reap so no zombie is left behind.
        if let Err(e) = self.child.kill() {
            tracing::warn!(name = %self.name, error = %e, "cannot kill peer");
        }
        let _ = self.child.wait();
        tracing::info!(name = %self.name, pid = self.child.id(), "peer stopped");
    }
}

/// Polls `ready` until it returns true, failing if a daemon exits or `timeout` passes.
pub async fn wait_ready<F, Fut>(
    what: &str,
    daemons: &mut [Daemon],
    timeout: Duration,
    mut ready: F,
) -> Result<(), PeerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        for d in daemons.iter_mut() {
            d.check_running()?;
        }
        if ready().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let log_tail = daemons.first().map(|d| d.log_tail(20)).unwrap_or_default();
            return Err(PeerError::NotReady {
                what: what.to_string(),
                waited: timeout,
                log_tail,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
