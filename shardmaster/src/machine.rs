//! The replicated state machine of a shardmaster replica: the [`ConfigStore`], a
//! duplicate table, and its checkpoints.
//!
//! # Semantics
//!
//! - **Every op goes through the log, Query included.** A Query is answered by the
//!   replica that proposed it, once its log instance is applied there, so it reflects
//!   every Join, Leave and Move decided before it: a replica that was cut off answers
//!   only after it has caught up, never from stale state.
//! - **Join, Leave and Move are applied at most once per (client, seq).** The table
//!   keeps, per client, the sequence number of its latest write and that write's
//!   result (refusals included). A retry of it gets the first result back without
//!   applying it again, so a retried Leave answers `Changed`, not `UnknownGroup`. A
//!   retry older than the latest is answered [`ShardmasterError::Superseded`] (no one
//!   is waiting for it: a client sends one write at a time). Writes must carry a
//!   sequence number of 1 or more; Queries are never recorded.
//! - The table holds one entry per client that ever wrote; like the configuration
//!   history it grows only with writes, which are rare operator actions.
//! - **Checkpoints.** After a run of decisions, once [`MachineOptions::checkpoint_every`]
//!   instances were applied since the last checkpoint, or when the log goes idle with
//!   anything applied since, the whole state is written to `DIR/state` (see
//!   [`crate::persist`]) and the log may forget every instance it covers.

use crate::dedup::{DupEntry, DupTable};
use crate::error::ShardmasterError;
use crate::op::OpResult;
use crate::persist::{self, Checkpoint, CheckpointRef};
use crate::rpc::{MachineSnapshot, OpRequest};
use crate::state::ConfigStore;
use paxos::fs::SharedFs;
use paxos::rsm::{Checkpoint as RsmCheckpoint, MachineError, StateMachine};
use paxos::Slot;
use std::path::PathBuf;
use tokio::sync::oneshot;

/// Settings of a [`ShardmasterMachine`].
#[derive(Clone, Debug)]
pub struct MachineOptions {
    /// The file system holding the data directory.
    pub fs: SharedFs,
    /// The data directory, where checkpoints go (`DIR/state`).
    pub dir: PathBuf,
    /// Write a checkpoint at the latest after this many applied instances.
    pub checkpoint_every: u64,
    /// The replica's index, for logs.
    pub me: usize,
}

/// The state machine every shardmaster replica applies the log to.
pub struct ShardmasterMachine {
    store: ConfigStore,
    dups: DupTable,
    opts: MachineOptions,
    /// Every instance below this is in the checkpoint on disk.
    durable: Slot,
    /// Every instance below this is applied.
    applied: Slot,
    /// Completes (by being dropped) when the machine is dropped, that is when the
    /// apply loop and every request handler have finished.
    _alive: Option<oneshot::Sender<()>>,
}

impl ShardmasterMachine {
    /// A machine resuming from `ckpt` (or from config 0 of `nshards` shards when
    /// there is none yet).
    pub fn new(
        ckpt: Option<Checkpoint>,
        nshards: usize,
        opts: MachineOptions,
    ) -> Result<Self, ShardmasterError> {
        let ckpt = match ckpt {
            Some(c) => c,
            None => Checkpoint {
                applied: 0,
                store: ConfigStore::new(nshards)?,
                dups: DupTable::new(),
            },
        };
        Ok(ShardmasterMachine {
            durable: ckpt.applied,
            applied: ckpt.applied,
            store: ckpt.store,
            dups: ckpt.dups,
            opts,
            _alive: None,
        })
    }

    /// Returns a receiver that completes (with an error) once this machine is dropped.
    pub fn watch_drop(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self._alive = Some(tx);
        rx
    }

    /// Every configuration this replica has applied.
    pub fn store(&self) -> &ConfigStore {
        &self.store
    }

    /// The duplicate table.
    pub fn dups(&self) -> &DupTable {
        &self.dups
    }

