//! The replicated KV state machine of one group: the shards it holds, the
//! configuration it has applied, and its checkpoints.

mod batch;
pub mod checkpoint;
pub mod dedup;
pub mod keyfile;
mod loader;
pub mod logclock;
pub mod shard;
mod snapshot;
pub mod value;

pub use snapshot::GroupSnapshot;
pub use value::Value;

use crate::error::StateError;
use crate::op::{KvError, Op, Reply, Request};
use crate::state::checkpoint::{
    CheckpointRecord, DiskStore, DroppedShard, KeyChange, ShardMeta, Writing,
};
use crate::state::dedup::{DupTable, Seen};
use crate::state::shard::{Shard, ShardMode};
use paxos::rsm::{Checkpoint, MachineError, StateMachine};
use paxos::Slot;
use serde::{Deserialize, Serialize};
use shardmaster::{Config, Gid, NO_GROUP};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// A command in the group's log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum KvCommand {
    /// A client write (or a read that went through the log).
    Op {
        /// The request.
        req: Request,
        /// The proposer's log time stamp, in ms (expires duplicate entries; see
        /// `crate::state::logclock`).
        at_ms: u64,
    },
    /// Move to the next configuration (its number must be the applied one plus one).
    Reconfigure {
        /// The configuration.
        config: Config,
    },
    /// Install a shard received from its previous owner.
    InstallShard {
        /// The configuration that gave the shard to this group.
        config: u64,
        /// The shard.
        shard: usize,
        /// Its data.
        data: BTreeMap<String, String>,
        /// Its duplicate table.
        dups: DupTable,
    },
    /// The new owner installed a shard this group handed over: delete it.
    DeleteShard {
        /// The configuration that took the shard away.
        config: u64,
        /// The shard.
        shard: usize,
    },
    /// Client operations applied in order as one (see [`crate::batch`]).
    /// Appended last, so records of the variants above decode as before.
    Batch {
        /// The batch.
        batch: crate::batch::Batch,
        /// The proposer's log time stamp, in ms, as in [`KvCommand::Op`].
        at_ms: u64,
    },
}

/// What applying a command returns to its proposer.
pub type KvOutput = Result<Reply, KvError>;

/// The state of one replica group.
#[derive(Debug)]
pub struct KvState {
    gid: Gid,
    nshards: usize,
    config: Config,
    shards: BTreeMap<usize, Shard>,
    now_ms: u64,
    disk: Option<Arc<Mutex<DiskStore>>>,
    dirty: BTreeSet<(usize, String)>,
    dropped: Vec<usize>,
    /// The keys and dropped shards of the checkpoint being written.
    in_flight: Vec<(usize, String)>,
    in_flight_dropped: Vec<usize>,
    checkpointed: Slot,
    since_checkpoint: u64,
    /// Checkpoint after this many applied instances even if not idle.
    pub checkpoint_every: u64,
    /// How long (log time) a silent client's duplicate entry is kept; part of the
    /// replicated state machine, so every replica of a group must use the same.
    client_ttl_ms: u64,
}

impl KvState {
    /// An empty in-memory state (no files), for tests.
    pub fn in_memory(gid: Gid, nshards: usize) -> Self {
        KvState {
            gid,
            nshards,
            config: Config::initial(nshards),
            shards: BTreeMap::new(),
            now_ms: 0,
            disk: None,
            dirty: BTreeSet::new(),
            dropped: Vec::new(),
            in_flight: Vec::new(),
            in_flight_dropped: Vec::new(),
            checkpointed: 0,
            since_checkpoint: 0,
            checkpoint_every: 20_000,
            client_ttl_ms: crate::state::dedup::CLIENT_TTL_MS,
        }
    }

    /// Opens the state kept under `dir`; returns it with the first log instance not
    /// yet reflected in it.
    pub fn open(dir: &Path, gid: Gid, nshards: usize) -> Result<(Self, Slot), StateError> {
        KvState::open_on(paxos::fs::os(), dir, gid, nshards)
    }

    /// Like [`KvState::open`], on the file system `fs`.
    pub fn open_on(
        fs: paxos::fs::SharedFs,
        dir: &Path,
        gid: Gid,
        nshards: usize,
    ) -> Result<(Self, Slot), StateError> {
        let mut disk = DiskStore::open_on(fs, dir)?;
        let mut st = KvState::in_memory(gid, nshards);
        let loaded = disk.load()?;
        st.disk = Some(Arc::new(Mutex::new(disk)));
        let Some((record, shards)) = loaded else {
            return Ok((st, 0));
        };
        if record.gid != gid || record.config.shards.len() != nshards {
            return Err(StateError::Mismatch(format!(
                "{} holds group {} with {} shards, not group {gid} with {nshards}",
                dir.display(),
                record.gid,
                record.config.shards.len()
            )));
        }
        st.config = record.config;
        st.now_ms = record.now_ms;
        st.shards = shards;
        st.checkpointed = record.applied;
        Ok((st, record.applied))
    }

