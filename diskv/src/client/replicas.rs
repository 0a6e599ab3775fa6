//! An operator's change to a replica set (`diskv admin replica ...`): add a
//! learner, promote it, remove a replica, or replace one by a process at another
//! address — for one KV group or for the shardmasters themselves.
//!
//! The group decides the change through its own log (`paxos::membership`); this
//! module finds the group's leader, hands it the change, waits until the change
//! is in force, and then records the group's new server list with the
//! shardmaster (`Op::Servers`), which is where Clerks look. Every step is
//! idempotent, so running the same command again after a failure — an
//! unreachable leader, a timeout, a shardmaster that did not answer — finishes
//! the job and never makes the change twice.

use crate::rpc::conn::{deadline, Connections};
use crate::rpc::status as replica_status;
use paxos::core::{Change, ChangeAnswer, ChangeRefused};
use paxos::node::{GroupSeats, NodeRole};
use shardmaster::status as master_status;
use shardmaster::{Clerk as MasterClerk, ConfigNum, Gid, OpResult, ShardmasterError};
use std::time::Duration;
use tokio::time::Instant;

/// How long one replica has to answer one question.
const CALL: Duration = Duration::from_secs(2);
/// The pause between two rounds of questions.
const POLL: Duration = Duration::from_millis(200);

/// Whose replica set changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaSet {
    /// A KV replica group.
    Group(Gid),
    /// The shardmasters.
    Masters,
}

impl std::fmt::Display for ReplicaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplicaSet::Group(gid) => write!(f, "group {gid}"),
            ReplicaSet::Masters => write!(f, "the shardmasters"),
        }
    }
}

/// What a change that went through did.
#[derive(Clone, Debug)]
pub struct ChangeDone {
    /// The seats as the leader knew them once the change was in force.
    pub seats: GroupSeats,
    /// The change was in effect before this run asked for it (a repeated
    /// command): nothing new was decided.
    pub already: bool,
    /// What the shardmaster said when the group's servers were recorded
    /// (`None` for the shardmasters' own set, which no configuration records).
    pub recorded: Option<OpResult>,
}

/// Why a change did not go through, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaChangeError {
    /// The latest configuration could not be read.
    #[error("cannot read the latest configuration: {0}")]
    NoConfiguration(ShardmasterError),
    /// The group is not in the latest configuration.
    #[error("group {gid} is not in the latest configuration (joined: {joined:?})")]
    UnknownGroup {
        /// The group named.
        gid: Gid,
        /// The groups that are.
        joined: Vec<Gid>,
    },
    /// The new address belongs to another group.
    #[error("{addr} is a replica of group {owner}; a process serves one group")]
    AddressInUse {
        /// The address.
        addr: String,
        /// The group it belongs to.
        owner: Gid,
    },
    /// The new address is not `host:port`: refused before anything is proposed
    /// (the group would decide it, and the shardmaster then refuse to record it).
    #[error(
        "refused, nothing changed: {addr:?} is not host:port with a port in 1..=65535 \
         ({reason}); pass addresses like 10.0.0.5:7000 or db-1:7000"
    )]
    BadAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The group's leader refused the change: nothing changed.
    #[error("refused, nothing changed: {0}")]
    Refused(ChangeRefused),
    /// No leader took the change in time: it may or may not have been
    /// proposed.
    #[error(
        "no leader of {set} took the change within the timeout (last answer: {last}); \
         run the same command again: it never makes a change twice"
    )]
    NoLeader {
        /// Whose set.
        set: ReplicaSet,
        /// The last answer or error seen.
        last: String,
    },
    /// The change was proposed but not seen in force in time.
    #[error(
        "the change was proposed, but {set}'s leader did not show it in force within the \
         timeout; run the same command again to wait for it and record it"
    )]
    NotInForce {
        /// Whose set.
        set: ReplicaSet,
    },
    /// The change is in force but the shardmaster did not record the new list.
    #[error(
        "the change is in force, but the shardmaster did not record the group's new \
         servers ({0}); run the same command again to record them"
    )]
    NotRecorded(ShardmasterError),
    /// The change is in force but the group left the configuration meanwhile,
    /// so there is no list to record.
    #[error(
        "the change is in force, but group {gid} left the configuration meanwhile: its \
         servers are recorded again when it joins (diskv admin join {gid} with the \
         addresses of `replica list {gid}`)"
    )]
    LeftMeanwhile {
        /// The group.
        gid: Gid,
    },
    /// A replace names an address another seat of the same set listens at.
    #[error("{addr} is replica {node} of {set} already; a process holds one seat")]
    SeatAddressInUse {
        /// Whose set.
        set: ReplicaSet,
        /// The address.
        addr: String,
        /// The seat listening there.
        node: usize,
    },
}

/// Asks a set's replicas questions.
struct Asker {
    set: ReplicaSet,
    conns: Connections,
}