    /// Every instance below this is covered by the checkpoint on disk.
    pub fn durable(&self) -> Slot {
        self.durable
    }

    /// A digest of the replicated state — every configuration and the duplicate
    /// table — equal on two replicas that applied the same log prefix (the
    /// simulator checks it, as it does `KvState::digest`).
    pub fn digest(&self) -> u64 {
        let bytes = postcard::to_allocvec(&(&self.store, &self.dups)).unwrap_or_default();
        // FNV-1a: stable across processes and versions.
        bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// The whole state, for a replica that lost its disk, covering every instance
    /// below `applied`, with the group's `membership` (both from
    /// [`paxos::rsm::Rsm::snapshot`], which reads them consistently).
    pub fn snapshot(&self, applied: Slot, membership: paxos::core::Membership) -> MachineSnapshot {
        MachineSnapshot {
            applied,
            store: self.store.clone(),
            dups: self.dups.clone(),
            membership,
        }
    }

    /// Replaces the state with a peer's snapshot and makes it durable at once (a
    /// checkpoint at the snapshot's instance), so the log may forget what it covers.
    pub fn replace_with(&mut self, snap: &MachineSnapshot) -> Result<(), ShardmasterError> {
        if snap.store.nshards() != self.store.nshards() {
            return Err(ShardmasterError::CorruptSnapshot {
                reason: format!(
                    "the snapshot has {} shards, this replica {}",
                    snap.store.nshards(),
                    self.store.nshards()
                ),
            });
        }
        let ckpt = CheckpointRef {
            applied: snap.applied,
            store: &snap.store,
            dups: &snap.dups,
        };
        persist::save_checkpoint(&*self.opts.fs, &self.opts.dir, &ckpt)?;
        self.store = snap.store.clone();
        self.dups = snap.dups.clone();
        self.applied = snap.applied;
        self.durable = snap.applied;
        Ok(())
    }

    /// Applies one request; see the module docs. Deterministic.
    pub fn apply_request(&mut self, req: &OpRequest) -> Result<OpResult, ShardmasterError> {
        if !req.op.is_write() {
            return self.store.apply(&req.op);
        }
        if req.seq == 0 {
            return Err(ShardmasterError::BadRequest {
                reason: "a Join, Leave or Move needs a sequence number of 1 or more".into(),
            });
        }
        if let Some(prev) = self.dups.get(&req.client) {
            if req.seq == prev.seq {
                tracing::debug!(
                    client = req.client,
                    seq = req.seq,
                    "duplicate request answered from the table"
                );
                return prev.result.clone();
            }
            if req.seq < prev.seq {
                return Err(ShardmasterError::Superseded {
                    client: req.client,
                    seq: req.seq,
                    latest: prev.seq,
                });
            }
        }
        let result = self.store.apply(&req.op);
        self.dups.insert(
            req.client,
            DupEntry {
                seq: req.seq,
                result: result.clone(),
            },
        );
        result
    }
}

/// A checkpoint that could not be encoded (nothing was written).
#[derive(Debug, thiserror::Error)]
#[error("encoding a checkpoint: {0}")]
struct EncodeError(postcard::Error);

impl StateMachine for ShardmasterMachine {
    type Command = OpRequest;
    type Output = Result<OpResult, ShardmasterError>;

    fn apply(&mut self, slot: Slot, cmd: OpRequest) -> Self::Output {
        self.applied = self.applied.max(slot + 1);
        self.apply_request(&cmd)
    }

