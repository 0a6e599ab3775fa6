//! A group's seats as an operator sees them, and an operator's change to them
//! (`diskv admin replica ...`). Both services (KV groups and the shardmaster)
//! answer with these; the rules of a change are `crate::membership`'s.
//!
//! The membership names an address only for seats added or moved by a change;
//! a founder listens where `--peers` said at the group's first start. The
//! application passes those founders' addresses in, so what an operator sees —
//! and what a repeated `add` is compared against — is every seat's real address.

use super::PaxosNode;
use crate::core::ChangeAnswer;
use crate::membership::{Change, Seat};
use crate::types::NodeId;
use serde::{Deserialize, Serialize};

/// One seat of a replica group, as one replica knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatReport {
    /// The seat's index: the `--me` of the process that holds it. Never reused.
    pub node: NodeId,
    /// Where the seat's process listens.
    pub addr: String,
    /// Voter, learner or removed.
    pub seat: Seat,
    /// No process holds the seat yet: it was just added or moved, and waits for
    /// a process started with an empty directory to claim it.
    pub vacant: bool,
    /// Only in the leader's report: whether it heard from the seat's process
    /// within an election timeout (what its check that a change leaves a
    /// working majority counts on).
    pub heard: Option<bool>,
}

/// The seats of a replica group, as one replica knows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSeats {
    /// Every seat the group ever had, by index (removed ones included).
    pub seats: Vec<SeatReport>,
    /// A membership change is decided or proposed and not in force yet.
    pub changing: bool,
    /// Grows with every change this replica has learned: of two reports, the
    /// one with the higher version knows more.
    pub version: u64,
    /// The replica recovers a lost disk and knows only its start list so far:
    /// these seats are a guess, not the group's.
    pub provisional: bool,
}

impl GroupSeats {
    /// The view to trust among several replicas' (`(leads, seats)`): the
    /// leader's, else the most up to date of those that are not provisional.
    pub fn best<'a>(
        views: impl IntoIterator<Item = (bool, &'a GroupSeats)>,
    ) -> Option<&'a GroupSeats> {
        let mut best: Option<(bool, &GroupSeats)> = None;
        for (leads, seats) in views {
            if seats.provisional {
                continue;
            }
            let better = match best {
                None => true,
                Some((best_leads, b)) => (leads, seats.version) > (best_leads, b.version),
            };
            if better {
                best = Some((leads, seats));
            }
        }
        best.map(|(_, seats)| seats)
    }

    /// The seats that vote.
    pub fn voters(&self) -> usize {
        self.seats.iter().filter(|s| s.seat == Seat::Voter).count()
    }

    /// The addresses of every seat not removed, in seat order: what the
    /// shardmaster records as the group's servers, and where Clerks look.
    pub fn addresses(&self) -> Vec<String> {
        self.seats
            .iter()
            .filter(|s| s.seat != Seat::Removed)
            .map(|s| s.addr.clone())
            .collect()
    }

    /// Seat `node`, if the group has it.
    pub fn seat(&self, node: NodeId) -> Option<&SeatReport> {
        self.seats.get(node)
    }

    /// True if `change` is in effect in these seats (whether or not it is in
    /// force yet: see [`GroupSeats::changing`]).
    pub fn shows(&self, change: &Change) -> bool {
        match change {
            Change::Add { addr } => self.at_addr(addr).is_some(),
            Change::Promote { node } => self.seat(*node).is_some_and(|s| s.seat == Seat::Voter),
            Change::Remove { node } => self.seat(*node).is_some_and(|s| s.seat == Seat::Removed),
            Change::Move { node, addr } => self.seat(*node).is_some_and(|s| &s.addr == addr),
        }
    }

    /// The seat (not removed) listening at `addr`.
    pub fn at_addr(&self, addr: &str) -> Option<&SeatReport> {
        self.seats
            .iter()
            .find(|s| s.seat != Seat::Removed && s.addr == addr)
    }
}

impl PaxosNode {
    /// The group's seats as this replica knows them; `founders` are the
    /// addresses the group was started with (`--peers`).
    pub fn seats(&self, founders: &[String]) -> GroupSeats {
        let core = self.core();
        let membership = core.membership();
        let seats = membership
            .latest()
            .iter()
            .enumerate()
            .map(|(node, m)| SeatReport {
                node,
                addr: m
                    .addr
                    .clone()
                    .or_else(|| founders.get(node).cloned())
                    .unwrap_or_default(),
                seat: m.seat,
                vacant: m.vacant,
                heard: core.hears(node),
            })
            .collect();
        GroupSeats {
            seats,
            changing: core.change_under_way(),
            version: membership.version(),
            provisional: core.membership_provisional(),
        }
    }

    /// An operator's change to the group's seats (see
    /// [`PaxosNode::propose_change`]), where adding an address a seat already
    /// listens at — a founder's included, which the membership itself does not
    /// name — is already in effect instead of a second seat at one address.
    pub fn change_seats(&self, change: Change, founders: &[String]) -> ChangeAnswer {
        if let Change::Add { addr } = &change {
            let seats = self.seats(founders);
            if !seats.provisional && seats.at_addr(addr).is_some() {
                return match self.is_leader() {
                    true => ChangeAnswer::InEffect,
                    false => ChangeAnswer::NotLeader(self.leader()),
                };
            }
        }
        self.propose_change(change)
    }
}