    /// A digest of the replicated state — configuration, log clock, and every
    /// shard's mode, keys, values and duplicate table — equal on two replicas
    /// that applied the same log prefix (the simulator checks it).
    pub fn digest(&self) -> u64 {
        let bytes =
            postcard::to_allocvec(&(&self.config, self.now_ms, &self.shards)).unwrap_or_default();
        // FNV-1a: stable across processes and versions.
        bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// The configuration applied.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This group's id.
    pub fn gid(&self) -> Gid {
        self.gid
    }

    /// The shards held, with their mode.
    pub fn shard_modes(&self) -> BTreeMap<usize, ShardMode> {
        self.shards
            .iter()
            .map(|(&s, sh)| (s, sh.mode.clone()))
            .collect()
    }

    /// A held shard.
    pub fn shard(&self, shard: usize) -> Option<&Shard> {
        self.shards.get(&shard)
    }

    /// Number of keys held in serving shards.
    pub fn key_count(&self) -> usize {
        self.shards
            .values()
            .filter(|s| s.mode == ShardMode::Serving)
            .map(|s| s.data.len())
            .sum()
    }

    /// True when no shard is arriving or leaving: the group may take the next config.
    pub fn settled(&self) -> bool {
        self.shards.values().all(|s| s.mode == ShardMode::Serving)
    }

    fn serving(&self, shard: usize) -> Result<(), KvError> {
        if shard >= self.nshards {
            return Err(KvError::Invalid(format!(
                "shard {shard} out of range (the cluster has {})",
                self.nshards
            )));
        }
        match self.shards.get(&shard) {
            Some(s) if s.mode == ShardMode::Serving && self.config.shards[shard] == self.gid => {
                Ok(())
            }
            Some(s) if matches!(s.mode, ShardMode::Pulling { .. }) => {
                Err(KvError::ShardMoving { shard })
            }
            _ => Err(KvError::WrongGroup {
                shard,
                config: self.config.num,
            }),
        }
    }

    /// The data of `shard` if this group has applied exactly configuration
    /// `config` and serves the shard in it (a backup reads every shard at one
    /// configuration). A group past `config` answers [`KvError::WrongGroup`]
    /// with its own; one not yet there, [`KvError::ShardMoving`].
    pub fn shard_at(&self, config: u64, shard: usize) -> Result<&BTreeMap<String, Value>, KvError> {
        if self.config.num < config {
            return Err(KvError::ShardMoving { shard });
        }
        if self.config.num > config {
            return Err(KvError::WrongGroup {
                shard,
                config: self.config.num,
            });
        }
        self.serving(shard)?;
        Ok(&self.shards[&shard].data)
    }

    /// Answers a read (Get, Scan or Keys) from the local state; the caller ensures
    /// linearizability (read index).
    pub fn read(&self, req: &Request) -> KvOutput {
        self.read_op(req.shard, &req.op)
    }

    /// Answers the read `op` on `shard` from the local state (see [`KvState::read`]).
    fn read_op(&self, shard: usize, op: &Op) -> KvOutput {
        self.serving(shard)?;
        let shard = &self.shards[&shard];
        match op {
            Op::Get { key } => Ok(Reply::Value(shard.data.get(key).map(|v| v.to_string()))),
            Op::Scan { start, end } => Ok(Reply::Pairs(shard.scan(start, end))),
            Op::Keys { start, limit } => Ok(Reply::Keys(shard.keys_from(start, *limit))),
            other => Err(KvError::Invalid(format!("{other:?} is not a read"))),
        }
    }

    /// Moves the log clock to `at_ms` (a command's proposer stamp). Duplicate
    /// entries expire here, each time the log clock enters a new period (a
    /// fifteenth of the time to live): a point of the log, so every replica
    /// expires the same entries at the same instance (expiring at each replica's
    /// own checkpoint time made replicas answer a retry differently).
    fn advance_clock(&mut self, at_ms: u64) {
        let before = self.now_ms;
        self.now_ms = before.max(at_ms);
        let period = (self.client_ttl_ms / 15).max(1);
        if self.now_ms / period != before / period {
            for s in self.shards.values_mut() {
                s.dups.expire(self.now_ms, self.client_ttl_ms);
            }
        }
    }

    /// The log time of the last applied command (see `crate::state::logclock`).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Sets how long a silent client's duplicate entry is kept (default
    /// [`crate::state::dedup::CLIENT_TTL_MS`]; the simulator shortens it). Every replica
    /// of a group must use the same value.
    pub fn set_client_ttl(&mut self, ttl_ms: u64) {
        self.client_ttl_ms = ttl_ms;
    }

    fn apply_op(&mut self, req: Request, at_ms: u64) -> KvOutput {
        self.advance_clock(at_ms);
        self.serving(req.shard)?;
        let now = self.now_ms;
        let shard_id = req.shard;
        let Some(shard) = self.shards.get_mut(&shard_id) else {
            return Err(KvError::WrongGroup {
                shard: shard_id,
                config: self.config.num,
            });
        };
        match shard.dups.seen(req.client, req.seq) {
            Seen::Duplicate(reply) => {
                shard.dups.touch(req.client, now);
                return Ok(reply);
            }
            Seen::Stale => return Err(KvError::Timeout),
            Seen::New => {}
        }
        let dirty = &mut self.dirty;
        let reply = shard.apply(&req.op, |k| {
            dirty.insert((shard_id, k.to_string()));
        });
        if !req.op.is_read() {
            shard.dups.record(req.client, req.seq, reply.clone(), now);
        }
        Ok(reply)
    }

    fn apply_config(&mut self, config: Config) -> KvOutput {
        if config.num != self.config.num + 1
            || config.shards.len() != self.nshards
            || !self.settled()
        {
            // Out of order or while shards are moving: the leader proposes again.
            return Err(KvError::ShardMoving { shard: 0 });
        }
        for shard in 0..self.nshards {
            let (old, new) = (self.config.shards[shard], config.shards[shard]);
            if old != self.gid && new == self.gid {
                let mode = if old == NO_GROUP {
                    ShardMode::Serving
                } else {
                    ShardMode::Pulling {
                        from: old,
                        config: config.num,
                    }
                };
                self.shards.insert(shard, Shard::new(mode));
            } else if old == self.gid && new != self.gid {
                if let Some(s) = self.shards.get_mut(&shard) {
                    s.mode = ShardMode::Leaving {
                        to: new,
                        config: config.num,
                    };
                }
            }
        }
        tracing::info!(gid = self.gid, config = config.num, "applied configuration");
        self.config = config;
        Ok(Reply::Cleared)
    }

    fn install_shard(
        &mut self,
        config: u64,
        shard: usize,
        data: BTreeMap<String, String>,
        dups: DupTable,
    ) -> KvOutput {
        match self.shards.get_mut(&shard) {
            Some(s) if matches!(s.mode, ShardMode::Pulling { config: c, .. } if c == config) => {
                for key in data.keys() {
                    self.dirty.insert((shard, key.clone()));
                }
                s.data = data.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
                s.dups.merge(&dups, self.now_ms);
                s.mode = ShardMode::Serving;
                tracing::info!(
                    gid = self.gid,
                    shard,
                    config,
                    keys = s.data.len(),
                    "installed shard"
                );
            }
            _ => {} // a duplicate or late install: already done
        }
        Ok(Reply::Cleared)
    }

    fn delete_shard(&mut self, config: u64, shard: usize) -> KvOutput {
        if let Some(s) = self.shards.get(&shard) {
            if matches!(s.mode, ShardMode::Leaving { config: c, .. } if c == config) {
                self.shards.remove(&shard);
                self.dirty.retain(|(s, _)| *s != shard);
                self.dropped.push(shard);
                tracing::info!(gid = self.gid, shard, config, "deleted handed-over shard");
            }
        }
        Ok(Reply::Cleared)
    }

    /// Writes a checkpoint covering every instance below `applied`, here and now.
    fn write_checkpoint(&mut self, applied: Slot) -> Result<(), StateError> {
        match self.prepare_checkpoint(applied) {
            Some(write) => {
                let result = write.run();
                self.checkpoint_done(result.as_ref().ok().map(|()| applied));
                result
            }
            None => Ok(()),
        }
    }

    /// Takes what a checkpoint at `applied` writes (the changed keys with their
    /// values, shard metadata, duplicate tables) so the writing can happen while
    /// the state moves on. `None` without a disk.
    fn prepare_checkpoint(&mut self, applied: Slot) -> Option<CheckpointWrite> {
        let disk = self.disk.clone()?;
        let record = CheckpointRecord {
            number: 0,
            applied,
            gid: self.gid,
            config: self.config.clone(),
            now_ms: self.now_ms,
            shards: self
                .shards
                .iter()
                .map(|(&n, s)| {
                    (
                        n,
                        ShardMeta {
                            mode: s.mode.clone(),
                            dups: s.dups.clone(),
                        },
                    )
                })
                .collect(),
            writes: Vec::new(),
            deletes: Vec::new(),
            dropped: Vec::new(),
        };
        self.in_flight = std::mem::take(&mut self.dirty).into_iter().collect();
        self.in_flight_dropped = std::mem::take(&mut self.dropped);
        // A reference to each value, not a copy (see `value.rs`).
        let changes = self
            .in_flight
            .iter()
            .map(|(shard, key)| {
                let value = self
                    .shards
                    .get(shard)
                    .and_then(|s| s.data.get(key))
                    .cloned();
                (*shard, key.clone(), value)
            })
            .collect();
        self.since_checkpoint = 0;
        let writing = lock_disk(&disk).writing();
        Some(CheckpointWrite {
            disk,
            record,
            changes,
            dropped: checkpoint::dropped_shards(&self.shards, self.in_flight_dropped.clone()),
            _writing: writing,
        })
    }

    /// A checkpoint from [`KvState::prepare_checkpoint`] finished: written (`Some`),
    /// it covers everything below the slot; failed (`None`), its keys are dirty
    /// again.
    fn checkpoint_done(&mut self, written: Option<Slot>) {
        match written {
            Some(applied) => {
                self.checkpointed = self.checkpointed.max(applied);
                self.in_flight.clear();
                self.in_flight_dropped.clear();
            }
            None => {
                self.dirty.extend(std::mem::take(&mut self.in_flight));
                self.dropped.append(&mut self.in_flight_dropped);
            }
        }
    }
}

/// The file writing of one checkpoint, detached from the state.
struct CheckpointWrite {
    disk: Arc<Mutex<DiskStore>>,
    record: CheckpointRecord,
    changes: Vec<KeyChange>,
    dropped: Vec<DroppedShard>,
    _writing: Writing,
}

impl CheckpointWrite {
    fn run(self) -> Result<(), StateError> {
        lock_disk(&self.disk).write(self.record, &self.changes, self.dropped)
    }
}

fn lock_disk(disk: &Mutex<DiskStore>) -> MutexGuard<'_, DiskStore> {
    disk.lock().unwrap_or_else(|p| p.into_inner())
}

