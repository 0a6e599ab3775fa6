//! The local launcher: a diskv cluster or node on this machine, each shardmaster
//! and replica a child process of the running `diskv` binary. `diskv cluster`
//! and `diskv bench --spawn` both start their processes with it.
//!
//! - [`layout`]: the cluster's shape and the addresses its processes are dialled
//!   at, recorded in `DIR/cluster.json` at first start and reused after;
//! - [`advertise`]: the host in those addresses (127.0.0.1 unless
//!   `--advertise-host` names another);
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

pub mod advertise;
pub mod children;
pub mod identity;
pub mod layout;
pub mod ready;
pub mod serve_ports;
pub mod stable_ports;

use anyhow::Context;
use children::{Children, Spec};
use layout::Layout;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
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

/// The arguments that make a child listen on `listen` at the port of its
/// recorded (advertised) address `addr`: none when that is the address itself
/// (the default, 127.0.0.1), else `--listen IP:PORT`.
fn listen_flags(addr: &str, listen: IpAddr) -> anyhow::Result<Vec<String>> {
    let port = advertise::port_of(addr)
        .with_context(|| format!("the recorded address {addr} has no port"))?;
    let bound = SocketAddr::new(listen, port).to_string();
    Ok(if bound == addr {
        Vec::new()
    } else {
        vec!["--listen".into(), bound]
    })
}

/// Starts every shardmaster, then every replica, each with its `security`
/// flags, listening on `listen` at the port of its recorded address, and prints
/// where each listens.
pub fn start_children(
    layout: &Layout,
    dir: &Path,
    listen: IpAddr,
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
        args.extend(listen_flags(addr, listen)?);
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
            args.extend(listen_flags(addr, listen)?);
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
        // `listening on ADDR, pid N, ...`, or `listening on IP:PORT as ADDR, ...`
        // when it binds apart from its advertised address.
        let bound = r
            .spec
            .args
            .iter()
            .position(|a| a == "--listen")
            .and_then(|i| r.spec.args.get(i + 1));
        let at = match bound {
            Some(bound) => format!("{bound} as {}", r.spec.addr),
            None => r.spec.addr.clone(),
        };
        say(&format!(
            "  {:<22} listening on {at}, pid {}, log {}{restart}",
            r.spec.name,
            r.pid,
            r.log.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_gets_listen_only_when_it_binds_apart_from_its_address() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert!(listen_flags("127.0.0.1:41001", loopback)
            .unwrap()
            .is_empty());
        assert!(listen_flags("[::1]:41001", "::1".parse().unwrap())
            .unwrap()
            .is_empty());
        assert_eq!(
            listen_flags("localhost:41001", loopback).unwrap(),
            ["--listen", "127.0.0.1:41001"]
        );
        assert_eq!(
            listen_flags("127.0.0.1:41001", any).unwrap(),
            ["--listen", "0.0.0.0:41001"]
        );
        assert!(listen_flags("localhost", loopback).is_err());
    }
}
