//! Persist before reply, decided here: which messages of a [`Ready`] may leave at
//! once, which only once its records are durable, and when a sync is due.
//!
//! The core numbers every record it hands out (its *position*: 1 for the first
//! record of this process, and so on, in the order of the Readies) and the driver
//! reports how far the records are durable ([`Replica::on_durable`]). From that
//! the core decides, for every message it emits:
//!
//! - **Acceptor messages** (`Promise`, `Accepted`, `Reject` — they reveal a promise
//!   or an accepted value — and every other message not named below) leave only
//!   once every *gating* record handed out so far is durable: `Promised`,
//!   `Accepted` and `Membership` records (rules 1–2 of the crate docs). If those
//!   are durable already, the message leaves at once; otherwise it goes in
//!   [`Ready::after_sync`] and the Ready asks for a sync.
//! - **A leader's `Accept` and `Heartbeat`** reveal no acceptor state: the value an
//!   `Accept` carries comes from phase 1 or is new, and the commit watermark either
//!   carries is made of decisions, durable on a majority (rule 5). What they need is
//!   that their ballot is never reused after a crash: a restarted replica campaigns
//!   above every promise in its log, so they leave at once once a promise at or above
//!   their ballot is durable here (in practice the leader's own `Promised` record).
//!   The followers' fdatasync then overlaps the leader's.
//! - **A follower's `HeartbeatAck`** leaves at once: a heartbeat writes no promise,
//!   the watermark it carries is decisions, and what the leader takes from it
//!   ("nothing above your ballot was promised here when I answered") holds of the
//!   in-memory promise, which is at or above every promise ever revealed.
//! - **`Committed { upto }`**, which says "the value of every instance below `upto` is
//!   its `Learned` or latest `Accepted` record", is handed out only once those value
//!   records are durable: written earlier, it could outlive them in a crash and
//!   make a restart read an older accepted value as decided.
//! - `Committed`, `Learned` and `Forgotten` records need no sync of their own
//!   (rule 5): a Ready holding only those has `sync == false`, and the driver may
//!   make them durable lazily.
//!
//! [`Replica::votes_now`] also waits until the `Membership` record that names this
//! replica's new incarnation is durable, so the application never records "recovered"
//! before a restart would find the incarnation in the log.

use super::{Ready, Replica};
use crate::message::{Envelope, Message};
use crate::record::Record;
use crate::types::{Ballot, Slot};
use std::collections::{BTreeMap, VecDeque};

/// What the core knows of the durability of the records it handed out.
#[derive(Debug, Default)]
pub(super) struct Durability {
    /// Records handed out in Readies so far (the position of the last one).
    handed_out: u64,
    /// Of those, every record up to this position is durable.
    durable: u64,
    /// Position of the last gating record (`Promised`, `Accepted`, `Membership`).
    last_gating: u64,
    /// Promising records not yet durable: position and ballot, in order.
    promises: VecDeque<(u64, Ballot)>,
    /// The highest ballot promised by a durable record of this process.
    durable_promise: Ballot,
    /// Per instance, the position of its latest value record (`Accepted` or
    /// `Learned`) that is not yet durable.
    values: BTreeMap<Slot, u64>,
    /// Position of the last `Membership` record.
    membership: u64,
    /// `Committed { upto }` and `Forgotten { below }` records not yet durable:
    /// position and watermark, in order.
    watermarks: VecDeque<(u64, Slot)>,
    /// Every instance below this is decided by durable records: what a restart
    /// would find as its commit index.
    pub(super) durable_commit: Slot,
}

/// True if a message must wait for `record`: it reveals acceptor state, or (a
/// membership change) the application acts on it as soon as it is known.
fn gates(record: &Record) -> bool {
    !matches!(
        record,
        Record::Committed { .. } | Record::Learned { .. } | Record::Forgotten { .. }
    )
}

impl Durability {
    /// Notes `record`, about to be handed out at position `pos`.
    fn note(&mut self, pos: u64, record: &Record) {
        if gates(record) {
            self.last_gating = pos;
        }
        match record {
            Record::Promised(b) => self.promises.push_back((pos, *b)),
            Record::Accepted { slot, ballot, .. } => {
                self.promises.push_back((pos, *ballot));
                self.values.insert(*slot, pos);
            }
            Record::Learned { slot, .. } => {
                self.values.insert(*slot, pos);
            }
            Record::Membership(_) | Record::LegacyMembership(_) => self.membership = pos,
            Record::Committed { upto: slot } | Record::Forgotten { below: slot } => {
                self.watermarks.push_back((pos, *slot))
            }
        }
    }