impl StateMachine for KvState {
    type Command = KvCommand;
    type Output = KvOutput;

    fn apply(&mut self, _slot: Slot, cmd: KvCommand) -> KvOutput {
        self.since_checkpoint += 1;
        match cmd {
            KvCommand::Op { req, at_ms } => self.apply_op(req, at_ms),
            KvCommand::Reconfigure { config } => self.apply_config(config),
            KvCommand::InstallShard {
                config,
                shard,
                data,
                dups,
            } => self.install_shard(config, shard, data, dups),
            KvCommand::DeleteShard { config, shard } => self.delete_shard(config, shard),
            KvCommand::Batch { batch, at_ms } => self.apply_batch(batch, at_ms),
        }
    }

    fn checkpoint(&mut self, applied: Slot, idle: bool) -> Result<Option<Slot>, MachineError> {
        match self.checkpoint_job(applied, idle)? {
            None => Ok(None),
            Some(Checkpoint::Done(slot)) => Ok(Some(slot)),
            Some(Checkpoint::Job(job)) => {
                let result = job();
                self.checkpoint_finished(&result);
                result.map(Some)
            }
        }
    }

    /// Takes the changed keys' values now; the files are written by the returned
    /// job, off the apply loop (a checkpoint of many keys can take seconds on a
    /// busy disk, and applying, hence every read and write, used to wait for it).
    fn checkpoint_job(
        &mut self,
        applied: Slot,
        idle: bool,
    ) -> Result<Option<Checkpoint>, MachineError> {
        if self.disk.is_none() {
            return Ok(Some(Checkpoint::Done(applied)));
        }
        let due =
            applied > self.checkpointed && (idle || self.since_checkpoint >= self.checkpoint_every);
        if !due {
            return Ok(None);
        }
        let Some(write) = self.prepare_checkpoint(applied) else {
            return Ok(None);
        };
        Ok(Some(Checkpoint::Job(Box::new(move || {
            write.run().map(|()| applied).map_err(MachineError::state)
        }))))
    }

    fn checkpoint_finished(&mut self, result: &Result<Slot, MachineError>) {
        self.checkpoint_done(result.as_ref().ok().copied());
    }
}

#[cfg(test)]
mod tests;