impl Asker {
    /// The role and the seats the replica at `addr` reports.
    async fn seats_at(&self, addr: &str) -> Result<(NodeRole, GroupSeats), String> {
        match self.set {
            ReplicaSet::Group(_) => replica_status::ask(&self.conns, addr, CALL)
                .await
                .map(|s| (s.node.role, s.node.seats)),
            ReplicaSet::Masters => master_status::ask(addr, CALL)
                .await
                .map(|s| (s.node.role, s.node.seats)),
        }
    }

    /// The seats as the leader among `addrs` knows them, or else the most up
    /// to date of the replicas that answer (one recovering a lost disk knows
    /// only a guess); the last error when none could tell.
    async fn best_seats(&self, addrs: &[String]) -> Result<GroupSeats, String> {
        let answers = futures::future::join_all(addrs.iter().map(|a| self.seats_at(a))).await;
        let mut last = String::from("no replica answered");
        let mut views = Vec::new();
        for answer in answers {
            match answer {
                Ok((role, seats)) => views.push((role == NodeRole::Leader, seats)),
                Err(e) => last = e,
            }
        }
        GroupSeats::best(views.iter().map(|(leads, seats)| (*leads, seats)))
            .cloned()
            .ok_or(last)
    }

    /// Hands `change` to the replica at `addr`.
    async fn propose_at(&self, addr: &str, change: &Change) -> Result<ChangeAnswer, String> {
        let answer = match self.set {
            ReplicaSet::Group(_) => {
                let rpc = self.conns.get(addr).await.map_err(|e| e.to_string())?;
                rpc.change_membership(deadline(CALL), change.clone()).await
            }
            ReplicaSet::Masters => {
                let rpc = shardmaster::rpc::connect(addr, CALL)
                    .await
                    .map_err(|e| e.to_string())?;
                rpc.change_membership(deadline(CALL), change.clone()).await
            }
        };
        answer.map_err(|e| {
            self.conns.drop_conn(addr);
            format!("{addr}: {e}")
        })
    }
}

/// Makes `change` to `set`'s replicas, waits until it is in force, and (for a
/// group) records the group's new servers with the shardmasters behind
/// `masters`; gives up after `timeout`.
pub async fn change_replicas(
    masters: &MasterClerk,
    set: ReplicaSet,
    change: Change,
    timeout: Duration,
) -> Result<ChangeDone, ReplicaChangeError> {
    let until = Instant::now() + timeout;
    check_address(&change)?;
    let asker = Asker {
        set,
        conns: Connections::default(),
    };
    let addrs = set_addresses(masters, set, Some(&change)).await?;
    if let Change::Move { node, addr } = &change {
        // The replica set's own seats: a move onto another seat's address would
        // leave two seats at one process (found by the attack; the shardmaster
        // refused only the list afterwards).
        let best = asker.best_seats(&addrs).await.ok();
        let other = best.as_ref().and_then(|b| b.at_addr(addr)).map(|s| s.node);
        if let Some(other) = other.filter(|other| other != node) {
            return Err(ReplicaChangeError::SeatAddressInUse {
                set,
                addr: addr.clone(),
                node: other,
            });
        }
    }
    let already = propose(&asker, &addrs, &change, until).await?;
    let seats = in_force(&asker, &addrs, &change, until).await?;
    let recorded = match set {
        ReplicaSet::Group(gid) => Some(record(masters, &asker, &addrs, gid, &seats).await?),
        ReplicaSet::Masters => None,
    };
    Ok(ChangeDone {
        seats,
        already,
        recorded,
    })
}

/// Records group `gid`'s servers as `seats` say, then reads the group's seats
/// again and records once more while they differ: `Op::Servers` carries no
/// version, so a recording retried late by this command, or by another one run
/// at the same time, could put back an older list; each command's last word is
/// a list read after its own write (found by the attack on replica-set changes).
async fn record(
    masters: &MasterClerk,
    asker: &Asker,
    addrs: &[String],
    gid: Gid,
    seats: &GroupSeats,
) -> Result<OpResult, ReplicaChangeError> {
    let mut list = seats.addresses();
    let mut round = 0;
    loop {
        round += 1;
        let result = masters
            .set_servers(gid, list.clone())
            .await
            .map_err(|e| match e {
                ShardmasterError::UnknownGroup { gid } => ReplicaChangeError::LeftMeanwhile { gid },
                e => ReplicaChangeError::NotRecorded(e),
            })?;
        let now = asker
            .best_seats(addrs)
            .await
            .ok()
            .filter(|now| now.version >= seats.version)
            .map(|now| now.addresses());
        match now {
            Some(now) if now != list && round < RECORD_ROUNDS => list = now,
            _ => return Ok(result),
        }
    }
}

/// How many times one command records a group's servers at most.
const RECORD_ROUNDS: usize = 5;

