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
    let n = set.len();
    let majority = n / 2 + 1;
    let furthest = set
        .iter()
        .filter_map(|s| s.status.as_ref().map(Vitals::applied))
        .max()
        .unwrap_or(0);
    let mut health = Health::Healthy;
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
        if role.is_healthy() {
            voting += 1;
        } else {
            health = health.max(Health::Degraded);
            let why = s.error().map(|e| format!(": {e}")).unwrap_or_default();
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
    let named = |l: usize| {
        set.iter()
            .filter(|s| s.status.as_ref().and_then(Vitals::leader) == Some(l))
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
mod tests {
    use super::*;
    use paxos::node::{DiskUse, NodeReport};

    fn master(role: NodeRole, applied: u64, leader: Option<usize>) -> MasterStatus {
        MasterStatus {
            me: 0,
            addr: String::new(),
            node: NodeReport {
                role,
                leader,
                group_size: 3,
                commit_index: applied,
                max: applied,
                min: 0,
                error: None,
            },
            applied,
            latest_config: 1,
            disk: Some(DiskUse {
                used_bytes: 1 << 20,
                free_bytes: 1 << 30,
                total_bytes: 1 << 31,
            }),
            disk_error: None,
        }
    }

    fn up(s: MasterStatus) -> Seen<MasterStatus> {
        Seen {
            addr: "a:1".into(),
            status: Some(s),
            error: None,
            lag: None,
        }
    }

    fn down() -> Seen<MasterStatus> {
        Seen {
            addr: "a:1".into(),
            status: None,
            error: Some("cannot connect".into()),
            lag: None,
        }
    }

    fn verdict(set: &mut [Seen<MasterStatus>]) -> (Health, Option<usize>, Vec<String>) {
        let mut problems = Vec::new();
        let (h, l) = judge_set(
            "shardmasters",
            set,
            &SurveyOptions::default(),
            &mut problems,
        );
        (h, l, problems)
    }

    #[test]
    fn all_up_with_one_leader_is_healthy_and_lag_is_measured_from_the_furthest() {
        let mut set = vec![
            up(master(NodeRole::Leader, 100, Some(0))),
            up(master(NodeRole::Follower, 90, Some(0))),
            up(master(NodeRole::Follower, 100, Some(0))),
        ];
        let (h, l, p) = verdict(&mut set);
        assert_eq!((h, l), (Health::Healthy, Some(0)), "{p:?}");
        assert_eq!(set[1].lag, Some(10));
        assert_eq!(set[0].lag, Some(0));
    }

    #[test]
    fn a_minority_down_or_failed_or_far_behind_is_degraded() {
        let mut set = vec![
            up(master(NodeRole::Leader, 5000, Some(0))),
            up(master(NodeRole::Follower, 5000, Some(0))),
            down(),
        ];
        let (h, l, p) = verdict(&mut set);
        assert_eq!((h, l), (Health::Degraded, Some(0)));
        assert!(p[0].contains("replica 2") && p[0].contains("down"), "{p:?}");

        let mut set = vec![
            up(master(NodeRole::Leader, 5000, Some(0))),
            up(master(NodeRole::Follower, 5000, Some(0))),
            up(master(NodeRole::Follower, 10, Some(0))),
        ];
        let (h, _, p) = verdict(&mut set);
        assert_eq!(h, Health::Degraded);
        assert!(p[0].contains("4990 log instances behind"), "{p:?}");

        let mut failed = master(NodeRole::Failed, 5000, None);
        failed.node.error = Some("the disk is full".into());
        let mut set = vec![
            up(master(NodeRole::Leader, 5000, Some(0))),
            up(master(NodeRole::Follower, 5000, Some(0))),
            up(failed),
        ];
        let (h, _, p) = verdict(&mut set);
        assert_eq!(h, Health::Degraded);
        assert!(p[0].contains("failed: the disk is full"), "{p:?}");
    }

    #[test]
    fn no_majority_or_no_leader_is_unavailable() {
        let mut set = vec![up(master(NodeRole::Leader, 1, Some(0))), down(), down()];
        let (h, l, p) = verdict(&mut set);
        assert_eq!((h, l), (Health::Unavailable, None));
        assert!(
            p.last().unwrap().contains("1 voting replicas of 3"),
            "{p:?}"
        );

        let mut set = vec![
            up(master(NodeRole::Follower, 1, None)),
            up(master(NodeRole::Follower, 1, None)),
            up(master(NodeRole::Recovering, 1, None)),
        ];
        let (h, _, p) = verdict(&mut set);
        assert_eq!(h, Health::Unavailable);
        assert!(p.last().unwrap().contains("no leader"), "{p:?}");
    }

    #[test]
    fn of_two_replicas_that_think_they_lead_the_one_the_others_name_wins() {
        let mut set = vec![
            up(master(NodeRole::Leader, 1, Some(0))),
            up(master(NodeRole::Leader, 1, Some(1))),
            up(master(NodeRole::Follower, 1, Some(1))),
        ];
        assert_eq!(verdict(&mut set).1, Some(1));
    }

    #[test]
    fn a_nearly_full_disk_is_degraded() {
        let mut s = master(NodeRole::Follower, 1, Some(0));
        s.disk = Some(DiskUse {
            used_bytes: 1,
            free_bytes: 1 << 20,
            total_bytes: 1 << 30,
        });
        let mut set = vec![
            up(master(NodeRole::Leader, 1, Some(0))),
            up(s),
            up(master(NodeRole::Follower, 1, Some(0))),
        ];
        let (h, _, p) = verdict(&mut set);
        assert_eq!(h, Health::Degraded);
        assert!(p[0].contains("1 MiB of disk left"), "{p:?}");
    }

    #[test]
    fn no_configuration_or_an_unowned_shard_makes_the_cluster_unavailable() {
        let mut status = ClusterStatus {
            health: Health::Healthy,
            problems: vec![],
            notes: vec![],
            config: None,
            shards: vec![],
            master_leader: None,
            masters: vec![
                up(master(NodeRole::Leader, 1, Some(0))),
                up(master(NodeRole::Follower, 1, Some(0))),
                up(master(NodeRole::Follower, 1, Some(0))),
            ],
            groups: vec![],
        };
        judge(&mut status, &SurveyOptions::default());
        assert_eq!(status.health, Health::Unavailable);

        status.config = Some(1);
        status.shards = vec![NO_GROUP; 4];
        judge(&mut status, &SurveyOptions::default());
        assert_eq!(status.health, Health::Unavailable);
        assert!(status
            .problems
            .iter()
            .any(|p| p.contains("belong to no group")));

        status.problems.clear();
        status.shards = vec![];
        judge(&mut status, &SurveyOptions::default());
        assert_eq!(status.health, Health::Healthy, "{:?}", status.problems);
    }

    /// Found by the attack on `diskv admin status`: a replica whose disk could
    /// not be measured (its directory deleted under it, or unreadable) answers
    /// with `disk: None` and `disk_error`, which the verdict ignored: the
    /// cluster was "healthy" (exit 0), though healthy promises every process
    /// "has 5% of its disk free" (docs/REFERENCE.md §3), which nobody knows here.
    #[test]
    fn attack_a_replica_whose_disk_cannot_be_measured_is_not_healthy() {
        let mut blind = master(NodeRole::Follower, 1, Some(0));
        blind.disk = None;
        blind.disk_error = Some("cannot measure /data/m1: No such file or directory".into());
        let mut set = vec![
            up(master(NodeRole::Leader, 1, Some(0))),
            up(blind),
            up(master(NodeRole::Follower, 1, Some(0))),
        ];
        let (h, _, p) = verdict(&mut set);
        assert_eq!(h, Health::Degraded, "{p:?}");
        assert!(p.iter().any(|p| p.contains("No such file")), "{p:?}");
    }
}
