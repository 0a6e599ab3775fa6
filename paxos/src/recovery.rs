//! Watching a replica that recovers a lost disk until it votes again, or halts.
//!
//! The Paxos side of recovery (the decided `Entry::Reincarnate`, votes only after
//! the window) is in [`crate::core::Membership`]. What the application must add is
//! here, once for every service built on [`Rsm`]:
//!
//! - if the group forgot log instances this replica needs
//!   ([`Rsm::snapshot_wanted`]), fetch a state covering them from a peer that votes
//!   (through the application's own RPC, [`SnapshotSource`]) and install it;
//! - if a majority of the group is recovering (each peer says so when probed, see
//!   [`crate::probe`]), nothing can be trusted to hold the acknowledged data: stop
//!   and say so ([`Outcome::Halted`]);
//! - while the old membership has no majority to admit this replica, wait and say
//!   so in the log every few seconds.

use crate::core::Membership;
use crate::probe::{self, Answer};
use crate::rsm::{Install, MachineError, Rsm, StateMachine};
use crate::types::{NodeId, Slot};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const POLL: Duration = Duration::from_millis(200);
const WARN_EVERY: Duration = Duration::from_secs(5);

/// Fetches a replacement state from a peer, through the application's own RPC.
pub trait SnapshotSource<S: StateMachine>: Send + Sync + 'static {
    /// A state of peer `peer` covering at least every instance below `floor`, or
    /// `None` if it cannot give one now (not the leader, unreachable, too old).
    fn fetch(&self, peer: NodeId, floor: Slot) -> BoxFuture<'_, Option<Install<S>>>;
}

/// A state a peer sent to replace this replica's: what it covers, and how to
/// install it into the state machine `S`.
pub trait Snapshot<S>: Send + 'static {
    /// Every instance below this is reflected in the snapshot.
    fn applied(&self) -> Slot;
    /// The sender's membership epochs.
    fn membership(&self) -> Membership;
    /// Replaces `state` with this snapshot and makes it durable; an error leaves
    /// `state` as it was.
    fn install(&self, state: &mut S) -> Result<(), MachineError>;
}

impl<S> Install<S> {
    /// The install of a peer's `snapshot`.
    pub fn of(snapshot: impl Snapshot<S>) -> Install<S> {
        Install {
            applied: snapshot.applied(),
            membership: snapshot.membership(),
            replace: Box::new(move |state: &mut S| snapshot.install(state)),
        }
    }
}

/// Asks the replica at one address for its snapshot, through the application's
/// own RPC.
pub trait SnapshotRpc: Send + Sync + 'static {
    /// The state machine the snapshots replace.
    type Machine: StateMachine;
    /// What the RPC returns.
    type Snapshot: Snapshot<Self::Machine>;
    /// The snapshot of the replica at `addr`, or `None` if it cannot give one now.
    fn snapshot<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, Option<Self::Snapshot>>;
}

/// The [`SnapshotSource`] of every service: peer `i` is asked at `peers[i]`
/// through `rpc`.
pub struct PeerSnapshots<R> {
    /// Every replica's address, by index.
    pub peers: Vec<String>,
    /// The application's RPC.
    pub rpc: R,
}

impl<R: SnapshotRpc> SnapshotSource<R::Machine> for PeerSnapshots<R> {
    fn fetch(&self, peer: NodeId, _floor: Slot) -> BoxFuture<'_, Option<Install<R::Machine>>> {
        Box::pin(async move {
            let snapshot = self.rpc.snapshot(self.peers.get(peer)?).await?;
            Some(Install::of(snapshot))
        })
    }
}

/// How a recovery ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The reincarnation was decided and every instance the lost incarnation may
    /// have voted in is decided too: the replica's votes count again, at this
    /// incarnation, and the group can lose another replica.
    Voting(u64),
    /// A majority of the group is recovering a lost disk: the replica stopped.
    Halted {
        /// Replicas recovering, this one included.
        recovering: usize,
    },
    /// `stop` turned true first.
    Stopped,
}

/// The error an operator reads when a majority of a group lost its disks.
pub const MAJORITY_LOST: &str = "a majority of this group lost their disks (or had them \
    quarantined as corrupt): the acknowledged data may exist nowhere else and the group cannot \
    recover safely on its own. Halting. Restore the group's directories from a backup (or bring \
    back the replicas whose disks survived), then start them again.";

/// What a recovering replica does next (the decision of [`run`], without I/O; the
/// simulator takes the same decisions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Recovery is over: the replica votes again at this incarnation.
    Voting(u64),
    /// A majority of the group is recovering: stop.
    Halt {
        /// Replicas recovering, this one included.
        recovering: usize,
    },
    /// Fetch a snapshot covering `floor` from one of `from` (voting peers, in
    /// order of preference), then look again.
    Fetch {
        /// The instance the snapshot must cover.
        floor: Slot,
        /// Peers that answered `History`.
        from: Vec<NodeId>,
    },
    /// Nothing to do but wait (for the reincarnation, the window, or peers).
    Wait {
        /// Replicas recovering, this one included.
        recovering: usize,
    },
}

