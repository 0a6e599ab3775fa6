//! Where a run's load goes: a running cluster (`--masters`), or a local one this
//! command starts and stops (`--spawn GxR` for G groups of R replicas, or
//! `--spawn serve` for one `diskv serve` node).
//!
//! A spawned target runs plaintext between its processes ([`Transport::Plain`],
//! the engine alone) or with mutual TLS ([`Transport::MutualTls`], as `diskv
//! cluster` runs by default). It lives in a temporary directory. Its processes are children of
//! this binary started by the `diskv cluster` launcher's code
//! ([`diskv_launch`]): each in its own process group, stopped by pid
//! (SIGTERM, then SIGKILL) when the benchmark ends, fails or is interrupted, killed
//! when dropped, and sent SIGTERM by the kernel if this process dies.

use super::error::BenchError;
use anyhow::Context;
use diskv_launch::children::{Children, Spec};
use diskv_launch::layout::{Group, Layout, Shape};
use diskv_launch::{identity, ready, start_children, SecurityFlags};
use paxos::transport::tls::{self, Security};
use std::path::Path;
use std::time::{Duration, Instant};

/// Shardmaster replicas of a spawned cluster (they are off the data path).
const SPAWN_MASTERS: usize = 1;
/// How long a spawned `diskv serve` may take to record its ports.
const SERVE_START: Duration = Duration::from_secs(60);

/// What `--spawn` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnShape {
    /// `diskv cluster` style: G groups of R replicas, one shardmaster.
    Cluster {
        /// Replica groups.
        groups: usize,
        /// Replicas per group.
        replicas: usize,
    },
    /// One `diskv serve` process (shardmaster and one replica in one process).
    Serve,
}

impl SpawnShape {
    /// Its label in reports: `diskv 3x3`, `diskv serve`.
    pub fn label(self) -> String {
        match self {
            SpawnShape::Cluster { groups, replicas } => format!("diskv {groups}x{replicas}"),
            SpawnShape::Serve => "diskv serve".into(),
        }
    }
}

impl std::str::FromStr for SpawnShape {
    type Err = String;
    /// `GxR`, `G×R` or `serve`.
    fn from_str(s: &str) -> Result<SpawnShape, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("serve") {
            return Ok(SpawnShape::Serve);
        }
        let bad =
            || format!("--spawn {s:?}: expected GxR (e.g. 3x3: 3 groups of 3 replicas) or serve");
        let (g, r) = s.split_once(['x', 'X', '×']).ok_or_else(bad)?;
        let groups: usize = g.trim().parse().map_err(|_| bad())?;
        let replicas: usize = r.trim().parse().map_err(|_| bad())?;
        if groups == 0 || replicas == 0 {
            return Err(format!(
                "--spawn {s:?}: groups and replicas must be at least 1"
            ));
        }
        Ok(SpawnShape::Cluster { groups, replicas })
    }
}

/// How a spawned target's processes talk to each other and to the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Transport {
    /// Plaintext (`--insecure`): the engine alone, as measured by default.
    #[default]
    Plain,
    /// Mutual TLS everywhere, as `diskv cluster` runs by default: every process,
    /// and this one, holds a certificate from a CA made for the run.
    MutualTls,
}

impl Transport {
    /// Its suffix in labels: "" or " TLS".
    pub fn suffix(self) -> &'static str {
        match self {
            Transport::Plain => "",
            Transport::MutualTls => " TLS",
        }
    }
}

/// A local cluster or node started for the benchmark.
pub struct Spawned {
    /// Its shardmasters.
    pub masters: Vec<String>,
    /// Its label.
    pub label: String,
    children: Children,
    // Removed after the children stop (declared after them).
    _dir: tempfile::TempDir,
}

impl Spawned {
    /// Starts `shape` in a new temporary directory with `transport` between its
    /// processes and waits until it serves. This process's connections to diskv
    /// processes take the same transport from here on
    /// ([`paxos::transport::tls::replace`]).
    pub async fn start(shape: SpawnShape, transport: Transport) -> Result<Spawned, BenchError> {
        Spawned::start_running(shape, transport, None).await
    }

