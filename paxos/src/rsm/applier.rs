//! The apply side of a replicated state machine, without I/O: the state, the
//! instance it covers, and what applying decisions, installing snapshots and
//! checkpointing ask of the Paxos replica. [`super::Rsm`] runs it on tokio; the
//! simulator runs the same code in one seeded thread.

use super::window::Window;
use super::{Checkpoint, CheckpointJob, MachineError, StateMachine};
use crate::core::Membership;
use crate::node::Decision;
use crate::types::Slot;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Who proposed a command: (replica, process nonce, counter), unique across
/// replicas and restarts, so the proposer recognises its command in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The proposing replica.
    pub replica: u32,
    /// A random number of the proposing process.
    pub nonce: u64,
    /// The proposal's number within that process.
    pub id: u64,
}

/// A command as stored in the log: tagged with its origin.
#[derive(Serialize, Deserialize)]
struct Tagged<C> {
    origin: (u32, u64, u64),
    cmd: C,
}

/// Encodes `cmd` for the log, tagged with `origin`. The bytes are kept in the
/// log window until a checkpoint covers them, so the buffer is cut to their
/// length: the encoder grows it by doubling, and a heaptrack profile of a bulk
/// load found the window holding twice its bytes.
pub fn encode<C: Serialize>(origin: Origin, cmd: &C) -> Result<Vec<u8>, postcard::Error> {
    let mut bytes = postcard::to_allocvec(&Tagged {
        origin: (origin.replica, origin.nonce, origin.id),
        cmd,
    })?;
    bytes.shrink_to_fit();
    Ok(bytes)
}

/// Decodes a command [`encode`] wrote (a decided entry's bytes, from the log or a
/// peer): its origin and the command.
pub fn decode<C: DeserializeOwned>(raw: &[u8]) -> Result<(Origin, C), postcard::Error> {
    let t: Tagged<C> = postcard::from_bytes(raw)?;
    let (replica, nonce, id) = t.origin;
    Ok((Origin { replica, nonce, id }, t.cmd))
}

/// What applying one decision asks of the caller.
pub struct Applied<O> {
    /// Outputs of commands this process proposed, by their origin.
    pub outputs: Vec<(Origin, O)>,
    /// The state machine covered a forgotten prefix by itself: tell the replica
    /// that everything below this is installed
    /// ([`crate::core::Replica::install_snapshot`]).
    pub installed: Option<Slot>,
    /// The group forgot instances this replica still needs: fetch a snapshot
    /// covering at least this instance from a peer.
    pub snapshot_wanted: Option<Slot>,
    /// A decision arrived past a gap (instances never applied here): it was not
    /// applied. The replica must never do this; the state machine waits for a
    /// snapshot instead of skipping instances.
    pub gap: Option<Slot>,
}

impl<O> Default for Applied<O> {
    fn default() -> Self {
        Applied {
            outputs: Vec::new(),
            installed: None,
            snapshot_wanted: None,
            gap: None,
        }
    }
}

/// How a checkpoint request went.
pub enum CheckpointStep {
    /// Nothing to do now.
    Idle,
    /// Everything below this instance is durable in the state machine's files:
    /// the replica may forget it ([`crate::core::Replica::done`] of one less).
    Durable(Slot),
    /// Run this job off the apply path, then report its result to
    /// [`Applier::checkpoint_finished`] — but only once the log's decisions of
    /// every instance below `upto` are durable
    /// ([`crate::core::Replica::durable_commit`] `>= upto`), so that no crash
    /// leaves the application's durable state ahead of the log.
    Job {
        /// The checkpoint's work: writes the state covering instances below `upto`.
        job: CheckpointJob,
        /// The instance the checkpoint's state covers (exclusive).
        upto: Slot,
    },
    /// The checkpoint failed; the log keeps everything until one succeeds.
    Failed(MachineError),
}

/// The state machine and the instance it has applied up to.
pub struct Applier<S: StateMachine> {
    sm: S,
    /// Every instance below this is applied (no-ops included).
    applied: Slot,
    /// This process's origin tag (replica, nonce): outputs of commands carrying it
    /// are handed back.
    me: (u32, u64),
    /// True while a checkpoint job runs.
    job_running: bool,
    /// Decisions applied since the last checkpoint request.
    dirty: bool,
    /// The bytes applied and not yet in a durable checkpoint (see `window.rs`).
    window: Window,
}

impl<S: StateMachine> Applier<S> {
    /// `sm` covers every instance below `applied`; commands proposed by replica
    /// `replica` with process nonce `nonce` get their outputs back.
    pub fn new(sm: S, applied: Slot, replica: u32, nonce: u64) -> Self {
        Applier {
            sm,
            applied,
            me: (replica, nonce),
            job_running: false,
            dirty: false,
            window: Window::default(),
        }
    }