/// The seats of `set` as its leader knows them, or else its most up-to-date
/// replica that answers (one recovering a lost disk knows only a guess).
pub async fn seats_of(
    masters: &MasterClerk,
    set: ReplicaSet,
) -> Result<GroupSeats, ReplicaChangeError> {
    let asker = Asker {
        set,
        conns: Connections::default(),
    };
    let addrs = set_addresses(masters, set, None).await?;
    asker
        .best_seats(&addrs)
        .await
        .map_err(|last| ReplicaChangeError::NoLeader { set, last })
}

/// Refuses a new address (`add`, `replace`) the shardmaster would refuse to
/// record (and Clerks could not reach), by the shardmaster's own rule.
fn check_address(change: &Change) -> Result<(), ReplicaChangeError> {
    if let Change::Add { addr } | Change::Move { addr, .. } = change {
        shardmaster::op::check_address(addr).map_err(|reason| ReplicaChangeError::BadAddress {
            addr: addr.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// The addresses of `set`'s replicas: a group's in the latest configuration,
/// once `change`'s new address (if any) is checked to belong to no other
/// group; the shardmasters' as `--masters` names them.
async fn set_addresses(
    masters: &MasterClerk,
    set: ReplicaSet,
    change: Option<&Change>,
) -> Result<Vec<String>, ReplicaChangeError> {
    let ReplicaSet::Group(gid) = set else {
        return Ok(masters.masters().to_vec());
    };
    let config = masters
        .query(ConfigNum::Latest)
        .await
        .map_err(ReplicaChangeError::NoConfiguration)?;
    let servers =
        config
            .groups
            .get(&gid)
            .cloned()
            .ok_or_else(|| ReplicaChangeError::UnknownGroup {
                gid,
                joined: config.groups.keys().copied().collect(),
            })?;
    if let Some(Change::Add { addr } | Change::Move { addr, .. }) = change {
        let taken = config
            .groups
            .iter()
            .find(|(&g, list)| g != gid && list.contains(addr));
        if let Some((&owner, _)) = taken {
            return Err(ReplicaChangeError::AddressInUse {
                addr: addr.clone(),
                owner,
            });
        }
    }
    Ok(servers)
}

/// Hands `change` to the set's leader, trying each of `addrs` and following
/// the leader's seat when a replica names it. True if it was in effect already.
async fn propose(
    asker: &Asker,
    addrs: &[String],
    change: &Change,
    until: Instant,
) -> Result<bool, ReplicaChangeError> {
    let mut last = String::from("no replica answered");
    let mut tries: Vec<String> = addrs.to_vec();
    while Instant::now() < until {
        let Some(addr) = tries.pop() else {
            tries = addrs.to_vec();
            tokio::time::sleep(POLL).await;
            continue;
        };
        match asker.propose_at(&addr, change).await {
            Ok(ChangeAnswer::Proposed) => {
                tracing::info!(%addr, %change, "membership change proposed");
                return Ok(false);
            }
            Ok(ChangeAnswer::InEffect) => return Ok(true),
            Ok(ChangeAnswer::Refused(ChangeRefused::Pending { from })) => {
                last = format!("another change is still taking effect (from instance {from})");
                tries.push(addr);
                tokio::time::sleep(POLL).await;
            }
            Ok(ChangeAnswer::Refused(why)) => return Err(ReplicaChangeError::Refused(why)),
            Ok(ChangeAnswer::NotLeader(hint)) => {
                last = format!("{addr} does not lead");
                let leader = match hint {
                    Some(seat) => asker
                        .seats_at(&addr)
                        .await
                        .ok()
                        .and_then(|(_, seats)| seats.seat(seat).map(|s| s.addr.clone())),
                    None => None,
                };
                if let Some(leader) = leader.filter(|l| *l != addr) {
                    tries.push(leader);
                }
            }
            Err(e) => last = e,
        }
    }
    Err(ReplicaChangeError::NoLeader {
        set: asker.set,
        last,
    })
}

/// Waits until a leader of the set shows `change` in force; its seats.
async fn in_force(
    asker: &Asker,
    addrs: &[String],
    change: &Change,
    until: Instant,
) -> Result<GroupSeats, ReplicaChangeError> {
    // A moved or added seat's address may lead by the end (the old one is gone).
    let mut ask: Vec<String> = addrs.to_vec();
    if let Change::Add { addr } | Change::Move { addr, .. } = change {
        if !ask.contains(addr) {
            ask.push(addr.clone());
        }
    }
    while Instant::now() < until {
        let answers = futures::future::join_all(ask.iter().map(|a| asker.seats_at(a))).await;
        let settled = answers.into_iter().flatten().find(|(role, seats)| {
            *role == NodeRole::Leader && seats.shows(change) && !seats.changing
        });
        if let Some((_, seats)) = settled {
            return Ok(seats);
        }
        tokio::time::sleep(POLL).await;
    }
    Err(ReplicaChangeError::NotInForce { set: asker.set })
}
