//! Stable internal ports of `diskv serve`.
//!
//! The embedded shardmaster and KV replica listen on 127.0.0.1. The KV group's
//! address is recorded in the shardmaster's configuration when the group joins,
//! and Clerks dial exactly that address; the shardmaster refuses to re-address a
//! joined group (Leave + Join would hand its shards away). So the group must come
//! back on the same port at every start:
//!
//! - `DATA/ports` (JSON `{"shardmaster": P, "group": Q}`) records both ports at
//!   first start; later starts reuse them.
//! - For the group, the shardmaster's latest configuration is the authority (it is
//!   what Clerks use): if the group joined, its recorded port is required; if that
//!   port stays taken, the start fails with an error naming it.
//! - The shardmaster's own port may change safely (nothing durable names it: the
//!   KV replica is given the address at every start); if its port is taken, a new
//!   one is picked with a warning.

use anyhow::Context;
use paxos::fs::{durable, OsFs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long a required port is retried (a previous process may still hold it).
const REQUIRED_PORT_WAIT: Duration = Duration::from_secs(5);

/// The internal ports, as recorded in `DATA/ports`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ports {
    /// The shardmaster's port.
    pub shardmaster: Option<u16>,
    /// The KV group's port.
    pub group: Option<u16>,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("ports")
}

impl Ports {
    /// Reads `DIR/ports`; nothing recorded yet if it is missing.
    pub fn load(dir: &Path) -> anyhow::Result<Ports> {
        let path = path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ports::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let v: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid JSON; fix or delete it (see the README)",
                path.display()
            )
        })?;
        let port = |name: &str| {
            v.get(name)
                .and_then(|p| p.as_u64())
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0)
        };
        Ok(Ports {
            shardmaster: port("shardmaster"),
            group: port("group"),
        })
    }

    /// Writes `DIR/ports` atomically and durably.
    pub fn store(&self, dir: &Path) -> anyhow::Result<()> {
        let path = path(dir);
        let text = serde_json::json!({
            "shardmaster": self.shardmaster,
            "group": self.group,
        })
        .to_string()
            + "\n";
        durable::replace(&OsFs, &path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Binds 127.0.0.1:`port`, or a new port (see [`crate::stable_ports`]) if
/// `port` is `None` or taken. `what` names the listener in the warning.
pub async fn bind_preferred(port: Option<u16>, what: &str) -> anyhow::Result<TcpListener> {
    if let Some(p) = port {
        match TcpListener::bind(("127.0.0.1", p)).await {
            Ok(l) => return Ok(l),
            Err(e) => tracing::warn!(
                port = p,
                error = %e,
                "the {what}'s recorded port is not available; using a new one"
            ),
        }
    }
    let mut last = None;
    // A chosen port is free when chosen; another process may take it before the
    // bind, so try a few.
    for _ in 0..5 {
        let p = crate::stable_ports::choose(1)
            .with_context(|| format!("cannot find a free port on 127.0.0.1 for the {what}"))?[0];
        match TcpListener::bind(("127.0.0.1", p)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "cannot listen on 127.0.0.1 for the {what}: {}",
        last.map_or_else(String::new, |e| e.to_string())
    ))
}

/// Binds 127.0.0.1:`port`, retrying for a few seconds; fails with an explanation
/// if it stays taken.
pub async fn bind_required(port: u16, dir: &Path) -> anyhow::Result<TcpListener> {
    let start = Instant::now();
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) if start.elapsed() < REQUIRED_PORT_WAIT => {
                tracing::debug!(port, error = %e, "the group's port is busy; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                anyhow::bail!(
                    "cannot listen on 127.0.0.1:{port}, the internal address of the KV group stored in {} \
                     (the shardmaster's configuration names it, and Clerks dial it, so it cannot change): {e}. \
                     Stop the process using port {port} (or another diskv serve on this data directory) and start again",
                    dir.display()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_round_trip_and_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Ports::load(dir.path()).unwrap(), Ports::default());
        let p = Ports {
            shardmaster: Some(4000),
            group: Some(4001),
        };
        p.store(dir.path()).unwrap();
        assert_eq!(Ports::load(dir.path()).unwrap(), p);
        std::fs::write(dir.path().join("ports"), "{").unwrap();
        assert!(Ports::load(dir.path()).is_err());
    }
}
