//! Reaching the world's machines: which group a machine is in and its address,
//! calling into one and carrying out what it asks (sends, timers), and moving
//! packets over the simulated network to machines and clients.

use super::{Event, Group, World};
use crate::faults;
use crate::net::Addr;
use crate::packet::{ClientReply, Packet};
use crate::replica::{Io, Node};

impl World {
    /// True while machine `node` is paused: its timers and packets wait.
    pub(super) fn paused(&self, node: usize) -> bool {
        self.now < self.faults.paused_until[node]
    }

    /// The group of machine `node`.
    pub(crate) fn group_of(&self, node: usize) -> &Group {
        let g = self.groups.iter().position(|g| g.members().contains(&node));
        &self.groups[g.unwrap_or(0)]
    }

    /// The machine of replica `node` of group `gid`.
    fn machine_of(&self, gid: u64, node: usize) -> Option<usize> {
        self.groups
            .iter()
            .find(|g| g.gid == gid && node < g.size)
            .map(|g| g.first + node)
    }

    /// The network address of machine `node`.
    pub(crate) fn addr_of(&self, node: usize) -> Addr {
        let m = &self.machines[node];
        Addr::Replica {
            group: m.group(),
            node: m.node(),
        }
    }

    /// Calls into machine `node` and carries out what it asks.
    pub(crate) fn with_machine(&mut self, node: usize, f: impl FnOnce(&mut dyn Node, &mut Io<'_>)) {
        let g = self
            .groups
            .iter()
            .position(|g| g.members().contains(&node))
            .unwrap_or(0);
        let group = &mut self.groups[g];
        let m = &mut self.machines[node];
        let mut io = Io {
            now: self.now,
            rng: &mut self.rng,
            group: group.gid,
            node: m.node(),
            generation: m.generation(),
            sends: Vec::new(),
            timers: Vec::new(),
            votes: &mut group.votes,
            reads: &mut group.reads,
            digests: &mut self.digests,
            configs: &mut self.configs,
            trace: &mut self.trace,
            violations: &mut self.violations,
        };
        f(m.as_mut(), &mut io);
        let (sends, timers) = (io.sends, io.timers);
        let epoch = m.epoch();
        let from = self.addr_of(node);
        for (to, packet) in sends {
            self.send(from, to, packet);
        }
        for (at, timer) in timers {
            self.agenda.at(at, Event::Timer { node, epoch, timer });
        }
        faults::watch(self, node);
    }

    pub(crate) fn send(&mut self, from: Addr, to: Addr, packet: Packet) {
        for at in self.net.fate(&mut self.rng, self.now, from, to) {
            self.agenda.at(
                at,
                Event::Deliver {
                    from,
                    to,
                    packet: packet.clone(),
                },
            );
        }
    }

    pub(super) fn deliver(&mut self, from: Addr, to: Addr, packet: Packet) {
        if !self.net.passes(from, to) {
            return;
        }
        match (to, packet) {
            (Addr::Replica { group, node }, packet) => {
                let Some(node) = self.machine_of(group, node) else {
                    return;
                };
                if self.paused(node) {
                    let at = self.faults.paused_until[node] + 1;
                    self.agenda.at(at, Event::Deliver { from, to, packet });
                    return;
                }
                self.with_machine(node, |m, io| m.deliver(io, from, packet));
            }
            (
                Addr::Client(id),
                Packet::Reply {
                    from,
                    reply: ClientReply::Master { tag, result },
                },
            ) => self.master_reply(id, from, tag, result),
            (
                Addr::Client(id),
                Packet::Reply {
                    from,
                    reply:
                        ClientReply::Kv {
                            seq,
                            shard,
                            part,
                            result,
                        },
                },
            ) => {
                let Some(c) = self.clients.iter().position(|c| c.id == id) else {
                    return;
                };
                self.trace.note(self.now, &format!("c{id}"), || {
                    format!("<- r{from} seq {seq} shard {shard} part {part} {result:?}")
                });
                let next =
                    self.clients[c].reply(&self.history, self.now, from, seq, shard, part, result);
                let finished = self.clients[c].pending.is_none();
                self.client_next(c, next);
                if finished {
                    self.client_idle(c);
                }
            }
            (Addr::Client(_), _) => {}
        }
    }
}
