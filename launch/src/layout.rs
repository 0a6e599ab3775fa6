//! The shape of a local cluster and where everything of it lives, recorded in
//! `DIR/cluster.json` at first start and reused by every later start (so the same
//! processes come back on the same ports, with their data).
//!
//! ```json
//! {"shards":10,"masters":["127.0.0.1:41001",...],
//!  "groups":[{"gid":1,"replicas":["127.0.0.1:41011",...]},...]}
//! ```
//!
//! The addresses are the advertised ones (`--advertise-host`, 127.0.0.1 by
//! default): the shardmaster's configurations and every replica's identity record
//! name them, so they are fixed at first start like the shape, and a later start
//! that asks for another host is refused. Where the processes bind is chosen at
//! each start (`--listen-host`) and not recorded.

use crate::advertise::{self, AdvertiseHost};
use anyhow::Context;
use paxos::fs::{durable, OsFs};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One replica group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Its gid (1, 2, ...).
    pub gid: u64,
    /// Its replicas' addresses.
    pub replicas: Vec<String>,
}

/// The recorded shape of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Shard count.
    pub shards: usize,
    /// Shardmaster addresses.
    pub masters: Vec<String>,
    /// Replica groups.
    pub groups: Vec<Group>,
}

/// What the user asked for on the command line (`None`: not given).
#[derive(Clone, Debug, Default)]
pub struct Shape {
    /// `--groups`.
    pub groups: Option<usize>,
    /// `--replicas`.
    pub replicas: Option<usize>,
    /// `--masters`.
    pub masters: Option<usize>,
    /// `--shards`.
    pub shards: Option<usize>,
    /// `--advertise-host`: the host in every recorded address [default: 127.0.0.1].
    pub advertise_host: Option<AdvertiseHost>,
}