/// The next step of replica `me`'s recovery: its `incarnation` (`None` until the
/// reincarnation is decided), whether its votes count (`votes_now`), its peers'
/// probe `answers` (`answers[me]` ignored) and the snapshot its state machine
/// waits for.
pub fn next_step(
    me: NodeId,
    incarnation: Option<u64>,
    votes_now: bool,
    answers: &[Option<Answer>],
    snapshot_wanted: Option<Slot>,
) -> Step {
    if let (Some(k), true) = (incarnation, votes_now) {
        return Step::Voting(k);
    }
    let recovering = 1 + answers
        .iter()
        .enumerate()
        .filter(|&(i, a)| i != me && *a == Some(Answer::Recovering))
        .count();
    if must_halt(incarnation, recovering, answers.len()) {
        return Step::Halt { recovering };
    }
    match snapshot_wanted {
        Some(floor) => Step::Fetch {
            floor,
            from: voting_peers(me, answers),
        },
        None => Step::Wait { recovering },
    }
}

/// The peers that answered `History`: they vote, so they can give a snapshot.
fn voting_peers(me: NodeId, answers: &[Option<Answer>]) -> Vec<NodeId> {
    answers
        .iter()
        .enumerate()
        .filter(|&(i, a)| i != me && *a == Some(Answer::History))
        .map(|(i, _)| i)
        .collect()
}

/// What a service's replica watcher ([`watch`]) is given besides its `Rsm`.
pub struct Watch<R> {
    /// This replica's index.
    pub me: NodeId,
    /// Every replica's address, by index.
    pub peers: Vec<String>,
    /// The service's snapshot RPC, asked through [`PeerSnapshots`].
    pub rpc: R,
    /// The replica recovers a lost disk (its identity record is marked so).
    pub recovering: bool,
    /// Once voting (or from the start, if not recovering), keep fetching snapshots
    /// for the replica's whole life ([`keep_up`]).
    pub keep_up: bool,
    /// Set if the replica halts ([`Outcome::Halted`]).
    pub halted: Arc<AtomicBool>,
}

/// A replica's watcher, the same for every service: if it recovers a lost disk,
/// [`run`] until its votes count again — then `finish(incarnation)` clears the
/// recovering mark of the service's identity record and the log says "voting
/// again" — or until it halts (`halted` set) or `stop`; then, if `keep_up`,
/// [`keep_up`] until `stop`. Returns how the recovery ended (`None`: the replica
/// was not recovering) once there is nothing left to watch.
pub async fn watch<R, E>(
    rsm: &Rsm<R::Machine>,
    watch: Watch<R>,
    finish: impl FnOnce(u64) -> Result<(), E>,
    stop: watch::Receiver<bool>,
) -> Option<Outcome>
where
    R: SnapshotRpc,
    E: std::fmt::Display,
{
    let Watch {
        me,
        peers,
        rpc,
        recovering,
        keep_up: keeps_up,
        halted,
    } = watch;
    let source = PeerSnapshots {
        peers: peers.clone(),
        rpc,
    };
    let mut ended = None;
    if recovering {
        let outcome = run(rsm, me, &peers, &source, stop.clone()).await;
        match outcome {
            Outcome::Voting(incarnation) => {
                if let Err(e) = finish(incarnation) {
                    tracing::error!(node = me, error = %e, "cannot record the end of recovery; the next start resumes it");
                }
                tracing::info!(
                    node = me,
                    incarnation,
                    "recovered from a lost disk; voting again"
                );
            }
            Outcome::Halted { .. } => {
                halted.store(true, Ordering::SeqCst);
                return Some(outcome);
            }
            Outcome::Stopped => return Some(outcome),
        }
        ended = Some(outcome);
    }
    if keeps_up {
        keep_up(rsm, me, &peers, &source, stop).await;
    }
    ended
}