    /// Every record up to position `upto` is durable.
    fn advance(&mut self, upto: u64) {
        let upto = upto.min(self.handed_out);
        if upto <= self.durable {
            return;
        }
        self.durable = upto;
        while let Some(&(pos, ballot)) = self.promises.front() {
            if pos > upto {
                break;
            }
            self.durable_promise = self.durable_promise.max(ballot);
            self.promises.pop_front();
        }
        self.values.retain(|_, pos| *pos > upto);
        while let Some(&(pos, slot)) = self.watermarks.front() {
            if pos > upto {
                break;
            }
            self.durable_commit = self.durable_commit.max(slot);
            self.watermarks.pop_front();
        }
    }

    /// True if every gating record handed out (or about to be) is durable.
    fn gating_durable(&self) -> bool {
        self.durable >= self.last_gating
    }

    /// True if `env`, sent by `me`, may leave before the records handed out so far
    /// are durable.
    fn may_leave_now(&self, me: usize, env: &Envelope) -> bool {
        if self.gating_durable() {
            return true;
        }
        match &env.msg {
            Message::Accept { ballot, .. } | Message::Heartbeat { ballot, .. } => {
                env.from == me && ballot.node == me && *ballot <= self.durable_promise
            }
            // Neither reveals a promise or an accept.
            Message::HeartbeatAck { .. }
            | Message::PreVote { .. }
            | Message::PreVoteGrant { .. } => env.from == me,
            _ => false,
        }
    }

    /// The highest `upto` below which every value record is durable (capped by
    /// `commit`).
    fn committed_upto(&self, commit: Slot) -> Slot {
        self.values
            .keys()
            .next()
            .map_or(commit, |&first| first.min(commit))
    }
}

impl Replica {
    /// Queues `rec` for the next Ready, noting what its durability will allow.
    pub(super) fn persist(&mut self, rec: Record) {
        let pos = self.durability.handed_out + self.ready.records.len() as u64 + 1;
        self.durability.note(pos, &rec);
        self.ready.records.push(rec);
    }

    /// The driver made every record up to position `upto` durable (positions count
    /// the records of every Ready taken from this replica, from 1).
    pub fn on_durable(&mut self, upto: u64) {
        self.durability.advance(upto);
    }

    /// Records handed out in Readies so far; after the driver has made them all
    /// durable it reports this number to [`Replica::on_durable`].
    pub fn records_handed_out(&self) -> u64 {
        self.durability.handed_out
    }

    /// Every instance below this is decided by records that are durable: a
    /// restart now would find at least this commit index. The application makes
    /// a checkpoint of its state at `applied` durable only once this reaches
    /// `applied` ([`crate::rsm::CheckpointStep::Job`]): a state ahead of the log
    /// after a crash would leave the replica in doubt about its membership
    /// (`doubt_membership`), and a group of such replicas could not decide the
    /// instances that would end the doubt (simulator seed 1896 before this rule).
    pub fn durable_commit(&self) -> Slot {
        self.durability.durable_commit
    }

    /// True once the last membership record handed out is durable.
    pub(super) fn membership_durable(&self) -> bool {
        self.durability.durable >= self.durability.membership
    }

    /// The `Committed` watermark that may be written now: below it every instance
    /// is decided and its value record durable.
    pub(super) fn committed_record_upto(&self) -> Slot {
        self.durability.committed_upto(self.commit)
    }