/// `DIR/cluster.json`.
pub fn file(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

impl Layout {
    /// Loads the recorded layout (checking `shape` against it), or makes a new one
    /// with free loopback ports and records it. Returns it and whether it is new.
    pub fn load_or_create(dir: &Path, shape: Shape) -> anyhow::Result<(Layout, bool)> {
        let path = file(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let layout = Layout::parse(&text)
                    .with_context(|| format!("{} is not a valid cluster record", path.display()))?;
                layout.check(shape, &path)?;
                Ok((layout, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let layout = Layout::fresh(shape)?;
                layout.store(dir)?;
                Ok((layout, true))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// A new layout with ports free on 127.0.0.1 (see [`free_ports`]), at the
    /// advertised host.
    fn fresh(shape: Shape) -> anyhow::Result<Layout> {
        let groups = shape.groups.unwrap_or(3);
        let replicas = shape.replicas.unwrap_or(3);
        let masters = shape.masters.unwrap_or(3);
        let shards = shape.shards.unwrap_or(shardmaster::DEFAULT_SHARDS);
        anyhow::ensure!(
            groups >= 1 && replicas >= 1 && masters >= 1,
            "--groups, --replicas and --masters must be at least 1"
        );
        anyhow::ensure!(
            (1..=shardmaster::MAX_SHARDS).contains(&shards),
            "--shards must be between 1 and {}",
            shardmaster::MAX_SHARDS
        );
        let mut ports = free_ports(masters + groups * replicas)?.into_iter();
        let host = shape.advertise_host.unwrap_or_else(AdvertiseHost::loopback);
        let mut addr = || host.address(ports.next().unwrap_or_default());
        let masters = (0..masters).map(|_| addr()).collect();
        let groups = (1..=groups as u64)
            .map(|gid| Group {
                gid,
                replicas: (0..replicas).map(|_| addr()).collect(),
            })
            .collect();
        Ok(Layout {
            shards,
            masters,
            groups,
        })
    }

    /// Refuses flags that contradict the record.
    fn check(&self, shape: Shape, path: &Path) -> anyhow::Result<()> {
        if let Some(host) = &shape.advertise_host {
            let recorded = self.host();
            if recorded != Some(host.as_str()) {
                anyhow::bail!(
                    "--advertise-host {host} does not match the cluster recorded in {} ({}): \
                     the shardmaster and every replica know the processes by that host; \
                     leave the flag out to restart that cluster, or use another --dir for a new one",
                    path.display(),
                    recorded.unwrap_or("no single host")
                );
            }
        }
        let replicas = self.groups.first().map_or(0, |g| g.replicas.len());
        for (flag, given, recorded) in [
            ("--groups", shape.groups, self.groups.len()),
            ("--replicas", shape.replicas, replicas),
            ("--masters", shape.masters, self.masters.len()),
            ("--shards", shape.shards, self.shards),
        ] {
            if let Some(n) = given.filter(|&n| n != recorded) {
                anyhow::bail!(
                    "{flag} {n} does not match the cluster recorded in {} ({recorded}); \
                     leave the flag out to restart that cluster, or use another --dir for a new one",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// The host every recorded address names, if they all name one.
    pub fn host(&self) -> Option<&str> {
        let mut all = self
            .masters
            .iter()
            .chain(self.groups.iter().flat_map(|g| &g.replicas))
            .map(|a| advertise::host_of(a));
        let first = all.next()??;
        all.all(|h| h == Some(first)).then_some(first)
    }

    fn parse(text: &str) -> anyhow::Result<Layout> {
        let v: Value = serde_json::from_str(text)?;
        let addrs = |v: &Value, what: &str| -> anyhow::Result<Vec<String>> {
            let list = v
                .as_array()
                .with_context(|| format!("{what} is not a list"))?
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("{what} holds a non-string"))?;
            anyhow::ensure!(!list.is_empty(), "{what} is empty");
            Ok(list)
        };
        let shards = v["shards"].as_u64().context("no \"shards\" number")? as usize;
        let masters = addrs(&v["masters"], "\"masters\"")?;
        let groups = v["groups"]
            .as_array()
            .context("no \"groups\" list")?
            .iter()
            .map(|g| {
                Ok(Group {
                    gid: g["gid"].as_u64().context("a group without a \"gid\"")?,
                    replicas: addrs(&g["replicas"], "a group's \"replicas\"")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!groups.is_empty(), "\"groups\" is empty");
        Ok(Layout {
            shards,
            masters,
            groups,
        })
    }

    fn to_json(&self) -> String {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| json!({"gid": g.gid, "replicas": g.replicas}))
            .collect();
        let v = json!({"shards": self.shards, "masters": self.masters, "groups": groups});
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// Writes `DIR/cluster.json` atomically and durably.
    fn store(&self, dir: &Path) -> anyhow::Result<()> {
        let path = file(dir);
        let text = self.to_json() + "\n";
        durable::replace(&OsFs, &path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// `n` distinct free ports on 127.0.0.1, outside the kernel's ephemeral range so
/// that no outgoing connection takes one while the cluster is down.
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    crate::stable_ports::choose(n).context("cannot find free ports on 127.0.0.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_is_recorded_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let shape = Shape {
            groups: Some(2),
            replicas: Some(3),
            masters: Some(1),
            shards: None,
            advertise_host: None,
        };
        let (first, new) = Layout::load_or_create(dir.path(), shape).unwrap();
        assert!(new);
        assert_eq!(first.groups.len(), 2);
        assert_eq!(first.groups[1].gid, 2);
        assert_eq!(first.groups[0].replicas.len(), 3);
        assert_eq!(first.masters.len(), 1);
        assert_eq!(first.shards, 10);
        assert_eq!(first.host(), Some("127.0.0.1"));
        let (again, new) = Layout::load_or_create(dir.path(), Shape::default()).unwrap();
        assert!(!new);
        assert_eq!(again, first);
        let err = Layout::load_or_create(
            dir.path(),
            Shape {
                groups: Some(3),
                ..Shape::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("--groups 3"), "{err}");
    }

    #[test]
    fn the_advertised_host_is_recorded_and_cannot_change() {
        let dir = tempfile::tempdir().unwrap();
        let named = |host: &str| Shape {
            groups: Some(1),
            replicas: Some(2),
            masters: Some(1),
            advertise_host: Some(host.parse().unwrap()),
            ..Shape::default()
        };
        let (first, _) = Layout::load_or_create(dir.path(), named("localhost")).unwrap();
        assert_eq!(first.host(), Some("localhost"));
        assert!(first.groups[0].replicas[1].starts_with("localhost:"));
        let text = std::fs::read_to_string(file(dir.path())).unwrap();
        assert!(text.contains("\"localhost:"), "{text}");
        let (again, _) = Layout::load_or_create(dir.path(), Shape::default()).unwrap();
        assert_eq!(again, first);
        let (same, _) = Layout::load_or_create(dir.path(), named("localhost")).unwrap();
        assert_eq!(same, first);
        let err = Layout::load_or_create(dir.path(), named("db1.example.com")).unwrap_err();
        assert!(
            err.to_string()
                .contains("--advertise-host db1.example.com does not match"),
            "{err}"
        );
    }
}
