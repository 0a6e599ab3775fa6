//! Replica groups over the real transport (tarpc on 127.0.0.1) and the on-disk log.

use paxos::core::Status;
use paxos::host::{host, HostOptions, Hosted};
use paxos::{Entry, Slot};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

struct Member {
    hosted: Option<Hosted>,
    stop: watch::Sender<bool>,
}

async fn free_addrs(n: usize) -> Vec<String> {
    let mut addrs = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
    }
    addrs
}

async fn start_member(dir: &std::path::Path, me: usize, addrs: &[String]) -> Member {
    start_member_with(&dir.join(format!("r{me}")), me, addrs, None).await
}

/// Replica `me` of `peers`, listening at `peers[me]`, its log in `log_dir`;
/// with `recovering`, an empty process claiming its seat (a new or moved one).
async fn start_member_with(
    log_dir: &std::path::Path,
    me: usize,
    peers: &[String],
    recovering: Option<u64>,
) -> Member {
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match TcpListener::bind(&peers[me]).await {
            Ok(l) => break l,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot bind {}: {e}", peers[me]);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let (stop, stop_rx) = watch::channel(false);
    let opts = HostOptions {
        log_dir: log_dir.to_path_buf(),
        me,
        peers: peers.to_vec(),
        unreliable: false,
        applied: 0,
        node: None,
        fsync: true,
        recovering,
    };
    let hosted = host(listener, opts, stop_rx).expect("host");
    Member {
        hosted: Some(hosted),
        stop,
    }
}

fn node(m: &Member) -> &paxos::PaxosNode {
    &m.hosted.as_ref().expect("member is up").node
}

async fn wait_decided(members: &[Member], slot: Slot, want: usize) -> Entry {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let decided: Vec<Entry> = members
            .iter()
            .filter(|m| m.hosted.is_some())
            .filter_map(|m| match node(m).status(slot) {
                Status::Decided(e) => Some(e),
                _ => None,
            })
            .collect();
        if decided.len() >= want {
            assert!(
                decided.iter().all(|e| *e == decided[0]),
                "replicas disagree on {slot}: {decided:?}"
            );
            return decided[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "instance {slot} decided at {} replicas, wanted {want}",
            decided.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn group_decides_and_survives_a_restart(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(n).await;
    let mut members = Vec::new();
    for i in 0..n {
        members.push(start_member(dir.path(), i, &addrs).await);
    }
    for slot in 0..10u64 {
        let v = Entry::single(format!("v{slot}").into_bytes());
        node(&members[(slot as usize) % n]).start_instance(slot, v.clone());
        assert_eq!(wait_decided(&members, slot, n).await, v);
    }

    // Stop replica 1 (its log stays), decide more without it, restart it.
    let _ = members[1].stop.send(true);
    members[1].hosted = None;
    for slot in 10..15u64 {
        node(&members[0]).start_instance(slot, Entry::single(vec![slot as u8]));
        wait_decided(&members, slot, n - 1).await;
    }
    members[1] = start_member(dir.path(), 1, &addrs).await;
    // It remembers what it decided before, and catches up on what it missed.
    assert_eq!(
        node(&members[1]).status(3),
        Status::Decided(Entry::single(b"v3".to_vec()))
    );
    for slot in 10..15u64 {
        wait_decided(&members, slot, n).await;
    }
    for m in &members {
        let _ = m.stop.send(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_over_tcp() {
    group_decides_and_survives_a_restart(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_replicas_over_tcp() {
    group_decides_and_survives_a_restart(5).await;
}

/// Waits (up to 20 s) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The member that leads, among those up.
async fn leader_of(members: &[Member]) -> usize {
    let mut found = None;
    until("a leader", || {
        found = members
            .iter()
            .position(|m| m.hosted.is_some() && node(m).is_leader());
        found.is_some()
    })
    .await;
    found.unwrap()
}

/// Asks the leader for `change` until the leader has it in force.
async fn make_change(members: &[Member], change: paxos::core::Change) {
    use paxos::core::ChangeAnswer;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = leader_of(members).await;
        match node(&members[l]).propose_change(change.clone()) {
            ChangeAnswer::Refused(paxos::core::ChangeRefused::Pending { .. })
            | ChangeAnswer::NotLeader(_)
            | ChangeAnswer::Proposed
            | ChangeAnswer::InEffect => {}
            ChangeAnswer::Refused(why) => panic!("{change} refused: {why}"),
        }
        // In force at the leader (a moved seat's old process hears nothing more).
        let n = node(&members[l]);
        let ms = n.membership();
        let done = ms.already(&change) && ms.latest_start() <= n.commit_index();
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{change} not in force within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Proposes `cmd` at the leader and waits until `want` members up decided it.
async fn decide(members: &[Member], cmd: &str, want: usize) {
    let entry_has = |e: &Entry| e.commands().iter().any(|c| c.as_ref() == cmd.as_bytes());
    let l = leader_of(members).await;
    node(&members[l]).propose(cmd.as_bytes().to_vec()).unwrap();
    until(&format!("{cmd} decided at {want} replicas"), || {
        members
            .iter()
            .filter(|m| m.hosted.is_some())
            .filter(|m| {
                let n = node(m);
                (0..n.commit_index())
                    .any(|s| matches!(n.status(s), Status::Decided(e) if entry_has(&e)))
            })
            .count()
            >= want
    })
    .await;
}

/// Runs until seat `seat` is held by the new process and that is in force
/// at every member up.
async fn claimed(members: &[Member], seat: usize) {
    until(&format!("seat {seat} claimed and in force"), || {
        members.iter().filter(|m| m.hosted.is_some()).all(|m| {
            let n = node(m);
            let ms = n.membership();
            ms.latest().get(seat).is_some_and(|m| !m.vacant)
                && ms.latest_start() <= n.commit_index()
        })
    })
    .await;
}

/// Membership changes over the real transport: a replica at a new address is
/// added, claims its seat and is promoted, and its vote is needed to decide
/// with a founder down; then a seat moves to another address, and the other
/// replicas' transports follow it (the new process's vote is needed too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_adds_a_replica_and_moves_a_seat_over_tcp() {
    use paxos::core::Change;
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(5).await;
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(start_member(dir.path(), i, &addrs[..3]).await);
    }
    decide(&members, "before", 3).await;

    // Add: a new replica at addrs[3], started empty after the change.
    make_change(
        &members,
        Change::Add {
            addr: addrs[3].clone(),
        },
    )
    .await;
    let four: Vec<String> = addrs[..4].to_vec();
    members.push(start_member_with(&dir.path().join("r3"), 3, &four, Some(0x5eed_0003)).await);
    claimed(&members, 3).await;
    make_change(&members, Change::Promote { node: 3 }).await;

    // Four voters: with one founder down, the new replica's vote is needed.
    let l = leader_of(&members).await;
    let down = (0..3).find(|&i| i != l).unwrap();
    let _ = members[down].stop.send(true);
    members[down].hosted = None;
    decide(&members, "with the new voter", 3).await;

    // The founder comes back (all four vote again), then a seat moves.
    members[down] = start_member(dir.path(), down, &addrs[..3]).await;
    decide(&members, "all four again", 4).await;
    // Move: another founder's seat goes to addrs[4] (a replacement machine).
    let l = leader_of(&members).await;
    let moved = (0..3).find(|&i| i != l && i != down).unwrap();
    make_change(
        &members,
        Change::Move {
            node: moved,
            addr: addrs[4].clone(),
        },
    )
    .await;
    let _ = members[moved].stop.send(true);
    members[moved].hosted = None;
    let mut peers = four.clone();
    peers[moved] = addrs[4].clone();
    members[moved] =
        start_member_with(&dir.path().join("moved"), moved, &peers, Some(0x5eed_0004)).await;
    claimed(&members, moved).await;
    // One voter down (not the leader, not the moved one): deciding needs the
    // moved replica, at its new address — which the founder restarted with
    // the old `--peers` knows only from the membership.
    let l = leader_of(&members).await;
    let second_down = (0..4).find(|&i| i != l && i != moved).unwrap();
    let _ = members[second_down].stop.send(true);
    members[second_down].hosted = None;
    decide(&members, "after the move", 3).await;
    for m in &members {
        let _ = m.stop.send(true);
    }
}
