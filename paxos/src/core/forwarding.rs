//! Forwarding: a follower hands the commands and starts it holds to the known
//! leader (and sends starts again until decided); the leader takes them in.

use super::bounds::START_REACH;
use super::{Replica, Role};
use crate::message::Message;
use crate::types::{Command, Entry, Slot};

impl Replica {
    pub(super) fn on_forward(&mut self, commands: Vec<Command>) {
        // Only the leader batches forwarded commands; anyone else drops them (the
        // client retries) rather than risk forwarding in a loop.
        let commands: Vec<Command> = commands
            .into_iter()
            .filter(|c| self.fits_a_record(c))
            .collect();
        if let Role::Leader(l) = &mut self.role {
            for cmd in commands {
                l.enqueue(cmd);
            }
        }
    }

    pub(super) fn on_forward_start(&mut self, slot: Slot, entry: Entry) {
        if !matches!(self.role, Role::Leader(_)) {
            return;
        }
        if slot > self.commit.saturating_add(START_REACH) {
            // The gap up to it would be filled with no-ops (`bounds.rs`).
            tracing::warn!(
                node = self.cfg.id,
                slot,
                commit = self.commit,
                "ignored a forwarded start far beyond the decided log"
            );
            return;
        }
        self.start(slot, entry);
    }

    /// A follower hands what it holds to the known leader.
    pub(super) fn flush_waiting(&mut self) {
        let Some((leader, _)) = self.leader else {
            return;
        };
        if leader == self.cfg.id {
            return;
        }
        if !self.waiting_commands.is_empty() {
            let commands = std::mem::take(&mut self.waiting_commands);
            self.send(leader, Message::Forward { commands });
        }
        let now = self.now;
        let mut fresh = Vec::new();
        for (&slot, (entry, sent)) in self.waiting_starts.iter_mut() {
            if sent.is_none() {
                *sent = Some(now);
                fresh.push((slot, entry.clone()));
            }
        }
        for (slot, entry) in fresh {
            self.send(leader, Message::ForwardStart { slot, entry });
        }
    }

    /// Forwarded starts that were not decided after a while are sent again.
    pub(super) fn resend_waiting_starts(&mut self) {
        let (now, every) = (self.now, self.cfg.retransmit_ticks as u64);
        for (_, sent) in self.waiting_starts.values_mut() {
            if matches!(sent, Some(t) if now - *t >= every) {
                *sent = None;
            }
        }
    }
}
