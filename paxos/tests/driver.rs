//! The async driver and the replicated state machine, on an in-process network.

use paxos::rsm::{Rsm, StateMachine};
use paxos::storage::{FaultPlan, FaultSwitch, FaultyStorage, MemDisk};
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
    /// How long each apply takes.
    apply_delay: Duration,
}

impl StateMachine for Counter {
    type Command = u64;
    type Output = u64;
    fn apply(&mut self, slot: Slot, cmd: u64) -> u64 {
        if !self.apply_delay.is_zero() {
            std::thread::sleep(self.apply_delay);
        }
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

/// Waits until `cond` holds, or fails with `what` after `secs` seconds.
async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts replica `i` of `n` over `disk`, reopened through `switch` after a failure.
fn reviving(
    i: usize,
    n: usize,
    disk: &MemDisk,
    switch: &FaultSwitch,
    net: &Arc<LocalNet>,
) -> (PaxosNode, mpsc::UnboundedReceiver<paxos::Decision>) {
    let (disk, switch) = (disk.clone(), switch.clone());
    let reopen: paxos::node::Reopen = Arc::new(move || {
        Ok(Box::new(FaultyStorage::with_switch(
            disk.open(),
            FaultPlan::default(),
            switch.clone(),
        )) as Box<dyn paxos::Storage>)
    });
    let first = reopen().expect("open");
    PaxosNode::start_reviving(opts(i, n), first, reopen, net.clone()).expect("start")
}

/// A full disk stops one replica of three like a crash; the group goes on, and
/// once space is freed the replica restarts from its log by itself and applies
/// every instance exactly once, in order (issue #18, B4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_disk_fills_resumes_by_itself_once_space_is_freed() {
    let disks: Vec<MemDisk> = (0..3).map(|_| MemDisk::new()).collect();
    let switch = FaultSwitch::default();
    let net = Arc::new(LocalNet::default());
    let mut rsms = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let (node, decisions) = if i == 2 {
            reviving(i, 3, disk, &switch, &net)
        } else {
            PaxosNode::start(opts(i, 3), Box::new(disk.open()), net.clone()).expect("start")
        };
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
    for _ in 0..10 {
        execute_anywhere(&rsms, 1).await;
    }
    switch.fill();
    for _ in 0..20 {
        execute_anywhere(&rsms[..2], 1).await;
    }
    wait_for(10, "replica 2 did not stop on a full disk", || {
        rsms[2].node().has_failed()
    })
    .await;
    let failure = rsms[2].node().failure().expect("a failure is reported");
    assert!(failure.no_space && failure.revivable, "{failure:?}");
    assert!(
        failure.advice().contains("disk is full"),
        "{}",
        failure.advice()
    );
    switch.make_room();
    wait_for(15, "replica 2 did not resume after space was freed", || {
        !rsms[2].node().has_failed()
    })
    .await;
    for _ in 0..10 {
        execute_anywhere(&rsms, 1).await;
    }
    wait_for(15, "replica 2 did not catch up", || {
        rsms[2].with_state(|s| s.total) == rsms[0].with_state(|s| s.total)
    })
    .await;
    let slots: Vec<Vec<Slot>> = rsms
        .iter()
        .map(|r| r.with_state(|s| s.applied_slots.clone()))
        .collect();
    assert_eq!(
        slots[2], slots[0],
        "the revived replica applied a different sequence"
    );
    assert!(
        slots[2].windows(2).all(|w| w[0] < w[1]),
        "an instance applied twice"
    );
}

/// A one-replica group whose disk fills keeps what it decided, refuses new
/// proposals while full, and takes them again once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_replica_with_a_full_disk_keeps_its_state_and_resumes() {
    let disk = MemDisk::new();
    let switch = FaultSwitch::default();
    let net = Arc::new(LocalNet::default());
    let (node, decisions) = reviving(0, 1, &disk, &switch, &net);
    net.inboxes.lock().unwrap().push(Some(node.inbox()));
    let rsm = Rsm::start(
        0,
        node,
        decisions,
        Counter::default(),
        0,
        Duration::from_millis(200),
    );
    for _ in 0..5 {
        execute_anywhere(std::slice::from_ref(&rsm), 1).await;
    }
    switch.fill();
    // The next command cannot be made durable: the replica stops.
    let _ = rsm.execute(1, Duration::from_millis(300)).await;
    wait_for(10, "the replica did not stop on a full disk", || {
        rsm.node().has_failed()
    })
    .await;
    assert!(
        rsm.node().propose(vec![1]).is_err(),
        "a full replica took a proposal"
    );
    assert_eq!(
        rsm.with_state(|s| s.total),
        5,
        "decided commands were lost or one applied while full"
    );
    switch.make_room();
    wait_for(15, "the replica did not resume", || {
        !rsm.node().has_failed()
    })
    .await;
    let total = execute_anywhere(std::slice::from_ref(&rsm), 1).await;
    assert!(
        total == 6 || total == 7,
        "total {total}: the command sent while full may apply once, no more"
    );
    let slots = rsm.with_state(|s| s.applied_slots.clone());
    assert!(
        slots.windows(2).all(|w| w[0] < w[1]),
        "an instance applied twice: {slots:?}"
    );
}

