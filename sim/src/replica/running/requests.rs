//! The service's side: client requests handled as its RPC handler does
//! (answered, read through a read index, or proposed), reads served once the
//! state covers their index, and peers' snapshot requests.

use super::{reply, Running, Service, Waiter};
use crate::packet::Packet;
use crate::replica::service::{Admit, Command};
use crate::replica::Io;
use paxos::core::ReadOutcome;
use paxos::rsm::{encode, Origin};

impl<S: Service> Running<S> {
    /// A client request, handled as the service's RPC handler does.
    pub(crate) fn request(&mut self, io: &mut Io<'_>, svc: &S, client: u64, req: S::Request) {
        if let Some(why) = &self.failed {
            let answer = S::unavailable(format!("storage failed: {why}"));
            return reply::<S>(io, client, &req, answer);
        }
        let admit = svc.admit(
            &mut self.front,
            &self.core,
            self.applier.state(),
            &req,
            io.monotonic_ms(),
        );
        let id = self.next_id;
        let waiter = Waiter::Client {
            client,
            req,
            since: io.now,
        };
        match admit {
            Admit::Answer(answer) => {
                if let Waiter::Client { req, .. } = &waiter {
                    reply::<S>(io, client, req, answer);
                }
                return;
            }
            Admit::Read => {
                self.next_id += 1;
                self.reads.insert(id, waiter);
                self.core.read_index(id);
            }
            Admit::Propose(cmd) => {
                self.next_id += 1;
                self.propose(io, id, &cmd);
                self.waiters.insert(id, waiter);
            }
        }
        self.drive(io);
    }

    /// Proposes `cmd` tagged with origin `id` of this process.
    pub(crate) fn propose(&mut self, io: &mut Io<'_>, id: u64, cmd: &Command<S>) {
        let origin = Origin {
            replica: io.node as u32,
            nonce: self.nonce,
            id,
        };
        match encode(origin, cmd) {
            Ok(bytes) => self.core.propose(bytes),
            Err(e) => io.note(|| format!("cannot encode a command: {e}")),
        }
    }

    /// Proposes a command nobody waits for (reconfiguration).
    pub(crate) fn propose_unwaited(&mut self, io: &mut Io<'_>, cmd: &Command<S>) {
        let id = self.next_id;
        self.next_id += 1;
        self.propose(io, id, cmd);
        self.drive(io);
    }

    /// A peer's snapshot request (the services' `snapshot` RPC: a read index on
    /// the leader, refused elsewhere).
    pub(crate) fn snapshot_ask(&mut self, io: &mut Io<'_>, peer: usize) {
        if self.failed.is_some() || !self.core.is_leader() {
            let snap = None;
            return io.send_peer(
                peer,
                Packet::SnapshotGive {
                    from: io.node,
                    snap,
                },
            );
        }
        let id = self.next_id;
        self.next_id += 1;
        self.reads.insert(
            id,
            Waiter::Snapshot {
                peer,
                since: io.now,
            },
        );
        self.core.read_index(id);
        self.drive(io);
    }

    pub(super) fn read_outcome(&mut self, io: &mut Io<'_>, outcome: ReadOutcome) {
        match outcome {
            ReadOutcome::Ready { id, index } => {
                if let Some(w) = self.reads.remove(&id) {
                    self.ready_reads.push((index, w));
                    self.serve_ready_reads(io);
                }
            }
            ReadOutcome::NotLeader { id, leader } => match self.reads.remove(&id) {
                Some(Waiter::Client { client, req, .. }) => {
                    reply::<S>(io, client, &req, S::not_leader(leader))
                }
                Some(Waiter::Snapshot { peer, .. }) => io.send_peer(
                    peer,
                    Packet::SnapshotGive {
                        from: io.node,
                        snap: None,
                    },
                ),
                None => {}
            },
        }
    }

    /// Serves the reads whose index the state covers now.
    pub(super) fn serve_ready_reads(&mut self, io: &mut Io<'_>) {
        let applied = self.applier.applied();
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready_reads)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.ready_reads = later;
        for (_, w) in now {
            match w {
                Waiter::Client { client, req, .. } => {
                    let out = S::read(self.applier.state(), &req);
                    reply::<S>(io, client, &req, out);
                }
                Waiter::Snapshot { peer, .. } => {
                    let core = &self.core;
                    let snap = self
                        .applier
                        .snapshot(|| core.membership().clone(), S::snapshot);
                    io.send_peer(
                        peer,
                        Packet::SnapshotGive {
                            from: io.node,
                            snap: Some(S::wrap(snap)),
                        },
                    );
                }
            }
        }
    }
}
