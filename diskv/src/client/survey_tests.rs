//! The survey's verdict, judged on made-up answers.

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
            seats: Default::default(),
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
    for (i, s) in set.iter_mut().enumerate() {
        if let Some(s) = &mut s.status {
            s.me = i;
        }
    }
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

/// A set's seats of these kinds, seat `i` at `h<i>:1`, as a leader reports them.
fn group_seats(kinds: &[paxos::core::Seat], version: u64) -> paxos::node::GroupSeats {
    use paxos::node::{GroupSeats, SeatReport};
    GroupSeats {
        seats: kinds
            .iter()
            .enumerate()
            .map(|(node, &seat)| SeatReport {
                node,
                addr: format!("h{node}:1"),
                seat,
                vacant: false,
                heard: None,
            })
            .collect(),
        changing: false,
        version,
        provisional: false,
    }
}

/// Issue #15: a group whose seats changed. Learners do not vote and are not a
/// problem; the majority is over the voter seats only; the leader is named by
/// seat, which is not its place in the list once a seat was removed.
#[test]
fn learners_do_not_vote_and_the_leader_is_found_by_seat() {
    use paxos::core::Seat;
    // Seats: 0 voter, 1 removed, 2 voter, 3 voter, 4 learner, 5 learner. The
    // list leaves the removed seat out: positions 0..5 hold seats 0, 2, 3, 4, 5.
    let kinds = [
        Seat::Voter,
        Seat::Removed,
        Seat::Voter,
        Seat::Voter,
        Seat::Learner,
        Seat::Learner,
    ];
    let seats = group_seats(&kinds, 9);
    let replica = |seat: usize, role: NodeRole| {
        let mut s = master(role, 100, Some(3));
        s.me = seat;
        s.node.seats = seats.clone();
        Seen {
            addr: format!("h{seat}:1"),
            ..up(s)
        }
    };
    let judge = |set: &mut [Seen<MasterStatus>]| {
        let mut problems = Vec::new();
        let (h, l) = judge_set("group 1", set, &SurveyOptions::default(), &mut problems);
        (h, l, problems)
    };
    let mut set = vec![
        replica(0, NodeRole::Follower),
        replica(2, NodeRole::Follower),
        replica(3, NodeRole::Leader),
        replica(4, NodeRole::Learner),
        replica(5, NodeRole::Learner),
    ];
    let (h, l, p) = judge(&mut set);
    assert_eq!(h, Health::Healthy, "{p:?}");
    assert_eq!(l, Some(2), "the leader is seat 3, at place 2 of the list");

    // Two of the three voters down: the two learners up make no majority.
    set[0] = Seen {
        addr: "h0:1".into(),
        ..down()
    };
    set[1] = Seen {
        addr: "h2:1".into(),
        ..down()
    };
    let (h, l, p) = judge(&mut set);
    assert_eq!((h, l), (Health::Unavailable, None), "{p:?}");
    assert!(
        p.iter().any(|p| p.contains("1 voting replicas of 3")),
        "{p:?}"
    );

    // A removed replica still listed is a problem, with what to do.
    let mut set = vec![
        replica(0, NodeRole::Follower),
        replica(1, NodeRole::Removed),
        replica(2, NodeRole::Follower),
        replica(3, NodeRole::Leader),
    ];
    let (h, l, p) = judge(&mut set);
    assert_eq!((h, l), (Health::Degraded, Some(3)), "{p:?}");
    assert!(p.iter().any(|p| p.contains("is removed")), "{p:?}");
}

/// Attack finding 4. The survey asks only the addresses it was given (the
/// `--masters` of `admin status`, or a group's list in the latest
/// configuration), and counts a majority over the voter seats the best view
/// reports. A voter seat that is not in that list — a shardmaster added and
/// promoted with `admin replica add|promote master` while `admin status` still
/// runs with the old `--masters`, or a group whose list was not recorded (an
/// interrupted command, or two commands whose recordings crossed) — is never
/// looked at: down, the set is called healthy although one more failure stops
/// it; up, with one listed voter down, the set is called unavailable although
/// three of its four voters run.
#[test]
fn attack_a_voter_missing_from_the_surveyed_list_is_not_ignored() {
    use paxos::core::Seat;
    // Four voters, seats 0..3; the surveyed list names seats 0, 1, 2 only.
    let seats = group_seats(&[Seat::Voter; 4], 4);
    let replica = |seat: usize, role: NodeRole| {
        let mut s = master(role, 100, Some(0));
        s.me = seat;
        s.node.seats = seats.clone();
        up(s)
    };
    let judge = |set: &mut [Seen<MasterStatus>]| {
        let mut problems = Vec::new();
        let (h, l) = judge_set(
            "shardmasters",
            set,
            &SurveyOptions::default(),
            &mut problems,
        );
        (h, l, problems)
    };
    // Seat 3 is down (nobody asked it): one more failure and 2 of 4 vote.
    let mut set = vec![
        replica(0, NodeRole::Leader),
        replica(1, NodeRole::Follower),
        replica(2, NodeRole::Follower),
    ];
    let (h, _, p) = judge(&mut set);
    assert_ne!(
        h,
        Health::Healthy,
        "voter seat 3 (h3:1) was not surveyed, yet the set is called healthy: {p:?}"
    );
    // Seat 3 is up, seat 2 down: 3 of 4 voters may run and the set decide;
    // "unavailable" without a word about seat 3 sends the operator the wrong way.
    set[2] = down();
    let (_, _, p) = judge(&mut set);
    assert!(
        p.iter().any(|p| p.contains("h3:1")),
        "voter seat 3 (h3:1) was not surveyed and no problem names it: {p:?}"
    );
}
