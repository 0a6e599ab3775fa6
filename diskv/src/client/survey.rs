//! A survey of a whole cluster for an operator (`diskv admin status`): the
//! latest shard configuration from the shardmasters, then every shardmaster and
//! every group replica asked for its status at once, each within one deadline,
//! and a verdict — healthy, degraded or unavailable — with the reasons.

use crate::rpc::conn::Connections;
use crate::rpc::status::{self as replica_status, ReplicaStatus};
use crate::state::shard::ShardMode;
use futures::future::join_all;
use paxos::node::NodeRole;
use serde::Serialize;
use shardmaster::status::{self as master_status, MasterStatus};
use shardmaster::{ClerkOptions, ConfigNum, Gid, NO_GROUP};
use std::time::Duration;

/// What an operator is told about the cluster as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Every process answers, votes and keeps up.
    Healthy,
    /// Everything is served, but some replica is down, failed, recovering, far
    /// behind or short of disk: one more failure may cost availability.
    Degraded,
    /// Some shard cannot be served now: a group or the shardmasters lack a
    /// voting majority or a leader, or no configuration could be read.
    Unavailable,
}

impl Health {
    /// The lowercase name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unavailable => "unavailable",
        }
    }
}

/// One process as the survey saw it: its answer, or why there was none.
#[derive(Clone, Debug, Serialize)]
pub struct Seen<T> {
    /// The address asked.
    pub addr: String,
    /// Its status, if it answered in time.
    pub status: Option<T>,
    /// Why it did not answer (it counts as down).
    pub error: Option<String>,
    /// How many log instances it has applied fewer than the furthest replica of
    /// its set that answered.
    pub lag: Option<u64>,
}

/// A replica group: the shards the configuration gives it and its replicas.
#[derive(Clone, Debug, Serialize)]
pub struct GroupView {
    /// The group's id.
    pub gid: Gid,
    /// The shards the latest configuration assigns to it.
    pub shards: Vec<usize>,
    /// The leader (an index into `replicas`) that a majority of those that
    /// answered agree on, if any.
    pub leader: Option<usize>,
    /// Every replica, in the configuration's order.
    pub replicas: Vec<Seen<ReplicaStatus>>,
}

/// The whole survey; serialized as is by `diskv admin status --json`.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// The verdict.
    pub health: Health,
    /// What makes it less than healthy, one sentence each.
    pub problems: Vec<String>,
    /// What is in motion but not a problem (shards moving between groups).
    pub notes: Vec<String>,
    /// The latest configuration's number, if the shardmasters answered.
    pub config: Option<u64>,
    /// The owner of every shard in that configuration (0: no group).
    pub shards: Vec<Gid>,
    /// The leader among the shardmasters (an index into `masters`), if any.
    pub master_leader: Option<usize>,
    /// Every shardmaster replica.
    pub masters: Vec<Seen<MasterStatus>>,
    /// Every group of the configuration.
    pub groups: Vec<GroupView>,
}

/// What the survey judges by.
#[derive(Clone, Debug)]
pub struct SurveyOptions {
    /// How long each process has to answer (and the configuration query).
    pub timeout: Duration,
    /// A replica this many applied instances behind its set's furthest counts as
    /// lagging (degraded).
    pub max_lag: u64,
    /// A replica whose file system has less free space than this share of its
    /// size counts as short of disk (degraded).
    pub min_free_ratio: f64,
}

impl Default for SurveyOptions {
    fn default() -> Self {
        SurveyOptions {
            timeout: Duration::from_secs(2),
            max_lag: 1000,
            min_free_ratio: 0.05,
        }
    }
}

/// The part of a status the verdict needs, common to both kinds of replica.
trait Vitals {
    fn role(&self) -> NodeRole;
    fn leader(&self) -> Option<usize>;
    fn applied(&self) -> u64;
    fn disk(&self) -> Option<paxos::node::DiskUse>;
    fn disk_error(&self) -> Option<&str>;
    fn error(&self) -> Option<&str>;
    /// Its seat in its group (its `--me`).
    fn seat(&self) -> usize;
    /// Its group's seats as it knows them.
    fn seats(&self) -> &paxos::node::GroupSeats;
}

/// Both kinds of status carry the same fields under the same names.
macro_rules! vitals {
    ($($status:ty),+) => {$(
        impl Vitals for $status {
            fn role(&self) -> NodeRole {
                self.node.role
            }
            fn leader(&self) -> Option<usize> {
                self.node.leader
            }
            fn applied(&self) -> u64 {
                self.applied
            }
            fn disk(&self) -> Option<paxos::node::DiskUse> {
                self.disk
            }
            fn disk_error(&self) -> Option<&str> {
                self.disk_error.as_deref()
            }
            fn error(&self) -> Option<&str> {
                self.node.error.as_deref()
            }
            fn seat(&self) -> usize {
                self.me
            }
            fn seats(&self) -> &paxos::node::GroupSeats {
                &self.node.seats
            }
        }
    )+};
}

