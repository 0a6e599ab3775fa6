//! Ports for daemons that must come back on the same port after a restart (the
//! internal ports of `diskv serve`, every port of `diskv cluster`).
//!
//! A port the kernel handed out for `127.0.0.1:0` lies in its ephemeral range,
//! where outgoing connections also get their local ports: while the daemon is down,
//! any connection on the machine may take its port and make the restart fail. So
//! these ports are chosen below the ephemeral range (from 10000 up), which the
//! kernel never hands out on its own, and checked free by binding them.

use std::net::TcpListener;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lowest port considered.
const LOWEST: u16 = 10_000;
/// Step between the ports tried (a prime).
const STRIDE: u64 = 7_919;

/// The first port of the kernel's ephemeral range (Linux default 32768).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// `n` distinct ports on 127.0.0.1, free right now, outside the ephemeral range
/// when it leaves room (else any free ports).
pub fn choose(n: usize) -> std::io::Result<Vec<u16>> {
    let top = ephemeral_start();
    let mut held: Vec<TcpListener> = Vec::with_capacity(n);
    if top > LOWEST + 1_000 {
        let span = u64::from(top - LOWEST);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        // Walk the range from a random point with a prime stride (coprime to the
        // span unless it divides it).
        let stride = if span % STRIDE == 0 { 1 } else { STRIDE };
        let mut at = seed % span;
        for _ in 0..span {
            if held.len() == n {
                break;
            }
            let port = LOWEST + at as u16;
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                held.push(l);
            }
            at = (at + stride) % span;
        }
    }
    while held.len() < n {
        held.push(TcpListener::bind(("127.0.0.1", 0))?);
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ports = choose(12).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 12);
        if ephemeral_start() > LOWEST + 1_000 {
            assert!(
                ports
                    .iter()
                    .all(|&p| (LOWEST..ephemeral_start()).contains(&p)),
                "{ports:?}"
            );
        }
        for p in ports {
            TcpListener::bind(("127.0.0.1", p)).expect("still free");
        }
    }
}
