//! The KV clients in the world: starting their operations (the audit's reads for
//! client 0), sending attempts to the KV group, pauses between operations, and
//! clients that fall silent for longer than their duplicate entries live.

use super::{Event, Phase, World, GID};
use crate::client::Next;
use crate::clock::{MS, SECOND};
use crate::net::Addr;
use crate::packet::{ClientRequest, KvCall, Packet};
use rand::Rng;

impl World {
    pub(super) fn client_start(&mut self, c: usize) {
        let op = if c == 0 && self.phase == Phase::Audit {
            match self.audit.pop_front() {
                Some(op) => Some(op),
                None => return,
            }
        } else {
            None
        };
        let next = self.clients[c].start(&mut self.rng, &self.history, self.now, op);
        self.client_next(c, next);
    }

    pub(super) fn client_next(&mut self, c: usize, next: Next) {
        let client = &self.clients[c];
        let attempt = client.pending.as_ref().map_or(0, |p| p.attempt_id);
        let timeout = client.attempt_timeout;
        match next {
            Next::Send(a) => {
                let id = client.id;
                self.trace.note(self.now, &format!("c{id}"), || {
                    let what = match &a.call {
                        KvCall::One(req) => format!("{:?}", req.op),
                        KvCall::Many { batch, part } => format!("part {part} {:?}", batch.ops),
                    };
                    format!(
                        "-> r{} seq {} shard {} {what}",
                        a.to,
                        a.call.seq(),
                        a.call.shard()
                    )
                });
                let from = Addr::Client(client.id);
                let to = Addr::Replica {
                    group: GID,
                    node: a.to,
                };
                self.send(from, to, Packet::Request(ClientRequest::Kv(a.call)));
                self.agenda.at(
                    self.now + timeout,
                    Event::ClientTimeout { client: c, attempt },
                );
            }
            Next::Pause(d) => self
                .agenda
                .at(self.now + d, Event::ClientResume { client: c, attempt }),
            Next::Idle => {}
        }
    }

    /// Client `c` finished an operation: the next one after a pause (a long one
    /// if it is silent).
    pub(super) fn client_idle(&mut self, c: usize) {
        let think = self.rng.gen_range(0..30 * MS);
        let at = (self.now + think).max(self.silent_until[c]);
        self.agenda.at(at, Event::ClientStart { client: c });
    }

    /// A client falls silent for longer than the group keeps its duplicate
    /// entry (its current operation, if any, completes first): the entry expires
    /// while other clients go on, at the same instance on every replica.
    pub(crate) fn silence_a_client(&mut self) -> bool {
        if self.clients.len() < 2 {
            return false;
        }
        let c = self.rng.gen_range(0..self.clients.len());
        let extra = self.rng.gen_range(0..10 * SECOND);
        self.silent_until[c] = self.now + self.client_ttl + extra;
        true
    }

    pub(super) fn clients_idle(&self) -> bool {
        self.clients.iter().all(|c| c.pending.is_none())
    }
}