    /// Like [`Spawned::start`], the processes running the diskv binary `exe`
    /// (`None`: this one).
    pub async fn start_running(
        shape: SpawnShape,
        transport: Transport,
        exe: Option<std::path::PathBuf>,
    ) -> Result<Spawned, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("diskv-bench-")
            .tempdir()
            .context("cannot create a temporary directory")
            .map_err(BenchError::Spawn)?;
        let mut children = exe.map(Children::running).unwrap_or_default();
        let started = match use_transport(dir.path(), transport) {
            Err(e) => Err(e),
            Ok(flags) => match shape {
                SpawnShape::Cluster { groups, replicas } => {
                    start_cluster(dir.path(), groups, replicas, &*flags, &mut children).await
                }
                SpawnShape::Serve => start_serve(dir.path(), &*flags, &mut children).await,
            },
        };
        match started {
            Ok(masters) => Ok(Spawned {
                masters,
                label: format!("{}{}", shape.label(), transport.suffix()),
                children,
                _dir: dir,
            }),
            Err(e) => {
                children.stop().await;
                Err(BenchError::Spawn(e))
            }
        }
    }

    /// The temporary directory holding the processes' data and logs.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The pid of the spawned process named `name` (`serve` for `--spawn serve`).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children.pid(name)
    }

    /// `kill -9` of process `name` (by pid), then `between` (with the process
    /// gone), then the same process started again on the same directory.
    pub async fn kill_and_restart(
        &mut self,
        name: &str,
        between: impl FnOnce(),
    ) -> anyhow::Result<()> {
        let spec = self
            .children
            .kill(name)
            .await
            .with_context(|| format!("no process {name} runs"))?;
        between();
        self.children.spawn(spec, &self.dir().join("logs"))?;
        Ok(())
    }

    /// Stops every process (SIGTERM by pid, SIGKILL after a grace period) and
    /// removes the directory.
    pub async fn stop(mut self) {
        self.children.stop().await;
    }
}

/// Where the identities of a run with mutual TLS live.
fn tls_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("tls")
}

/// The security flags of each spawned process, by its name.
type ChildFlags = Box<dyn Fn(&str) -> anyhow::Result<Vec<String>>>;

/// The flags that give each spawned process `transport`, after setting this
/// process's own security to match.
fn use_transport(dir: &Path, transport: Transport) -> anyhow::Result<ChildFlags> {
    match transport {
        Transport::Plain => {
            tls::replace(Security::Plain);
            Ok(Box::new(|_name: &str| Ok(vec!["--insecure".to_string()])))
        }
        Transport::MutualTls => {
            let base = tls_dir(dir);
            tls::replace(identity::local_security(&base, "bench-client")?);
            Ok(Box::new(move |name: &str| {
                identity::local_child_flags(&base, name)
            }))
        }
    }
}

/// Starts G groups of R replicas and one shardmaster; returns the shardmasters.
async fn start_cluster(
    dir: &Path,
    groups: usize,
    replicas: usize,
    security: SecurityFlags<'_>,
    children: &mut Children,
) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir.join("logs"))?;
    let shape = Shape {
        groups: Some(groups),
        replicas: Some(replicas),
        masters: Some(SPAWN_MASTERS),
        shards: None,
        advertise_host: None,
    };
    let (layout, _) = Layout::load_or_create(dir, shape)?;
    let loopback = std::net::Ipv4Addr::LOCALHOST.into();
    start_children(&layout, dir, loopback, security, children)?;
    ready::wait(&layout, children).await?;
    Ok(layout.masters)
}

/// Starts one `diskv serve` node; returns its embedded shardmaster's address.
async fn start_serve(
    dir: &Path,
    security: SecurityFlags<'_>,
    children: &mut Children,
) -> anyhow::Result<Vec<String>> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let data = dir.join("serve");
    let mut args = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    args.extend(security("serve")?);
    let spec = Spec {
        name: "serve".into(),
        addr: "127.0.0.1:0".into(),
        args,
    };
    children.spawn(spec, &logs)?;
    // `diskv serve` records its internal ports in DATA/ports once both are bound.
    let deadline = Instant::now() + SERVE_START;
    let ports = loop {
        let ports = diskv_launch::serve_ports::Ports::load(&data).unwrap_or_default();
        if let (Some(sm), Some(group)) = (ports.shardmaster, ports.group) {
            break (sm, group);
        }
        if let Some((r, status)) = children.newly_exited().into_iter().next() {
            anyhow::bail!("diskv serve exited ({status}); see {}", r.log.display());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "diskv serve did not record its ports in {} within {SERVE_START:?}",
            data.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let layout = Layout {
        shards: 10,
        masters: vec![format!("127.0.0.1:{}", ports.0)],
        groups: vec![Group {
            gid: 1,
            replicas: vec![format!("127.0.0.1:{}", ports.1)],
        }],
    };
    ready::wait(&layout, children).await?;
    Ok(layout.masters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_shapes_parse() {
        let c = |groups, replicas| SpawnShape::Cluster { groups, replicas };
        assert_eq!("3x3".parse::<SpawnShape>().unwrap(), c(3, 3));
        assert_eq!("5×1".parse::<SpawnShape>().unwrap(), c(5, 1));
        assert_eq!("1X5".parse::<SpawnShape>().unwrap(), c(1, 5));
        assert_eq!("serve".parse::<SpawnShape>().unwrap(), SpawnShape::Serve);
        assert!("0x3".parse::<SpawnShape>().is_err());
        assert!("3".parse::<SpawnShape>().is_err());
        assert_eq!(c(5, 3).label(), "diskv 5x3");
    }
}
