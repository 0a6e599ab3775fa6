//! The local launcher: a diskv cluster or node on this machine, each shardmaster
//! and replica a child process of the running `diskv` binary. `diskv cluster`
//! and `diskv bench --spawn` both start their processes with it.
//!
//! - [`layout`]: the cluster's shape and loopback ports, recorded in
//!   `DIR/cluster.json` at first start and reused after;
//! - [`start_children`] and [`children`]: the processes, each in its own process
//!   group, stopped by pid (SIGTERM, a grace period, then SIGKILL);
//! - [`ready`]: waiting until the shardmasters and every group serve;
//! - [`stable_ports`]: loopback ports below the kernel's ephemeral range, so a
//!   restarted daemon gets its port back;
//! - [`serve_ports`]: the internal ports of `diskv serve`, recorded in `DATA/ports`;
//! - [`identity`]: a CA and one certificate per process under `DIR/tls`, for
//!   mutual TLS between them.
//!
//! Progress goes to stdout ([`say`]): these lines are the launcher's interface
//! (docs/REFERENCE.md §5).

pub mod children;
pub mod identity;
pub mod layout;
pub mod ready;
pub mod serve_ports;
pub mod stable_ports;

use children::{Children, Spec};
use layout::Layout;
use std::io::Write;
use std::path::Path;

/// Prints one line on stdout and flushes it.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// True if a process directory already holds something (it ran before).
fn has_data(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// The extra arguments of the child named by its argument: how it secures its
/// connections (`--insecure`, `--tls-dir DIR`, ...).
pub type SecurityFlags<'a> = &'a dyn Fn(&str) -> anyhow::Result<Vec<String>>;

/// Starts every shardmaster, then every replica, each with its `security`
/// flags, and prints where each listens.
pub fn start_children(
    layout: &Layout,
    dir: &Path,
    security: SecurityFlags<'_>,
    children: &mut Children,
) -> anyhow::Result<()> {
    let logs = dir.join("logs");
    let masters = layout.masters.join(",");
    let mut specs = Vec::new();
    for (i, addr) in layout.masters.iter().enumerate() {
        let name = format!("shardmaster-{i}");
        let data = dir.join(&name);
        let mut args: Vec<String> = vec![
            "shardmaster".into(),
            "--me".into(),
            i.to_string(),
            "--peers".into(),
            masters.clone(),
            "--dir".into(),
            data.display().to_string(),
            "--shards".into(),
            layout.shards.to_string(),
        ];
        args.extend(security(&name)?);
        specs.push(Spec {
            name,
            addr: addr.clone(),
            args,
        });
    }
    for g in &layout.groups {
        let peers = g.replicas.join(",");
        for (i, addr) in g.replicas.iter().enumerate() {
            let data = dir
                .join(format!("group-{}", g.gid))
                .join(format!("replica-{i}"));
            let mut args: Vec<String> = vec![
                "server".into(),
                "--gid".into(),
                g.gid.to_string(),
                "--masters".into(),
                masters.clone(),
                "--peers".into(),
                peers.clone(),
                "--me".into(),
                i.to_string(),
                "--dir".into(),
                data.display().to_string(),
                "--join".into(),
            ];
            if has_data(&data) {
                args.push("--restart".into());
            }
            let name = format!("group-{}-replica-{i}", g.gid);
            args.extend(security(&name)?);
            specs.push(Spec {
                name,
                addr: addr.clone(),
                args,
            });
        }
    }
    for spec in specs {
        let r = children.spawn(spec, &logs)?;
        let restart = if r.spec.args.iter().any(|a| a == "--restart") {
            " (restart)"
        } else {
            ""
        };
        say(&format!(
            "  {:<22} listening on {}, pid {}, log {}{restart}",
            r.spec.name,
            r.spec.addr,
            r.pid,
            r.log.display()
        ));
    }
    Ok(())
}
