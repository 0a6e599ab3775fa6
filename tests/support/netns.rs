//! Hosts for multi-host tests, made of Linux network namespaces: each host is a
//! namespace with one interface (`eth0`, address 10.77.0.N/24) on a veth pair
//! whose other end sits on a bridge in a "switch" namespace of its own, so the
//! test touches nothing of the machine's own network. Cutting a host off sets its
//! switch port down; healing sets it up. Every namespace is deleted on drop.
//!
//! Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and `ip` (iproute2).

use super::process::{run, Output};
use std::time::Duration;

/// A set of hosts joined by one switch.
pub struct Hosts {
    hosts: Vec<String>,
    switch: String,
}

fn ip(args: &[&str]) -> Output {
    run("ip", args, Duration::from_secs(20))
}

fn ip_ok(args: &[&str]) -> Result<(), String> {
    let out = ip(args);
    if out.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), out.stderr.trim()))
    }
}

impl Hosts {
    /// Makes `n` hosts, or says why it cannot (not root, no `ip`, no namespaces).
    pub fn make(n: usize) -> Result<Hosts, String> {
        let tag = format!("dv{}", std::process::id());
        let mut made = Hosts {
            hosts: Vec::new(),
            switch: format!("{tag}sw"),
        };
        ip_ok(&["netns", "add", &made.switch])?;
        let sw = made.switch.clone();
        ip_ok(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip_ok(&["-n", &sw, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let host = format!("{tag}h{i}");
            ip_ok(&["netns", "add", &host])?;
            made.hosts.push(host.clone());
            let port = format!("h{i}");
            ip_ok(&[
                "link", "add", "eth0", "netns", &host, "type", "veth", "peer", "name", &port,
                "netns", &sw,
            ])?;
            let addr = format!("{}/24", made.ip(i));
            ip_ok(&["-n", &host, "addr", "add", &addr, "dev", "eth0"])?;
            ip_ok(&["-n", &host, "link", "set", "eth0", "up"])?;
            ip_ok(&["-n", &host, "link", "set", "lo", "up"])?;
            ip_ok(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip_ok(&["-n", &sw, "link", "set", &port, "up"])?;
        }
        Ok(made)
    }

    /// Host `i`'s namespace name (for `ip netns exec`).
    pub fn netns(&self, i: usize) -> &str {
        &self.hosts[i]
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// The command that runs `program args` on host `i`: `ip netns exec NS ...`.
    pub fn exec_args(&self, i: usize, program: &str) -> Vec<String> {
        vec![
            "netns".into(),
            "exec".into(),
            self.hosts[i].clone(),
            program.into(),
        ]
    }

    /// Cuts host `i` off the network (its switch port goes down).
    pub fn cut(&self, i: usize) {
        ip_ok(&["-n", &self.switch, "link", "set", &format!("h{i}"), "down"]).expect("cut");
    }

    /// Connects host `i` again.
    pub fn heal(&self, i: usize) {
        ip_ok(&["-n", &self.switch, "link", "set", &format!("h{i}"), "up"]).expect("heal");
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth pair, and so the pair.
        for ns in self.hosts.iter().chain(std::iter::once(&self.switch)) {
            let out = ip(&["netns", "del", ns]);
            if !out.success() {
                eprintln!(
                    "could not delete network namespace {ns}: {}",
                    out.stderr.trim()
                );
            }
        }
    }
}
