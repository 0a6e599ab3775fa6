//! Record keys and the shared, growing key space.
//!
//! Keys are `user` followed by the record number zero-padded to [`KEY_DIGITS`]
//! digits, so their byte order is their numeric order and the range
//! `[key(i), key(i + n - 1)]` holds exactly the records `i..i + n` that exist.
//!
//! Inserts (workloads D and E) extend the key space. Each insert reserves the next
//! number atomically ([`KeySpace::reserve`]); reads only choose among records whose
//! insert has finished ([`KeySpace::readable`]), as YCSB's acknowledged counter does,
//! so a read never races the insert of the key it asks for.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Digits of the record number in a key.
pub const KEY_DIGITS: usize = 12;

/// The key of record `n`: `user000000000042`.
pub fn key(n: u64) -> String {
    format!("user{n:0width$}", width = KEY_DIGITS)
}

/// The inclusive key range a scan of `len` records from record `start` covers.
pub fn scan_range(start: u64, len: u64) -> (String, String) {
    (key(start), key(start + len.max(1) - 1))
}

/// The record numbers in use, shared by every client of one run.
#[derive(Debug)]
pub struct KeySpace {
    /// The next number an insert will take.
    next: AtomicU64,
    /// Every record below this number has been written (reads choose below it).
    readable: AtomicU64,
    /// Finished inserts at or above `readable`, waiting for the gap below them.
    finished: Mutex<BTreeSet<u64>>,
}

impl KeySpace {
    /// A key space whose records `0..records` exist (after the load phase).
    pub fn new(records: u64) -> KeySpace {
        KeySpace {
            next: AtomicU64::new(records),
            readable: AtomicU64::new(records),
            finished: Mutex::new(BTreeSet::new()),
        }
    }

    /// Takes the next record number for an insert.
    pub fn reserve(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks the insert of `n` as finished (successfully or not: a failed insert
    /// leaves a hole that reads see as a missing key, not a stuck key space).
    pub fn finish(&self, n: u64) {
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        finished.insert(n);
        let mut readable = self.readable.load(Ordering::Acquire);
        while finished.remove(&readable) {
            readable += 1;
        }
        self.readable.store(readable, Ordering::Release);
    }

    /// How many records reads may choose from (records `0..readable()`).
    pub fn readable(&self) -> u64 {
        self.readable.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_numeric_order() {
        assert_eq!(key(42), "user000000000042");
        let mut keys: Vec<String> = [9u64, 10, 100, 99, 1_000_000].map(key).to_vec();
        keys.sort();
        assert_eq!(keys, [9u64, 10, 99, 100, 1_000_000].map(key).to_vec());
    }

    #[test]
    fn a_scan_range_holds_exactly_its_records() {
        let (start, end) = scan_range(95, 10);
        let inside: Vec<u64> = (0..1_000)
            .filter(|&n| {
                let k = key(n);
                k >= start && k <= end
            })
            .collect();
        assert_eq!(inside, (95..105).collect::<Vec<_>>());
        assert_eq!(scan_range(7, 1), (key(7), key(7)));
    }

    #[test]
    fn reads_see_an_insert_only_when_every_earlier_one_finished() {
        let space = KeySpace::new(10);
        let (a, b, c) = (space.reserve(), space.reserve(), space.reserve());
        assert_eq!((a, b, c), (10, 11, 12));
        space.finish(b);
        assert_eq!(
            space.readable(),
            10,
            "11 finished but 10 is still in flight"
        );
        space.finish(a);
        assert_eq!(space.readable(), 12);
        space.finish(c);
        assert_eq!(space.readable(), 13);
    }

    #[test]
    fn concurrent_inserts_take_distinct_numbers() {
        let space = std::sync::Arc::new(KeySpace::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let space = space.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .map(|_| {
                            let n = space.reserve();
                            space.finish(n);
                            n
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2_000);
        assert_eq!(space.readable(), 2_000);
    }
}
