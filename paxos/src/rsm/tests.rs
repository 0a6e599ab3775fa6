//! The driver's own tests: cancelled calls, and the log window's stall.

use super::*;
use crate::storage::MemDisk;
use crate::{Envelope, NodeOptions, Transport};

/// Loses every message: the replica never hears a majority.
struct Void;
impl Transport for Void {
    fn send(&self, _: Envelope) {}
}

/// Replica 0 of a group of `n` on a memory disk, whose messages are all lost.
fn cut_off(
    n: usize,
) -> (
    PaxosNode,
    tokio::sync::mpsc::UnboundedReceiver<crate::node::Decision>,
) {
    PaxosNode::start(
        NodeOptions::new(0, n),
        Box::new(MemDisk::default().open()),
        Arc::new(Void),
    )
    .expect("start")
}

struct Nop;
impl StateMachine for Nop {
    type Command = u64;
    type Output = u64;
    fn apply(&mut self, _: Slot, cmd: u64) -> u64 {
        cmd
    }
}

/// Attack on the local path (diskv's front door calls `KvService::execute_request`
/// directly and drops it at the pool's deadline): a caller that drops
/// `Rsm::execute` while it waits for the decision leaves its waiter in
/// `Inner::waiters` for good when the command is never applied (lost in a
/// leader change, or a replica cut off from its majority).
#[tokio::test]
async fn attack_local_dropping_execute_leaves_no_waiter() {
    let (node, decisions) = cut_off(3);
    let rsm = Rsm::start(0, node, decisions, Nop, 0, Duration::from_millis(200));
    for cmd in 0..10 {
        let call = rsm.execute(cmd, Duration::from_secs(10));
        assert!(tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err());
    }
    let left = lock(&rsm.inner.waiters).len();
    rsm.node().stop();
    assert_eq!(left, 0, "{left} waiters left behind by dropped calls");
}

/// Lets every held checkpoint job finish when dropped, so a test that fails
/// before releasing them ends instead of waiting for them forever (the
/// runtime's shutdown waits for its blocking jobs).
struct ReleaseOnDrop(Arc<std::sync::Mutex<bool>>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
}

/// Holds every checkpoint job until the test lets it finish; checkpoints only
/// when asked as if idle (as diskv's state does between its counts).
struct Held {
    release: Arc<std::sync::Mutex<bool>>,
    jobs: Arc<AtomicU64>,
}

impl StateMachine for Held {
    type Command = Vec<u8>;
    type Output = usize;
    fn apply(&mut self, _: Slot, cmd: Vec<u8>) -> usize {
        cmd.len()
    }
    fn checkpoint_job(
        &mut self,
        applied: Slot,
        idle: bool,
    ) -> Result<Option<Checkpoint>, MachineError> {
        if !idle {
            return Ok(None);
        }
        self.jobs.fetch_add(1, Ordering::SeqCst);
        let release = self.release.clone();
        Ok(Some(Checkpoint::Job(Box::new(move || {
            while !*release.lock().unwrap_or_else(|p| p.into_inner()) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(applied)
        }))))
    }
}

/// Issue #13, item 4: over the window's budget a new proposal waits (it is not
/// refused), a checkpoint is asked for at once, and the proposal goes ahead once
/// the checkpoint is durable; reconfiguration's unthrottled calls never wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_wait_while_the_window_is_over_budget_and_resume_after_a_checkpoint() {
    let (node, decisions) = cut_off(1);
    let release = Arc::new(std::sync::Mutex::new(false));
    let _release_at_the_end = ReleaseOnDrop(release.clone());
    let jobs = Arc::new(AtomicU64::new(0));
    let sm = Held {
        release: release.clone(),
        jobs: jobs.clone(),
    };
    // Idle only after an hour: any checkpoint here is the budget's doing.
    let rsm =
        Rsm::start(0, node, decisions, sm, 0, Duration::from_secs(3600)).with_window_budget(4_000);
    let long = Duration::from_secs(10);
    for _ in 0..4 {
        assert_eq!(rsm.execute(vec![7; 1_000], long).await.unwrap(), 1_000);
    }
    let (bytes, stalled) = rsm.window();
    assert!(
        bytes >= 4_000 && stalled,
        "window {bytes} B, stalled {stalled}"
    );
    // The apply loop asks for the checkpoint after it applied the command
    // that filled the window, which may be just after that command's answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while jobs.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        jobs.load(Ordering::SeqCst),
        1,
        "one checkpoint asked for early, at once"
    );

    let waiting = {
        let rsm = rsm.clone();
        tokio::spawn(async move { rsm.execute(vec![8; 1_000], long).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a proposal went ahead over the budget"
    );
    let before = rsm.node().max();
    // Reconfiguration does not wait.
    let urgent = rsm.execute_unthrottled(vec![9; 10], long).await.unwrap();
    assert_eq!(urgent, 10);
    // A short call gives up without proposing anything.
    let short = rsm.execute(vec![1; 10], Duration::from_millis(50)).await;
    assert!(matches!(short, Err(RsmError::Timeout)));
    assert_eq!(
        rsm.node().max(),
        before + 1,
        "a stalled command was proposed"
    );

    *release.lock().unwrap() = true;
    let out = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting proposal never went ahead after the checkpoint")
        .unwrap()
        .unwrap();
    assert_eq!(out, 1_000);
    assert!(!rsm.window().1);
    rsm.node().stop();
}