    /// Sets the log window's budget (see `window.rs`; `None`: unbounded).
    pub fn set_window_budget(&mut self, budget: Option<usize>) {
        self.window.set_budget(budget);
    }

    /// Bytes of commands applied and not yet covered by a durable checkpoint.
    pub fn window_bytes(&self) -> usize {
        self.window.bytes()
    }

    /// True while the log window holds its budget or more: new proposals wait,
    /// and a checkpoint is asked for at once.
    pub fn over_budget(&self) -> bool {
        self.window.over_budget()
    }

    /// The origin tag of this process: (replica, nonce). Commands proposed with
    /// it ([`encode`]) get their outputs back from [`Applier::apply`].
    pub fn origin_tag(&self) -> (u32, u64) {
        self.me
    }

    /// The state machine.
    pub fn state(&self) -> &S {
        &self.sm
    }

    /// The state machine, mutably (outside the log: local bookkeeping only).
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.sm
    }

    /// Every instance below this is applied.
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// Applies one decision. Instances already covered are skipped.
    pub fn apply(&mut self, decision: Decision) -> Applied<S::Output> {
        let mut out = Applied::default();
        match decision {
            Decision::Entry(slot, entry) => {
                if slot < self.applied {
                    return out;
                }
                if slot > self.applied {
                    tracing::error!(
                        slot,
                        applied = self.applied,
                        "a decision arrived past instances this state machine never applied; \
                         not applied, waiting for a snapshot"
                    );
                    out.gap = Some(slot);
                    out.snapshot_wanted = Some(slot + 1);
                    return out;
                }
                for raw in entry.commands() {
                    match decode::<S::Command>(raw) {
                        Ok((origin, cmd)) => {
                            let output = self.sm.apply(slot, cmd);
                            if (origin.replica, origin.nonce) == self.me {
                                out.outputs.push((origin, output));
                            }
                        }
                        Err(e) => {
                            tracing::error!(slot, error = %e, "undecodable command in the log; skipped")
                        }
                    }
                }
                self.window.applied(slot, &entry);
                self.applied = slot + 1;
                self.dirty = true;
            }
            Decision::SnapshotNeeded(floor) => {
                if let Some(upto) = self.sm.snapshot_needed(floor) {
                    self.applied = self.applied.max(upto);
                    self.window.covered_below(upto);
                    out.installed = Some(upto);
                } else if floor > self.applied {
                    out.snapshot_wanted = Some(floor);
                }
            }
        }
        out
    }

    /// Replaces the state with a peer's covering every instance below `applied`,
    /// unless the local one is as new. Returns true if it was installed: the
    /// caller then merges the snapshot's membership into the replica and calls its
    /// `install_snapshot(applied)`.
    pub fn install<E>(
        &mut self,
        applied: Slot,
        replace: impl FnOnce(&mut S) -> Result<(), E>,
    ) -> Result<bool, E> {
        if applied <= self.applied {
            return Ok(false);
        }
        replace(&mut self.sm)?;
        self.applied = applied;
        self.window.covered_below(applied);
        Ok(true)
    }

    /// A consistent copy of the state for a peer: `copy` gets the state, the
    /// instance it covers (every instance below it applied, no-ops included) and
    /// the membership, read by `membership` now, while the state cannot move. The
    /// replica's membership then covers every reincarnation decided below that
    /// instance (the replica knows every decision before the state machine applies
    /// it), so a receiver recovering a lost disk learns its incarnation with the
    /// state. Read earlier, it could miss one decided in between, and the receiver
    /// would install state past its own reincarnation without learning it.
    pub fn snapshot<R>(
        &self,
        membership: impl FnOnce() -> Membership,
        copy: impl FnOnce(&S, Slot, Membership) -> R,
    ) -> R {
        copy(&self.sm, self.applied, membership())
    }

    /// Asks for a checkpoint after a run of decisions (`idle == false`) or when
    /// none came for a while (`idle == true`). Never starts a second job while one
    /// runs; an idle request with nothing applied since the last one does nothing,
    /// unless the log window is over its budget (a failed checkpoint is then
    /// tried again at each idle request). Over the budget the state machine is
    /// asked as if the log were idle: a checkpoint now, not after its usual count.
    pub fn checkpoint(&mut self, idle: bool) -> CheckpointStep {
        let urgent = self.window.over_budget();
        if self.job_running || (idle && !self.dirty && !urgent) {
            return CheckpointStep::Idle;
        }
        if idle {
            self.dirty = false;
        }
        match self.sm.checkpoint_job(self.applied, idle || urgent) {
            Ok(None) => CheckpointStep::Idle,
            Ok(Some(Checkpoint::Done(durable))) => {
                self.window.covered_below(durable);
                CheckpointStep::Durable(durable)
            }
            Ok(Some(Checkpoint::Job(job))) => {
                self.job_running = true;
                CheckpointStep::Job {
                    job,
                    upto: self.applied,
                }
            }
            Err(e) => CheckpointStep::Failed(e),
        }
    }

    /// A job from [`Applier::checkpoint`] ended with `result`; returns what the
    /// log may forget.
    pub fn checkpoint_finished(&mut self, result: Result<Slot, MachineError>) -> CheckpointStep {
        self.job_running = false;
        self.sm.checkpoint_finished(&result);
        match result {
            Ok(durable) => {
                self.window.covered_below(durable);
                CheckpointStep::Durable(durable)
            }
            Err(e) => CheckpointStep::Failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Entry;

    /// Sums the numbers it is given.
    #[derive(Default)]
    struct Sum(u64);

    impl StateMachine for Sum {
        type Command = u64;
        type Output = u64;
        fn apply(&mut self, _slot: Slot, cmd: u64) -> u64 {
            self.0 += cmd;
            self.0
        }
    }

    #[test]
    fn an_encoded_command_holds_no_spare_capacity() {
        let origin = Origin {
            replica: 1,
            nonce: 2,
            id: 3,
        };
        for len in [0, 100, 1000, 4000, 100_000] {
            let bytes = encode(origin, &vec![7u8; len]).unwrap();
            assert_eq!(bytes.capacity(), bytes.len(), "a command of {len} bytes");
        }
    }

    fn command(origin: Origin, n: u64) -> Entry {
        Entry::single(encode(origin, &n).unwrap())
    }

    /// Issue #12, bug 6: a snapshot covered only up to the last *command*, so after
    /// trailing no-ops a peer refused it as older than the group's forgotten
    /// watermark until new writes came. It covers every applied instance now.
    #[test]
    fn a_snapshot_covers_trailing_no_ops() {
        let me = Origin {
            replica: 0,
            nonce: 9,
            id: 1,
        };
        let mut a = Applier::new(Sum::default(), 0, 0, 9);
        let out = a.apply(Decision::Entry(0, command(me, 5)));
        assert_eq!(out.outputs, vec![(me, 5)]);
        a.apply(Decision::Entry(1, Entry::Noop));
        a.apply(Decision::Entry(2, Entry::Noop));
        let (sum, applied) = a.snapshot(|| Membership::initial(3), |s, applied, _| (s.0, applied));
        assert_eq!((sum, applied), (5, 3));
    }

    #[test]
    fn only_this_process_gets_outputs_and_old_instances_are_skipped() {
        let other = Origin {
            replica: 1,
            nonce: 4,
            id: 1,
        };
        let mut a = Applier::new(Sum::default(), 2, 0, 9);
        assert!(a
            .apply(Decision::Entry(1, command(other, 7)))
            .outputs
            .is_empty());
        assert_eq!(a.state().0, 0, "an instance below `applied` was applied");
        assert!(a
            .apply(Decision::Entry(2, command(other, 7)))
            .outputs
            .is_empty());
        assert_eq!((a.state().0, a.applied()), (7, 3));
    }

    #[test]
    fn a_decision_past_a_gap_is_never_applied() {
        let other = Origin {
            replica: 1,
            nonce: 4,
            id: 1,
        };
        let mut a = Applier::new(Sum::default(), 2, 0, 9);
        let out = a.apply(Decision::Entry(5, command(other, 7)));
        assert_eq!(out.gap, Some(5));
        assert_eq!(out.snapshot_wanted, Some(6));
        assert_eq!((a.state().0, a.applied()), (0, 2));
    }

    #[test]
    fn a_snapshot_is_installed_only_if_newer_and_a_gap_asks_for_one() {
        let mut a = Applier::new(Sum::default(), 3, 0, 9);
        let wanted = a.apply(Decision::SnapshotNeeded(10)).snapshot_wanted;
        assert_eq!(wanted, Some(10));
        assert_eq!(
            a.install(2, |s| {
                s.0 = 99;
                Ok::<(), MachineError>(())
            }),
            Ok(false)
        );
        assert_eq!(a.state().0, 0);
        assert_eq!(
            a.install(10, |s| {
                s.0 = 42;
                Ok::<(), MachineError>(())
            }),
            Ok(true)
        );
        assert_eq!((a.state().0, a.applied()), (42, 10));
    }
}