vitals!(ReplicaStatus, MasterStatus);

/// Surveys the cluster whose shardmasters are `masters`. Never fails: what could
/// not be reached is reported as down and judged.
///
/// `conns` holds the connections to the group replicas; a caller that surveys
/// again and again (the dashboard) keeps one, so it does not open (and, with
/// TLS, handshake) a connection to every replica at every survey.
pub async fn survey(
    masters: Vec<String>,
    opts: &SurveyOptions,
    conns: &Connections,
) -> ClusterStatus {
    let clerk = shardmaster::Clerk::with_options(
        masters.clone(),
        ClerkOptions {
            deadline: Some(opts.timeout),
            ..ClerkOptions::default()
        },
    );
    let (config, master_answers) = tokio::join!(
        clerk.query(ConfigNum::Latest),
        join_all(
            masters
                .iter()
                .map(|addr| master_status::ask(addr, opts.timeout))
        )
    );
    let mut status = ClusterStatus {
        health: Health::Healthy,
        problems: Vec::new(),
        notes: Vec::new(),
        config: None,
        shards: Vec::new(),
        master_leader: None,
        masters: seen(&masters, master_answers),
        groups: Vec::new(),
    };
    match config {
        Ok(config) => {
            let config = &config;
            let groups = join_all(config.groups.iter().map(|(&gid, servers)| async move {
                let answers = join_all(
                    servers
                        .iter()
                        .map(|addr| replica_status::ask(conns, addr, opts.timeout)),
                )
                .await;
                GroupView {
                    gid,
                    shards: config.shards_of(gid),
                    leader: None,
                    replicas: seen(servers, answers),
                }
            }))
            .await;
            status.config = Some(config.num);
            status.shards = config.shards.clone();
            status.groups = groups;
        }
        Err(e) => status.problems.push(format!(
            "unavailable: the shardmasters gave no configuration ({e})"
        )),
    }
    judge(&mut status, opts);
    status
}

/// Pairs each address with its answer.
fn seen<T>(addrs: &[String], answers: Vec<Result<T, String>>) -> Vec<Seen<T>> {
    addrs
        .iter()
        .zip(answers)
        .map(|(addr, answer)| {
            let (status, error) = match answer {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            };
            Seen {
                addr: addr.clone(),
                status,
                error,
                lag: None,
            }
        })
        .collect()
}

/// Fills in lags, leaders, problems and the verdict from the answers.
fn judge(status: &mut ClusterStatus, opts: &SurveyOptions) {
    let mut worst = if status.config.is_some() {
        Health::Healthy
    } else {
        Health::Unavailable
    };
    let mut problems = std::mem::take(&mut status.problems);
    let (health, leader) = judge_set("shardmasters", &mut status.masters, opts, &mut problems);
    worst = worst.max(health);
    status.master_leader = leader;
    for group in &mut status.groups {
        let (health, leader) = judge_set(
            &format!("group {}", group.gid),
            &mut group.replicas,
            opts,
            &mut problems,
        );
        worst = worst.max(health);
        group.leader = leader;
        if let Some(s) = leader.and_then(|l| group.replicas[l].status.as_ref()) {
            for (shard, mode) in &s.shards {
                match mode {
                    ShardMode::Serving => {}
                    ShardMode::Pulling { from, config } => status.notes.push(format!(
                        "shard {shard} is moving from group {from} to group {} (configuration {config})",
                        group.gid
                    )),
                    ShardMode::Leaving { to, config } => status.notes.push(format!(
                        "shard {shard} is leaving group {} for group {to} (configuration {config})",
                        group.gid
                    )),
                }
            }
            if let Some(num) = status.config.filter(|&n| n > s.config) {
                status.notes.push(format!(
                    "group {} is at configuration {} of {num}",
                    group.gid, s.config
                ));
            }
        }
    }
    let unowned: Vec<usize> = (0..status.shards.len())
        .filter(|&s| status.shards[s] == NO_GROUP)
        .collect();
    if !unowned.is_empty() {
        worst = Health::Unavailable;
        problems.push(format!(
            "unavailable: shards {unowned:?} belong to no group (join a group: diskv admin join)"
        ));
    }
    status.health = worst;
    status.problems = problems;
}