/// Runs until the recovering replica `me` of `peers` votes again, halts, or `stop`.
pub async fn run<S: StateMachine>(
    rsm: &Rsm<S>,
    me: NodeId,
    peers: &[String],
    source: &dyn SnapshotSource<S>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let wanted = rsm.snapshot_wanted();
    let mut warned = Instant::now();
    loop {
        if *stop.borrow() {
            return Outcome::Stopped;
        }
        let incarnation = rsm.node().incarnation();
        let votes_now = rsm.node().votes_now();
        let answers = if votes_now {
            Vec::new()
        } else {
            probe::ask_all(me, peers).await
        };
        let floor = *wanted.borrow();
        let recovering = match next_step(me, incarnation, votes_now, &answers, floor) {
            Step::Voting(k) => return Outcome::Voting(k),
            Step::Halt { recovering } => {
                tracing::error!(
                    node = me,
                    recovering,
                    replicas = peers.len(),
                    "{MAJORITY_LOST}"
                );
                rsm.node().stop();
                return Outcome::Halted { recovering };
            }
            Step::Fetch { floor, from } => {
                fetch_once(rsm, me, &from, floor, source).await;
                None
            }
            Step::Wait { recovering } => Some(recovering),
        };
        if warned.elapsed() >= WARN_EVERY {
            warned = Instant::now();
            match incarnation {
                None => tracing::warn!(
                    node = me,
                    ?recovering,
                    snapshot_wanted = ?floor,
                    "recovering a lost disk: waiting for a majority of the old membership to \
                     admit this replica as a new incarnation"
                ),
                Some(k) => tracing::warn!(
                    node = me,
                    incarnation = k,
                    snapshot_wanted = ?floor,
                    "recovering a lost disk: admitted, waiting for the instances the lost \
                     incarnation may have voted in to be decided (this needs a majority of the \
                     old membership)"
                ),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Whether a recovering replica must halt: `recovering` of the group's `replicas`
/// (itself included) are recovering a lost disk, a majority, so nothing can be
/// trusted to hold the acknowledged data. Only a replica not yet admitted
/// (`incarnation` unknown) halts: once admitted it answers `History` and may merely
/// lag behind its window's decisions, so a peer losing its disk then must not stop
/// it (the group stalls, safely, instead).
fn must_halt(incarnation: Option<u64>, recovering: usize, replicas: usize) -> bool {
    incarnation.is_none() && recovering > replicas / 2
}

/// Tries each voting peer of `from` in turn for a snapshot covering `floor`;
/// installs the first one that does.
async fn fetch_once<S: StateMachine>(
    rsm: &Rsm<S>,
    me: NodeId,
    from: &[NodeId],
    floor: Slot,
    source: &dyn SnapshotSource<S>,
) -> bool {
    for &peer in from {
        if let Some(install) = source.fetch(peer, floor).await {
            if install.applied >= floor {
                tracing::info!(
                    node = me,
                    peer,
                    applied = install.applied,
                    "installing a snapshot from a peer"
                );
                rsm.install(install);
                return true;
            }
        }
    }
    false
}

/// For a replica's whole life: whenever the group forgot log instances it still
/// needs ([`Rsm::snapshot_wanted`]: it was away long, or it recovers a lost disk),
/// fetches a snapshot from a voting peer and installs it. Returns on `stop`.
pub async fn keep_up<S: StateMachine>(
    rsm: &Rsm<S>,
    me: NodeId,
    peers: &[String],
    source: &dyn SnapshotSource<S>,
    mut stop: watch::Receiver<bool>,
) {
    let mut wanted = rsm.snapshot_wanted();
    loop {
        let floor = tokio::select! {
            w = wanted.wait_for(|w| w.is_some()) => match w {
                Ok(w) => *w,
                Err(_) => return,
            },
            _ = stop.wait_for(|&s| s) => return,
        };
        if let Some(floor) = floor {
            let answers = probe::ask_all(me, peers).await;
            fetch_once(rsm, me, &voting_peers(me, &answers), floor, source).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|&s| s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{must_halt, next_step, Answer, Step};

    #[test]
    fn the_next_step_follows_votes_halts_and_snapshots() {
        use Answer::{History, Recovering};
        let answers = [None, Some(History), Some(Recovering)];
        assert_eq!(next_step(0, Some(2), true, &[], None), Step::Voting(2));
        assert_eq!(
            next_step(0, None, false, &answers, None),
            Step::Halt { recovering: 2 }
        );
        assert_eq!(
            next_step(0, Some(1), false, &answers, Some(7)),
            Step::Fetch {
                floor: 7,
                from: vec![1]
            },
            "an admitted replica never halts; it fetches from a voting peer"
        );
        assert_eq!(
            next_step(0, None, false, &[None, Some(History), None], None),
            Step::Wait { recovering: 1 }
        );
    }

    #[test]
    fn only_a_replica_not_yet_admitted_halts_on_a_lost_majority() {
        // Not admitted: halts once a majority (itself included) is recovering.
        assert!(!must_halt(None, 1, 3));
        assert!(must_halt(None, 2, 3));
        assert!(!must_halt(None, 2, 5));
        assert!(must_halt(None, 3, 5));
        // Admitted, its window still open: a peer losing its disk stalls the group
        // but never halts this replica.
        assert!(!must_halt(Some(1), 2, 3));
        assert!(!must_halt(Some(1), 5, 5));
    }
}
