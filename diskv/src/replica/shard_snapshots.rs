//! The shard snapshots a replica holds for backups being read page by page
//! ([`crate::rpc::ShardRead`]).
//!
//! A backup reads each shard as it was at one moment. The leader copies the
//! shard once, inside its linearizable read, and serves the pages from that
//! copy, so writes applied meanwhile do not show and no page waits on the log.
//! The price is the copy: one shard's keys and map (the values are shared with
//! the state, [`Value`]; one overwritten meanwhile stays), held until its last page is served,
//! or until it has been idle for [`IDLE`]; at most [`MAX_HELD`] at once (the
//! least recently used goes first). A shard that fits in one page is never held.

use crate::op::KvError;
use crate::rpc::{ShardPage, PAGE_BYTES};
use crate::state::Value;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Snapshots held at once by one replica.
pub const MAX_HELD: usize = 4;
/// A snapshot unread for this long is dropped.
pub const IDLE: Duration = Duration::from_secs(60);

type Data = Arc<BTreeMap<String, Value>>;

/// The snapshots one replica holds.
#[derive(Default)]
pub struct ShardSnapshots {
    held: Vec<Held>,
}

struct Held {
    id: u64,
    data: Data,
    used: Instant,
}

impl ShardSnapshots {
    /// The first page of `data`, a shard just copied; the copy is kept for the
    /// next pages unless this page is the last.
    pub fn start(&mut self, data: BTreeMap<String, Value>, now: Instant) -> ShardPage {
        let id = rand::random();
        let data = Arc::new(data);
        let page = page(id, &data, Bound::Unbounded, PAGE_BYTES);
        if !page.last {
            self.held.retain(|h| now.duration_since(h.used) < IDLE);
            if self.held.len() >= MAX_HELD {
                let oldest = (0..self.held.len()).min_by_key(|&i| self.held[i].used);
                if let Some(i) = oldest {
                    tracing::info!(
                        snapshot = self.held[i].id,
                        "backup snapshot pushed out by a newer one"
                    );
                    self.held.swap_remove(i);
                }
            }
            self.held.push(Held {
                id,
                data,
                used: now,
            });
        }
        page
    }

    /// The page of snapshot `id` after key `after`; the snapshot is dropped once
    /// its last page is served.
    pub fn next(&mut self, id: u64, after: &str, now: Instant) -> Result<ShardPage, KvError> {
        self.held.retain(|h| now.duration_since(h.used) < IDLE);
        let Some(i) = self.held.iter().position(|h| h.id == id) else {
            return Err(KvError::Unavailable(format!(
                "backup snapshot {id:016x} is no longer held here (idle over {} s, pushed \
                 out by newer ones, or the replica restarted); read the shard again",
                IDLE.as_secs()
            )));
        };
        self.held[i].used = now;
        let page = page(id, &self.held[i].data, Bound::Excluded(after), PAGE_BYTES);
        if page.last {
            self.held.swap_remove(i);
        }
        Ok(page)
    }

    /// Snapshots held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when no snapshot is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// The pairs of `data` from `from` on, up to `max_bytes` of keys and values (at
/// least one pair).
fn page(id: u64, data: &Data, from: Bound<&str>, max_bytes: usize) -> ShardPage {
    let mut pairs = Vec::new();
    let mut bytes = 0;
    let mut rest = data.range::<str, _>((from, Bound::Unbounded)).peekable();
    while let Some((k, v)) = rest.peek() {
        let size = k.len() + v.len();
        if !pairs.is_empty() && bytes + size > max_bytes {
            break;
        }
        bytes += size;
        pairs.push((k.to_string(), v.to_string()));
        rest.next();
    }
    ShardPage {
        snapshot: id,
        keys: data.len() as u64,
        pairs,
        last: rest.peek().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(n: usize, value_bytes: usize) -> BTreeMap<String, Value> {
        (0..n)
            .map(|i| (format!("k{i:05}"), Value::from("v".repeat(value_bytes))))
            .collect()
    }

    /// Pages of a large shard cover every pair once, in order, each within the
    /// byte limit, and the snapshot is dropped after the last one.
    #[test]
    fn pages_cover_the_snapshot_once_and_then_release_it() {
        let data = shard(20, PAGE_BYTES / 8);
        let mut held = ShardSnapshots::default();
        let now = Instant::now();
        let mut page = held.start(data.clone(), now);
        assert!(!page.last);
        assert_eq!(held.len(), 1);
        let mut got = Vec::new();
        loop {
            let bytes: usize = page.pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(bytes <= PAGE_BYTES);
            assert_eq!(page.keys, 20);
            got.extend(page.pairs.clone());
            if page.last {
                break;
            }
            let after = got.last().unwrap().0.clone();
            page = held.next(page.snapshot, &after, now).unwrap();
        }
        let want: Vec<_> = data
            .into_iter()
            .map(|(k, v)| (k, v.into_string()))
            .collect();
        assert_eq!(got, want);
        assert!(held.is_empty());
    }

    /// A shard that fits in one page is answered whole and never held; an empty
    /// one is one empty last page.
    #[test]
    fn a_small_shard_is_one_page_and_not_held() {
        let mut held = ShardSnapshots::default();
        let page = held.start(shard(3, 10), Instant::now());
        assert!(page.last);
        assert_eq!(page.pairs.len(), 3);
        let empty = held.start(BTreeMap::new(), Instant::now());
        assert!(empty.last && empty.pairs.is_empty() && empty.keys == 0);
        assert!(held.is_empty());
    }

    /// One pair above the page size still comes, alone.
    #[test]
    fn a_pair_above_the_page_size_comes_alone() {
        let data: Data = Arc::new(shard(2, PAGE_BYTES + 1));
        let first = page(1, &data, Bound::Unbounded, PAGE_BYTES);
        assert_eq!(first.pairs.len(), 1);
        assert!(!first.last);
    }

    /// An idle snapshot expires, the oldest goes when too many are held, and a
    /// page of a snapshot not held says to read the shard again.
    #[test]
    fn idle_and_surplus_snapshots_are_dropped() {
        let mut held = ShardSnapshots::default();
        let t0 = Instant::now();
        let big = shard(10, PAGE_BYTES / 4);
        let first = held.start(big.clone(), t0);
        let e = held.next(first.snapshot, "k00000", t0 + IDLE).unwrap_err();
        assert!(e.to_string().contains("read the shard again"), "{e}");
        let ids: Vec<u64> = (0..=MAX_HELD as u64)
            .map(|i| {
                held.start(big.clone(), t0 + Duration::from_secs(i))
                    .snapshot
            })
            .collect();
        assert_eq!(held.len(), MAX_HELD);
        let later = t0 + Duration::from_secs(10);
        assert!(
            held.next(ids[0], "k00000", later).is_err(),
            "the oldest went"
        );
        assert!(held.next(ids[MAX_HELD], "k00000", later).is_ok());
    }
}
