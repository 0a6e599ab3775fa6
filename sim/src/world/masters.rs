//! The shardmaster's clients in the world: starting their operations, sending
//! attempts to the shardmaster's replicas (group 0), timeouts, pauses and
//! answers, and the audit's last Query.

use crate::clock::{Time, MS};
use crate::master_client::{Next, ATTEMPT_TIMEOUT};
use crate::net::Addr;
use crate::packet::{ClientRequest, Packet};
use crate::world::{Event, Phase, World, MASTER_GID};
use rand::Rng;
use shardmaster::{OpResult, ShardmasterError};

/// How long a shardmaster client waits between operations.
const THINK: (Time, Time) = (50 * MS, 1_000 * MS);

impl World {
    /// Shardmaster client `c` starts its next operation (the audit's Query, if it
    /// is the one to run it).
    pub(crate) fn master_start(&mut self, c: usize) {
        let op = if c == 0 && self.phase == Phase::Audit {
            if self.masters[c].pending.is_some() {
                return; // it starts the Query once this operation is answered
            }
            match self.master_audit.take() {
                Some(op) => Some(op),
                None => return,
            }
        } else {
            None
        };
        let next = self.masters[c].start(&mut self.rng, &mut self.master_history, self.now, op);
        self.master_next(c, next);
    }

    /// Carries out what shardmaster client `c` asks.
    pub(crate) fn master_next(&mut self, c: usize, next: Next) {
        let client = &self.masters[c];
        let attempt = client.pending.as_ref().map_or(0, |p| p.attempt_id);
        match next {
            Next::Send { to, call } => {
                let id = client.id;
                self.trace.note(self.now, &format!("m{id}"), || {
                    format!("-> g0r{to} seq {} {:?}", call.req.seq, call.req.op)
                });
                let (from, to) = (
                    Addr::Client(id),
                    Addr::Replica {
                        group: MASTER_GID,
                        node: to,
                    },
                );
                self.send(from, to, Packet::Request(ClientRequest::Master(call)));
                self.agenda.at(
                    self.now + ATTEMPT_TIMEOUT,
                    Event::MasterTimeout { client: c, attempt },
                );
            }
            Next::Pause(d) => self
                .agenda
                .at(self.now + d, Event::MasterResume { client: c, attempt }),
            Next::Idle => {}
        }
    }

    /// Shardmaster client `c` resumes after a pause, if its attempt is current.
    pub(crate) fn master_resume(&mut self, c: usize, attempt: u64) {
        let current = self.masters[c]
            .pending
            .as_ref()
            .is_some_and(|p| p.attempt_id == attempt);
        if current {
            let next = self.masters[c].resume();
            self.master_next(c, next);
        }
    }

    /// A shardmaster replica's answer reached client `id`.
    pub(crate) fn master_reply(
        &mut self,
        id: u64,
        from: usize,
        tag: u64,
        result: Result<OpResult, ShardmasterError>,
    ) {
        let Some(c) = self.masters.iter().position(|c| c.id == id) else {
            return;
        };
        self.trace.note(self.now, &format!("m{id}"), || {
            format!("<- g0r{from} op {tag} {result:?}")
        });
        let was_pending = self.masters[c].pending.is_some();
        let next = self.masters[c].reply(
            &mut self.rng,
            &mut self.master_history,
            self.now,
            from,
            tag,
            result,
        );
        self.master_next(c, next);
        if was_pending && self.masters[c].pending.is_none() {
            // Configuration changes are rare operator actions: every write makes
            // the shardmaster's state (and each checkpoint) bigger for good.
            let think = self.rng.gen_range(THINK.0..THINK.1);
            self.agenda
                .at(self.now + think, Event::MasterStart { client: c });
        }
    }

    /// True if no shardmaster client has an operation to run.
    pub(crate) fn masters_idle(&self) -> bool {
        self.master_audit.is_none() && self.masters.iter().all(|c| c.pending.is_none())
    }

    /// The audit: shardmaster clients stop; client 0 asks for the latest
    /// configuration, which must be as new as anything answered before.
    pub(crate) fn audit_masters(&mut self) {
        if self.masters.is_empty() {
            return;
        }
        for c in &mut self.masters {
            c.stopping = true;
        }
        self.master_audit = Some(shardmaster::Op::query(shardmaster::ConfigNum::Latest));
        self.agenda.at(self.now, Event::MasterStart { client: 0 });
    }
}
