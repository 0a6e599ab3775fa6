//! How many connections each client address holds, so that one address cannot
//! take every connection slot of the front door.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The connections open per address, with a cap.
#[derive(Clone, Debug)]
pub struct PerIp {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection; frees its address's place when dropped.
#[derive(Debug)]
pub struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    /// A table admitting at most `cap` (at least 1) connections per address.
    pub fn new(cap: usize) -> PerIp {
        PerIp {
            cap: cap.max(1),
            open: Arc::default(),
        }
    }

    /// Admits one more connection from `ip`, or `None` if it holds `cap` already.
    pub fn admit(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            open: self.open.clone(),
        })
    }

    /// Connections open from `ip` now.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_cap_and_gets_places_back() {
        let t = PerIp::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let one = t.admit(a).unwrap();
        let _two = t.admit(a).unwrap();
        assert!(t.admit(a).is_none());
        let _other = t.admit(b).expect("another address is not affected");
        drop(one);
        assert_eq!(t.open(a), 1);
        assert!(t.admit(a).is_some());
    }
}