    /// Writes the whole state (configurations and duplicate table) to one file,
    /// off the apply path, when idle or every `checkpoint_every` instances.
    fn checkpoint_job(
        &mut self,
        applied: Slot,
        idle: bool,
    ) -> Result<Option<RsmCheckpoint>, MachineError> {
        self.applied = self.applied.max(applied);
        let due = applied.saturating_sub(self.durable) >= self.opts.checkpoint_every;
        if applied <= self.durable || !(idle || due) {
            return Ok(Some(RsmCheckpoint::Done(self.durable)));
        }
        let ckpt = CheckpointRef {
            applied,
            store: &self.store,
            dups: &self.dups,
        };
        let bytes =
            persist::encode_checkpoint(&ckpt).map_err(|e| MachineError::state(EncodeError(e)))?;
        let (fs, dir, me) = (self.opts.fs.clone(), self.opts.dir.clone(), self.opts.me);
        let (configs, clients) = (self.store.latest().num + 1, self.dups.len());
        Ok(Some(RsmCheckpoint::Job(Box::new(move || {
            persist::save_encoded_checkpoint(&*fs, &dir, &bytes).map_err(MachineError::state)?;
            tracing::debug!(node = me, applied, configs, clients, "checkpoint written");
            Ok(applied)
        }))))
    }

    fn checkpoint_finished(&mut self, result: &Result<Slot, MachineError>) {
        if let Ok(durable) = result {
            self.durable = self.durable.max(*durable);
        }
    }

    fn snapshot_needed(&mut self, floor: Slot) -> Option<Slot> {
        tracing::warn!(
            node = self.opts.me,
            floor,
            applied = self.applied,
            "the other replicas forgot log instances this replica never applied; waiting for \
             a snapshot from a peer"
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{ConfigNum, Op};

    fn machine(dir: &std::path::Path) -> ShardmasterMachine {
        ShardmasterMachine::new(
            None,
            4,
            MachineOptions {
                fs: paxos::fs::os(),
                dir: dir.to_path_buf(),
                checkpoint_every: 10,
                me: 0,
            },
        )
        .unwrap()
    }

    fn req(client: u64, seq: u64, op: Op) -> OpRequest {
        OpRequest { client, seq, op }
    }

    fn join(gid: u64) -> Op {
        Op::Join {
            gid,
            servers: vec![format!("g{gid}:1")],
        }
    }

    #[test]
    fn a_retried_write_gets_its_first_result_and_applies_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = machine(dir.path());
        assert_eq!(
            m.apply_request(&req(1, 1, join(5))),
            Ok(OpResult::Changed { num: 1 })
        );
        let leave = req(1, 2, Op::Leave { gid: 5 });
        assert_eq!(m.apply_request(&leave), Ok(OpResult::Changed { num: 2 }));
        // The retried Leave must not be refused as UnknownGroup.
        assert_eq!(m.apply_request(&leave), Ok(OpResult::Changed { num: 2 }));
        assert_eq!(m.store().latest().num, 2);
        // Refusals are remembered too.
        let bad = req(1, 3, Op::Leave { gid: 9 });
        let refused = Err(ShardmasterError::UnknownGroup { gid: 9 });
        assert_eq!(m.apply_request(&bad), refused);
        m.apply_request(&req(2, 1, join(9))).unwrap();
        assert_eq!(
            m.apply_request(&bad),
            refused,
            "a retry is answered as the first time"
        );
        assert_eq!(m.store().latest().num, 3);
    }

    #[test]
    fn an_older_retry_is_superseded_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = machine(dir.path());
        m.apply_request(&req(1, 1, join(5))).unwrap();
        m.apply_request(&req(1, 2, join(6))).unwrap();
        assert_eq!(
            m.apply_request(&req(1, 1, Op::Leave { gid: 5 })),
            Err(ShardmasterError::Superseded {
                client: 1,
                seq: 1,
                latest: 2
            })
        );
        assert_eq!(m.store().latest().num, 2);
    }

