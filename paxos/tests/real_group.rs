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
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match TcpListener::bind(&addrs[me]).await {
            Ok(l) => break l,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot bind {}: {e}", addrs[me]);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let (stop, stop_rx) = watch::channel(false);
    let opts = HostOptions {
        log_dir: dir.join(format!("r{me}")),
        me,
        peers: addrs.to_vec(),
        unreliable: false,
        applied: 0,
        node: None,
        fsync: true,
        recovering: None,
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
