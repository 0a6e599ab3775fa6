//! The async driver and the replicated state machine, on an in-process network.

use paxos::rsm::{Rsm, StateMachine};
use paxos::storage::{FaultPlan, FaultyStorage, MemDisk};
use paxos::{Envelope, NodeOptions, PaxosNode, Slot, Transport};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Delivers envelopes straight into the receivers' inboxes.
#[derive(Default)]
struct LocalNet {
    inboxes: Mutex<Vec<Option<mpsc::Sender<Envelope>>>>,
}

impl Transport for LocalNet {
    fn send(&self, env: Envelope) {
        if let Some(Some(tx)) = self.inboxes.lock().unwrap().get(env.to) {
            let _ = tx.try_send(env);
        }
    }
}

/// A counter: commands add to it; the output is the new total.
#[derive(Default)]
struct Counter {
    total: u64,
    applied_slots: Vec<Slot>,
}

impl StateMachine for Counter {
    type Command = u64;
    type Output = u64;
    fn apply(&mut self, slot: Slot, cmd: u64) -> u64 {
        self.total += cmd;
        self.applied_slots.push(slot);
        self.total
    }
}

fn opts(i: usize, n: usize) -> NodeOptions {
    let mut o = NodeOptions::new(i, n);
    o.tick = Duration::from_millis(5);
    o
}

async fn group(n: usize, disks: &[MemDisk]) -> (Arc<LocalNet>, Vec<Rsm<Counter>>) {
    let net = Arc::new(LocalNet::default());
    let mut rsms = Vec::new();
    for (i, disk) in disks.iter().enumerate().take(n) {
        let (node, decisions) =
            PaxosNode::start(opts(i, n), Box::new(disk.open()), net.clone()).expect("start");
        net.inboxes.lock().unwrap().push(Some(node.inbox()));
        rsms.push(Rsm::start(
            i,
            node,
            decisions,
            Counter::default(),
            0,
            Duration::from_millis(200),
        ));
    }
    (net, rsms)
}

async fn execute_anywhere(rsms: &[Rsm<Counter>], cmd: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        assert!(Instant::now() < deadline, "command {cmd} never executed");
        let r = &rsms[i % rsms.len()];
        match r.execute(cmd, Duration::from_millis(500)).await {
            Ok(out) => return out,
            Err(_) => i += 1,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_applied_once_in_the_same_order_everywhere() {
    let disks: Vec<MemDisk> = (0..3).map(|_| MemDisk::new()).collect();
    let (_net, rsms) = group(3, &disks).await;
    let mut handles = Vec::new();
    for c in 0..32u64 {
        let rsms = rsms.clone();
        handles.push(tokio::spawn(async move {
            execute_anywhere(&rsms, 1 << (c % 8)).await
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let expected: u64 = (0..32u64).map(|c| 1 << (c % 8)).sum();
    // Executions that timed out and were retried may have applied twice; the
    // counter is a plain sum, so allow it, but every replica must agree.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let totals: Vec<u64> = rsms.iter().map(|r| r.with_state(|s| s.total)).collect();
        if totals.iter().all(|&t| t == totals[0] && t >= expected) {
            break;
        }
        assert!(Instant::now() < deadline, "replicas disagree: {totals:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let slots: Vec<Vec<Slot>> = rsms
        .iter()
        .map(|r| r.with_state(|s| s.applied_slots.clone()))
        .collect();
    assert!(
        slots.iter().all(|s| *s == slots[0]),
        "replicas applied different instance sequences"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_every_completed_write() {
    let disks: Vec<MemDisk> = (0..3).map(|_| MemDisk::new()).collect();
    let (_net, rsms) = group(3, &disks).await;
    for k in 1..=20u64 {
        execute_anywhere(&rsms, 1).await;
        // A read through the leader reflects every write completed before it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut read = None;
            for r in &rsms {
                if let Ok(t) = r.read(Duration::from_millis(500), |s| s.total).await {
                    read = Some(t);
                    break;
                }
            }
            if let Some(t) = read {
                assert!(t >= k, "read {t} after {k} completed writes");
                break;
            }
            assert!(Instant::now() < deadline, "no replica could serve a read");
        }
    }
    // Followers refuse reads instead of answering from possibly stale state.
    let refused = {
        let mut n = 0;
        for r in &rsms {
            if !r.node().is_leader()
                && r.read(Duration::from_millis(500), |s| s.total)
                    .await
                    .is_err()
            {
                n += 1;
            }
        }
        n
    };
    assert_eq!(refused, 2, "followers must not serve reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_storage_fails_stops_and_the_group_goes_on() {
    let disks: Vec<MemDisk> = (0..3).map(|_| MemDisk::new()).collect();
    let net = Arc::new(LocalNet::default());
    let mut rsms = Vec::new();
    let mut nodes = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let storage: Box<dyn paxos::Storage> = if i == 2 {
            Box::new(FaultyStorage::new(
                disk.open(),
                FaultPlan::fail_sync(3).then_stop(),
            ))
        } else {
            Box::new(disk.open())
        };
        let (node, decisions) = PaxosNode::start(opts(i, 3), storage, net.clone()).expect("start");
        net.inboxes.lock().unwrap().push(Some(node.inbox()));
        nodes.push(node.clone());
        rsms.push(Rsm::start(
            i,
            node,
            decisions,
            Counter::default(),
            0,
            Duration::from_millis(200),
        ));
    }
    for _ in 0..20 {
        execute_anywhere(&rsms[..2], 1).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nodes[2].has_failed() {
        assert!(
            Instant::now() < deadline,
            "replica 2 did not stop after its storage failed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        nodes[2].propose(vec![1]).is_err(),
        "a failed replica still takes proposals"
    );
}