/// Judges one replica set (the shardmasters or one group): fills in each one's
/// lag, finds the leader, and says how healthy the set is and why.
fn judge_set<T: Vitals>(
    name: &str,
    set: &mut [Seen<T>],
    opts: &SurveyOptions,
    problems: &mut Vec<String>,
) -> (Health, Option<usize>) {
    // Only voter seats count towards a majority (learners do not vote), as the
    // leader (or else the replica that has learned the most membership changes)
    // knows them; with no such answer, every listed replica is taken for a voter.
    let views = set
        .iter()
        .filter_map(|s| s.status.as_ref())
        .map(|s| (s.role() == NodeRole::Leader, s.seats()));
    let best = paxos::node::GroupSeats::best(views);
    let n = best
        .map(|seats| seats.voters())
        .filter(|&voters| voters > 0)
        .unwrap_or(set.len());
    let majority = n / 2 + 1;
    let mut health = Health::Healthy;
    // A seat the set has but the list does not name is a replica nobody asked:
    // its vote may be missing or present, and an operator must hear of it.
    for seat in best.map(|b| b.seats.as_slice()).unwrap_or_default() {
        if seat.seat != paxos::core::Seat::Removed && !set.iter().any(|s| s.addr == seat.addr) {
            health = Health::Degraded;
            problems.push(format!(
                "degraded: {name} replica {} ({}) is a {:?} of the set but not in the list \
                 surveyed: record the servers again (repeat the diskv admin replica command), \
                 or for the shardmasters add it to --masters",
                seat.node, seat.addr, seat.seat
            ));
        }
    }
    let furthest = set
        .iter()
        .filter_map(|s| s.status.as_ref().map(Vitals::applied))
        .max()
        .unwrap_or(0);
    let mut voting = 0;
    let mut leaders = Vec::new();
    for (i, seen) in set.iter_mut().enumerate() {
        let Some(s) = &seen.status else {
            health = health.max(Health::Degraded);
            problems.push(format!(
                "degraded: {name} replica {i} ({}) is down: {}",
                seen.addr,
                seen.error.as_deref().unwrap_or("no answer")
            ));
            continue;
        };
        let lag = furthest.saturating_sub(s.applied());
        seen.lag = Some(lag);
        let role = s.role();
        if role.votes() {
            voting += 1;
        } else if !role.is_healthy() {
            health = health.max(Health::Degraded);
            let why = match role {
                NodeRole::Removed => ": its seat was removed from the group; stop it, and record \
                    the group's servers again (repeat the diskv admin replica command)"
                    .to_string(),
                _ => s.error().map(|e| format!(": {e}")).unwrap_or_default(),
            };
            problems.push(format!(
                "degraded: {name} replica {i} ({}) is {}{why}",
                seen.addr,
                role.name()
            ));
        }
        if role == NodeRole::Leader {
            leaders.push(i);
        }
        if lag > opts.max_lag {
            health = health.max(Health::Degraded);
            problems.push(format!(
                "degraded: {name} replica {i} ({}) is {lag} log instances behind",
                seen.addr
            ));
        }
        if let (None, Some(e)) = (s.disk(), s.disk_error()) {
            // Healthy promises 5% of the disk free: unknown is not that.
            health = health.max(Health::Degraded);
            problems.push(format!(
                "degraded: {name} replica {i} ({}) cannot tell its free disk: {e}",
                seen.addr
            ));
        }
        if let Some(d) = s.disk() {
            if d.total_bytes > 0
                && (d.free_bytes as f64) < opts.min_free_ratio * d.total_bytes as f64
            {
                health = health.max(Health::Degraded);
                problems.push(format!(
                    "degraded: {name} replica {i} ({}) has {} MiB of disk left of {} MiB",
                    seen.addr,
                    d.free_bytes >> 20,
                    d.total_bytes >> 20
                ));
            }
        }
    }
    if voting < majority {
        problems.push(format!(
            "unavailable: {name} has {voting} voting replicas of {n}, and needs {majority}"
        ));
        return (Health::Unavailable, None);
    }
    // Two replicas may both think they lead for a moment (the older one has not
    // heard of the newer ballot yet); the one most replicas name is the leader.
    // Replicas name the leader by seat, which is its place in the list only
    // until a seat is removed or added.
    let named = |l: usize| {
        let seat = set[l].status.as_ref().map(Vitals::seat);
        set.iter()
            .filter(|s| seat.is_some() && s.status.as_ref().and_then(Vitals::leader) == seat)
            .count()
    };
    let leader = leaders.into_iter().max_by_key(|&l| named(l));
    if leader.is_none() {
        problems.push(format!(
            "unavailable: {name} has no leader (an election may be under way; ask again)"
        ));
        return (Health::Unavailable, None);
    }
    (health, leader)
}

#[cfg(test)]
#[path = "survey_tests.rs"]
mod tests;