/// After a failed sync the disk may have dropped records the page cache still
/// shows, so the replica must not restart from its log by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_is_not_revived() {
    let disk = MemDisk::new();
    let net = Arc::new(LocalNet::default());
    let opened = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (d, o) = (disk.clone(), opened.clone());
    let reopen: paxos::node::Reopen = Arc::new(move || {
        o.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Box::new(FaultyStorage::new(d.open(), FaultPlan::default())) as Box<dyn paxos::Storage>)
    });
    let first = Box::new(FaultyStorage::new(disk.open(), FaultPlan::fail_sync(3)));
    let (node, decisions) =
        PaxosNode::start_reviving(opts(0, 1), first, reopen, net.clone()).expect("start");
    net.inboxes.lock().unwrap().push(Some(node.inbox()));
    let rsm = Rsm::start(
        0,
        node,
        decisions,
        Counter::default(),
        0,
        Duration::from_millis(200),
    );
    wait_for(10, "the sync fault never struck", || {
        let _ = rsm.node().propose(vec![1]);
        rsm.node().has_failed()
    })
    .await;
    let failure = rsm.node().failure().expect("a failure is reported");
    assert!(!failure.revivable, "{failure:?}");
    // Three back-offs (0.2 + 0.4 + 0.8 s) would have revived a revivable failure.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        rsm.node().has_failed(),
        "a replica revived after a failed sync"
    );
    assert_eq!(
        opened.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the log was opened again"
    );
}

/// Found by the attack on the in-place revive: right after a restart, writes
/// acknowledged before it wait in the log to be applied again (slowly, here), so
/// a failed one-replica group may serve a read from its state only once that
/// state covers `PaxosNode::restored_end` (the guard of `diskv::service`'s reads
/// on a failed replica). Whenever the guard passes, every acknowledged write is
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_single_replica_serves_reads_only_once_its_state_covers_the_restored_log() {
    let disk = MemDisk::new();
    let switch = FaultSwitch::default();
    let net = Arc::new(LocalNet::default());
    let (node, decisions) = reviving(0, 1, &disk, &switch, &net);
    net.inboxes.lock().unwrap().push(Some(node.inbox()));
    let rsm = Rsm::start(
        0,
        node.clone(),
        decisions,
        Counter::default(),
        0,
        Duration::from_millis(50),
    );
    const ACKED: u64 = 1500;
    for _ in 0..ACKED {
        execute_anywhere(std::slice::from_ref(&rsm), 1).await;
    }
    node.stop();
    drop(rsm);
    switch.fill();
    let net = Arc::new(LocalNet::default());
    let (node, decisions) = reviving(0, 1, &disk, &switch, &net);
    net.inboxes.lock().unwrap().push(Some(node.inbox()));
    assert!(
        node.restored_end() >= ACKED,
        "the restored log ends at {}",
        node.restored_end()
    );
    // Replaying the log takes about 3 s; the disk is full before it ends.
    let slow = Counter {
        apply_delay: Duration::from_millis(2),
        ..Counter::default()
    };
    let rsm = Rsm::start(
        0,
        node.clone(),
        decisions,
        slow,
        0,
        Duration::from_millis(50),
    );
    wait_for(10, "the restarted replica never failed", || {
        node.has_failed()
    })
    .await;
    let (mut refused, mut served) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while served < 20 && Instant::now() < deadline {
        let guard = rsm.applied() >= node.restored_end();
        let total = rsm.with_state(|s| s.total);
        if guard {
            served += 1;
            assert_eq!(total, ACKED, "a read would miss acknowledged writes");
        } else {
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        refused > 0,
        "the replay ended before the replica failed: nothing was tested"
    );
}
