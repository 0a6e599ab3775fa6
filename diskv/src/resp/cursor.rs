//! `SCAN` cursors. A cursor stands for the last key a `SCAN` returned: the next
//! call goes on after that key in the ordered key space. Clients (redis-cli,
//! redis-rs, redis-py) parse cursors as unsigned 64-bit numbers, and a key does
//! not fit in one, so the front door hands out a random number and remembers which
//! key it stands for. The table is bounded ([`MAX_CURSORS`], oldest forgotten
//! first) and lives in one process: a cursor it no longer knows (or one from
//! another front door, or from before a restart) is refused with
//! `ERR invalid cursor`, and the client starts again from `0`.

use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Most cursors remembered at once, over every connection.
pub const MAX_CURSORS: usize = 10_000;

/// The cursors handed out and the keys they stand for.
#[derive(Debug, Default)]
pub struct Cursors {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    keys: HashMap<u64, String>,
    order: VecDeque<u64>,
}

impl Cursors {
    /// A new cursor standing for `last_key`: never 0 (which means "from the start"
    /// and "done"), below 2^63 (some clients parse it as a signed number).
    pub fn save(&self, last_key: String) -> u64 {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut rng = rand::thread_rng();
        let cursor = loop {
            let c = rng.gen_range(1..i64::MAX as u64);
            if !t.keys.contains_key(&c) {
                break c;
            }
        };
        while t.order.len() >= MAX_CURSORS {
            if let Some(old) = t.order.pop_front() {
                t.keys.remove(&old);
            }
        }
        t.keys.insert(cursor, last_key);
        t.order.push_back(cursor);
        cursor
    }

    /// The key `cursor` stands for. The cursor stays valid, so a client may send
    /// the same `SCAN` again (after a lost reply).
    pub fn resume(&self, cursor: u64) -> Option<String> {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.keys.get(&cursor).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_stands_for_its_key_until_many_newer_ones_push_it_out() {
        let c = Cursors::default();
        let first = c.save("a".into());
        assert_ne!(first, 0);
        assert_eq!(c.resume(first).as_deref(), Some("a"));
        assert_eq!(c.resume(first).as_deref(), Some("a"), "resumable twice");
        assert_eq!(c.resume(0), None);
        for i in 0..MAX_CURSORS {
            c.save(format!("k{i}"));
        }
        assert_eq!(c.resume(first), None);
    }
}