    #[test]
    fn the_digest_covers_the_configs_and_the_duplicate_table() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut m1, mut m2) = (machine(a.path()), machine(b.path()));
        assert_eq!(m1.digest(), m2.digest());
        m1.apply_request(&req(1, 1, join(5))).unwrap();
        assert_ne!(m1.digest(), m2.digest(), "a new config");
        // The same config made by another client: only the duplicate table differs.
        m2.apply_request(&req(2, 1, join(5))).unwrap();
        assert_eq!(m1.store(), m2.store());
        assert_ne!(m1.digest(), m2.digest(), "another duplicate table");
        // The same requests in the same order: the same digest.
        let c = tempfile::tempdir().unwrap();
        let mut m3 = machine(c.path());
        m3.apply_request(&req(1, 1, join(5))).unwrap();
        assert_eq!(m1.digest(), m3.digest());
        // Queries change nothing.
        m1.apply_request(&req(3, 0, Op::query(ConfigNum::Latest)))
            .unwrap();
        assert_eq!(m1.digest(), m3.digest());
    }

    #[test]
    fn queries_are_not_recorded_and_writes_need_a_seq() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = machine(dir.path());
        let q = m
            .apply_request(&req(1, 0, Op::query(ConfigNum::Latest)))
            .unwrap();
        assert_eq!(q, OpResult::Config(m.store().latest().clone()));
        assert!(m.dups().is_empty());
        assert!(matches!(
            m.apply_request(&req(1, 0, join(3))),
            Err(ShardmasterError::BadRequest { .. })
        ));
        assert_eq!(m.store().latest().num, 0);
    }

    /// Asks for a checkpoint and runs its job at once, as the apply loop does
    /// (once the log is durable); returns what is durable after it.
    fn checkpoint(
        m: &mut ShardmasterMachine,
        applied: Slot,
        idle: bool,
    ) -> Result<Option<Slot>, MachineError> {
        match m.checkpoint_job(applied, idle)? {
            Some(RsmCheckpoint::Job(job)) => {
                let result = job();
                m.checkpoint_finished(&result);
                result.map(Some)
            }
            Some(RsmCheckpoint::Done(durable)) => Ok(Some(durable)),
            None => Ok(None),
        }
    }

    #[test]
    fn checkpoints_are_written_when_idle_or_due_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = machine(dir.path());
        m.apply_request(&req(1, 1, join(5))).unwrap();
        // Not idle and fewer than checkpoint_every instances: nothing written.
        assert_eq!(checkpoint(&mut m, 3, false), Ok(Some(0)));
        assert_eq!(
            persist::load_checkpoint(&paxos::fs::OsFs, dir.path()).unwrap(),
            None
        );
        // Idle: written.
        assert_eq!(checkpoint(&mut m, 3, true), Ok(Some(3)));
        // Due: written even though busy.
        m.apply_request(&req(1, 2, join(6))).unwrap();
        assert_eq!(checkpoint(&mut m, 12, false), Ok(Some(3)));
        assert_eq!(checkpoint(&mut m, 13, false), Ok(Some(13)));
        let ckpt = persist::load_checkpoint(&paxos::fs::OsFs, dir.path())
            .unwrap()
            .unwrap();
        assert_eq!(ckpt.applied, 13);
        assert_eq!(&ckpt.store, m.store());
        assert_eq!(&ckpt.dups, m.dups());
        // A machine resumed from it answers retries as before.
        let mut again = ShardmasterMachine::new(
            Some(ckpt),
            4,
            MachineOptions {
                fs: paxos::fs::os(),
                dir: dir.path().to_path_buf(),
                checkpoint_every: 10,
                me: 0,
            },
        )
        .unwrap();
        assert_eq!(again.durable(), 13);
        assert_eq!(
            again.apply_request(&req(1, 2, join(6))),
            Ok(OpResult::Changed { num: 2 })
        );
        assert_eq!(again.store().latest().num, 2);
    }

    #[test]
    fn a_failed_checkpoint_is_reported_and_keeps_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let mut m = ShardmasterMachine::new(
            None,
            4,
            MachineOptions {
                fs: paxos::fs::os(),
                dir: missing,
                checkpoint_every: 1,
                me: 0,
            },
        )
        .unwrap();
        let err = checkpoint(&mut m, 5, true).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        assert_eq!(m.durable(), 0);
    }
}