    /// Splits the queued messages by their gate and sets the sync flag; called by
    /// `take_ready` after every record of the Ready was queued.
    pub(super) fn seal_ready(&mut self) -> Ready {
        let mut ready = std::mem::take(&mut self.ready);
        let me = self.cfg.id;
        let (now, later): (Vec<Envelope>, Vec<Envelope>) = std::mem::take(&mut ready.messages)
            .into_iter()
            .partition(|env| self.durability.may_leave_now(me, env));
        ready.messages = now;
        ready.after_sync = later;
        ready.sync = !ready.after_sync.is_empty() || ready.records.iter().any(gates);
        self.durability.handed_out += ready.records.len() as u64;
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::CoreConfig;
    use crate::types::Entry;

    fn accept(ballot: Ballot, slot: Slot, commit: Slot) -> Envelope {
        Envelope {
            from: 0,
            to: 1,
            msg: Message::Accept {
                ballot,
                slot,
                entry: Entry::Noop,
                commit,
            },
        }
    }

    #[test]
    fn an_accepted_reply_waits_for_its_record_and_a_repeat_goes_at_once() {
        let mut r = Replica::new(CoreConfig::new(1, 3));
        let b = Ballot::new(1, 0);
        r.handle(accept(b, 0, 0));
        let ready = r.take_ready();
        assert_eq!(ready.records.len(), 1);
        assert!(ready.sync);
        assert!(ready.messages.is_empty());
        assert!(matches!(
            ready.after_sync[..],
            [Envelope {
                msg: Message::Accepted { .. },
                ..
            }]
        ));
        // Repeated before the record is durable: still gated, no new record.
        r.handle(accept(b, 0, 0));
        let ready = r.take_ready();
        assert!(ready.records.is_empty() && ready.messages.is_empty());
        assert_eq!(ready.after_sync.len(), 1);
        // Once durable, a repeat leaves at once and needs no sync.
        r.on_durable(r.records_handed_out());
        r.handle(accept(b, 0, 0));
        let ready = r.take_ready();
        assert!(!ready.sync);
        assert_eq!(ready.messages.len(), 1);
    }

    #[test]
    fn a_leaders_accepts_leave_early_only_once_its_promise_is_durable() {
        let mut r = Replica::new(CoreConfig::new(0, 3));
        r.campaign_now();
        let ready = r.take_ready();
        assert!(!ready.sync && ready.after_sync.is_empty());
        let to_self = ready
            .messages
            .into_iter()
            .find(|e| e.to == 0)
            .expect("a prepare to itself");
        r.handle(to_self);
        let ready = r.take_ready();
        assert!(ready.sync, "the candidate's own promise must be synced");
        assert!(
            ready.messages.is_empty(),
            "its own Promise waits for the record"
        );
        let ballot = r.promised();
        // Promises of replicas 1 and 2 arrive before replica 0's own is durable.
        for from in [1, 2] {
            r.handle(Envelope {
                from,
                to: 0,
                msg: Message::Promise {
                    ballot,
                    accepted: vec![],
                    floor: 0,
                    incarnation: 0,
                },
            });
        }
        assert!(r.is_leader());
        r.propose(b"x".to_vec());
        let ready = r.take_ready();
        let accepts_now = ready
            .messages
            .iter()
            .filter(|e| matches!(e.msg, Message::Accept { .. }))
            .count();
        assert_eq!(
            accepts_now, 0,
            "left before the leader's promise was durable"
        );
        r.on_durable(r.records_handed_out());
        r.propose(b"y".to_vec());
        let ready = r.take_ready();
        let accepts_now = ready
            .messages
            .iter()
            .filter(|e| matches!(e.msg, Message::Accept { .. }))
            .count();
        assert_eq!(accepts_now, 3, "the Accepts (self included) go at once");
        assert!(
            !ready.sync,
            "a leader's own Accept to itself is handled later"
        );
    }

    #[test]
    fn a_commit_watermark_is_written_only_over_durable_values() {
        let mut r = Replica::new(CoreConfig::new(1, 3));
        let b = Ballot::new(1, 0);
        r.handle(accept(b, 0, 0));
        r.handle(accept(b, 1, 1)); // decides instance 0 from the watermark
        let ready = r.take_ready();
        assert!(
            !ready
                .records
                .iter()
                .any(|rec| matches!(rec, Record::Committed { .. })),
            "a Committed record before the Accepted records it relies on are durable: {:?}",
            ready.records
        );
        assert_eq!(
            ready.committed.len(),
            1,
            "the decision itself is not held back"
        );
        r.on_durable(r.records_handed_out());
        let ready = r.take_ready();
        assert_eq!(ready.records, vec![Record::Committed { upto: 1 }]);
        assert!(!ready.sync, "a watermark needs no sync of its own");
    }
}
