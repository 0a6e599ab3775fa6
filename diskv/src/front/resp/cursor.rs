//! `SCAN` cursors. A cursor stands for the last key a `SCAN` returned: the next
//! call goes on after that key in the ordered key space. Clients (redis-cli,
//! redis-rs, redis-py) parse cursors as unsigned 64-bit numbers, and a key does
//! not fit in one, so the front door hands out a random number and remembers which
//! key it stands for.
//!
//! Each connection owns the cursors it was handed: at most [`PER_CONNECTION`] of
//! them (its own oldest is forgotten first), all forgotten when it closes. So one
//! client's SCANs can never push out another client's cursor, and the table holds
//! at most `PER_CONNECTION` × the connection limit. A cursor works on any
//! connection while its owner is open. A cursor the door does not know (its
//! owner closed, it was pushed out, it comes from another front door or from
//! before a restart) is refused with `ERR invalid cursor`, and the client starts
//! again from `0`.

use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Most cursors one connection holds at once: enough for a few walks at a time.
pub const PER_CONNECTION: usize = 8;

/// The cursors handed out and the keys they stand for.
#[derive(Debug, Default)]
pub struct Cursors {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    keys: HashMap<u64, String>,
    /// Each connection's cursors, oldest first.
    owned: HashMap<u64, VecDeque<u64>>,
}

impl Cursors {
    /// A new cursor of connection `owner` standing for `last_key`: never 0 (which
    /// means "from the start" and "done"), below 2^63 (some clients parse it as a
    /// signed number).
    pub fn save(&self, owner: u64, last_key: String) -> u64 {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut rng = rand::thread_rng();
        let cursor = loop {
            let c = rng.gen_range(1..i64::MAX as u64);
            if !t.keys.contains_key(&c) {
                break c;
            }
        };
        let mine = t.owned.entry(owner).or_default();
        mine.push_back(cursor);
        let evicted = if mine.len() > PER_CONNECTION {
            mine.pop_front()
        } else {
            None
        };
        if let Some(old) = evicted {
            t.keys.remove(&old);
        }
        t.keys.insert(cursor, last_key);
        cursor
    }

    /// The key `cursor` stands for. The cursor stays valid, so a client may send
    /// the same `SCAN` again (after a lost reply).
    pub fn resume(&self, cursor: u64) -> Option<String> {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.keys.get(&cursor).cloned()
    }

    /// Forgets every cursor of connection `owner` (it closed).
    pub fn forget(&self, owner: u64) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        for c in t.owned.remove(&owner).unwrap_or_default() {
            t.keys.remove(&c);
        }
    }

    /// How many cursors are remembered (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .len()
    }

    /// True when no cursor is remembered (tests).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_pushes_out_only_its_own_cursors() {
        let c = Cursors::default();
        let theirs = c.save(1, "a".into());
        assert_ne!(theirs, 0);
        assert_eq!(c.resume(theirs).as_deref(), Some("a"));
        assert_eq!(c.resume(theirs).as_deref(), Some("a"), "resumable twice");
        assert_eq!(c.resume(0), None);
        let first = c.save(2, "k".into());
        for i in 0..10_000 {
            c.save(2, format!("k{i}"));
        }
        assert_eq!(
            c.resume(theirs).as_deref(),
            Some("a"),
            "another connection's"
        );
        assert_eq!(c.resume(first), None, "its own oldest is pushed out");
        assert_eq!(c.len(), 1 + PER_CONNECTION);
        c.forget(2);
        assert_eq!(c.len(), 1);
        c.forget(1);
        assert!(c.is_empty());
    }
}
