//! The duplicate table: the last reply to each client, so a retried request is
//! answered without being applied twice. One table per shard; it moves with the
//! shard.
//!
//! Entries expire when their client has sent nothing for [`CLIENT_TTL_MS`] of log
//! time (timestamps come from the proposer and travel in the log, so every replica
//! expires the same entries; `crate::state::logclock` says why they are not wall-clock
//! times). A Clerk retries every few hundred milliseconds while an
//! operation is outstanding, so only a client that went silent for that long can
//! lose its entry; a retry arriving after that is treated as new.

use crate::op::{ClientId, Reply};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long (in log time) a silent client's entry is kept.
pub const CLIENT_TTL_MS: u64 = 15 * 60 * 1000;

/// What the table knows about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Never applied: apply it.
    New,
    /// Already applied: this was the reply.
    Duplicate(Reply),
    /// Older than the client's latest applied request: the client has moved on, so
    /// nobody waits for this reply.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    seq: u64,
    reply: Reply,
    last_ms: u64,
}

/// Last applied request and reply per client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DupTable {
    entries: BTreeMap<ClientId, Entry>,
}

impl DupTable {
    /// Classifies request `seq` of `client`.
    pub fn seen(&self, client: ClientId, seq: u64) -> Seen {
        match self.entries.get(&client) {
            Some(e) if e.seq == seq => Seen::Duplicate(e.reply.clone()),
            Some(e) if e.seq > seq => Seen::Stale,
            _ => Seen::New,
        }
    }

    /// Remembers the reply to request `seq` of `client`.
    pub fn record(&mut self, client: ClientId, seq: u64, reply: Reply, now_ms: u64) {
        self.entries.insert(
            client,
            Entry {
                seq,
                reply,
                last_ms: now_ms,
            },
        );
    }

    /// Marks `client` as active at `now_ms` (a duplicate arrived).
    pub fn touch(&mut self, client: ClientId, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(&client) {
            e.last_ms = e.last_ms.max(now_ms);
        }
    }

    /// Drops entries of clients silent since `now_ms - ttl_ms` (log time).
    pub fn expire(&mut self, now_ms: u64, ttl_ms: u64) {
        let cutoff = now_ms.saturating_sub(ttl_ms);
        self.entries.retain(|_, e| e.last_ms >= cutoff);
    }

    /// Number of clients remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes in the entries of `other` (a shard arriving from another group),
    /// keeping the newer entry per client. Log time is each group's own, so an
    /// entry taken in counts as seen at `now_ms`, this group's log time: stamped in
    /// the sender's time, it could expire at once here (found in review: a retry
    /// was then applied twice) or live far too long.
    pub fn merge(&mut self, other: &DupTable, now_ms: u64) {
        for (client, e) in &other.entries {
            match self.entries.get(client) {
                Some(mine) if mine.seq >= e.seq => {}
                _ => {
                    let e = Entry {
                        last_ms: now_ms,
                        ..e.clone()
                    };
                    self.entries.insert(*client, e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_new_duplicate_and_stale() {
        let mut t = DupTable::default();
        assert_eq!(t.seen(1, 1), Seen::New);
        t.record(1, 1, Reply::Existed(false), 0);
        assert_eq!(t.seen(1, 1), Seen::Duplicate(Reply::Existed(false)));
        t.record(1, 2, Reply::Existed(true), 0);
        assert_eq!(t.seen(1, 1), Seen::Stale);
        assert_eq!(t.seen(1, 3), Seen::New);
        assert_eq!(t.seen(2, 1), Seen::New);
    }

    #[test]
    fn silent_clients_expire_and_active_ones_stay() {
        let mut t = DupTable::default();
        t.record(1, 1, Reply::Cleared, 0);
        t.record(2, 1, Reply::Cleared, 0);
        t.touch(2, CLIENT_TTL_MS);
        t.expire(CLIENT_TTL_MS + 1, CLIENT_TTL_MS);
        assert_eq!(t.seen(1, 1), Seen::New);
        assert_eq!(t.seen(2, 1), Seen::Duplicate(Reply::Cleared));
    }

    #[test]
    fn merge_keeps_the_newer_entry() {
        let mut a = DupTable::default();
        let mut b = DupTable::default();
        a.record(1, 5, Reply::Existed(true), 0);
        b.record(1, 3, Reply::Existed(false), 0);
        b.record(2, 1, Reply::Existed(false), 0);
        a.merge(&b, 0);
        assert_eq!(a.seen(1, 5), Seen::Duplicate(Reply::Existed(true)));
        assert_eq!(a.seen(2, 1), Seen::Duplicate(Reply::Existed(false)));
    }
}
