//! Durable KV state: one file per key, and a checkpoint record that makes each
//! checkpoint atomic.
//!
//! Layout under the replica's directory:
//!
//! ```text
//! kv/checkpoint            the latest checkpoint record (atomically replaced)
//! kv/shard-<n>/<name>      one file per key (see crate::state::keyfile)
//! ```
//!
//! A checkpoint at `applied` (every instance below it applied) runs:
//!
//! 1. write every key changed since the last checkpoint to `<name>.<number>.tmp`;
//! 2. `syncfs`: those files, and the renames of the previous checkpoint, are durable;
//! 3. write the record (applied, config, per-shard mode and duplicate table, and the
//!    list of renames and deletions still to do) to a temp file, fsync, rename it
//!    over `checkpoint`, fsync the directory: **this is the commit point**;
//! 4. carry out the renames and deletions; a key file replaced is renamed
//!    aside as a spare (`<name>.<number>.old.tmp`), which a later checkpoint's
//!    step 1 rewrites instead of creating a file (see `spares.rs`).
//!
//! Recovery reads the record and redoes step 4 (idempotent), deletes any other temp
//! file (an unfinished later checkpoint, and the spares), and loads the key
//! files. The key files then
//! hold exactly the state at `applied`, so replaying the log from there applies every
//! instance exactly once (Append and duplicate-table replies included).
//!
//! All file I/O goes through a [`paxos::fs::FileSystem`]: the machine's, or a
//! simulated disk.
//!
//! The record and its bytes are `record.rs`; the rule that a folder has one
//! writer at a time (a background checkpoint against a replica restarted in the
//! same process) is `writers.rs`; the spare files and when they may be
//! rewritten, `spares.rs`; this module is the store and its steps.

use crate::error::StateError;
use crate::state::keyfile;
use crate::state::loader;
use crate::state::shard::Shard;
use crate::state::value::Value;
use paxos::fs::{durable, SharedFs};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod record;
mod spares;
mod writers;

pub use record::{decode_record, encode_record, CheckpointRecord, ShardMeta};
use spares::{spare_name, Room, Spares};
use writers::wait_for_writers;
pub use writers::Writing;

/// A loaded checkpoint: its record and the shards' data.
pub type Loaded = (CheckpointRecord, BTreeMap<usize, Shard>);

/// The on-disk KV state of one replica.
#[derive(Debug)]
pub struct DiskStore {
    fs: SharedFs,
    root: PathBuf,
    number: u64,
    /// `applied` of the newest record written or loaded.
    written: u64,
    /// A committed record whose step 4 failed: finished before anything else
    /// is written, so no later record commits (and no later checkpoint is
    /// skipped as already written) while its renames are undone.
    unfinished: Option<CheckpointRecord>,
    /// Replaced key files kept for their inodes.
    spares: Spares,
}

/// A key changed since the previous checkpoint: (shard, key, value or deleted).
/// The value is the state's own, shared ([`Value`]), not a copy.
pub type KeyChange = (usize, String, Option<Value>);

/// A shard dropped since the last checkpoint, with the file names of the keys it
/// holds again if it was installed again meanwhile (`None`: not held, its folder goes).
pub type DroppedShard = (usize, Option<HashSet<String>>);

/// Pairs each dropped shard with the key file names of the copy held now, if any
/// (taken when the checkpoint is prepared, so the write can run later).
pub fn dropped_shards(shards: &BTreeMap<usize, Shard>, dropped: Vec<usize>) -> Vec<DroppedShard> {
    dropped
        .into_iter()
        .map(|shard| {
            let held = shards
                .get(&shard)
                .map(|s| s.data.keys().map(|k| keyfile::file_name(k)).collect());
            (shard, held)
        })
        .collect()
}

fn io_err(path: &Path, e: std::io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

impl DiskStore {
    /// The store under `dir/kv` (created if missing), on the machine's file system.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        DiskStore::open_on(paxos::fs::os(), dir)
    }

    /// The store under `dir/kv` (created if missing), on the file system `fs`.
    pub fn open_on(fs: SharedFs, dir: &Path) -> Result<Self, StateError> {
        let root = dir.join("kv");
        paxos::fs::durable::create_dir_all(&*fs, &root).map_err(|e| io_err(&root, e))?;
        wait_for_writers(&(fs.identity(), root.clone()))?;
        Ok(DiskStore {
            fs,
            root,
            number: 0,
            written: 0,
            unfinished: None,
            spares: Spares::default(),
        })
    }

    /// Marks this store as being written until the guard is dropped (see [`Writing`]).
    pub fn writing(&self) -> Writing {
        Writing::new((self.fs.identity(), self.root.clone()))
    }

    fn shard_dir(&self, shard: usize) -> PathBuf {
        self.root.join(format!("shard-{shard}"))
    }

    /// Loads the latest checkpoint and its shards' data; `None` if there is none.
    pub fn load(&mut self) -> Result<Option<Loaded>, StateError> {
        let path = self.root.join("checkpoint");
        let Some(bytes) =
            durable::read_if_exists(&*self.fs, &path).map_err(|e| io_err(&path, e))?
        else {
            self.remove_temp_files()?;
            return Ok(None);
        };
        let record = decode_record(&bytes).map_err(|reason| StateError::Corrupt {
            path: path.clone(),
            reason,
        })?;
        self.number = record.number;
        self.written = record.applied;
        let started = Instant::now();
        // Nothing is kept as a spare here: start-up deletes spares (they are
        // temp files) right after, so renaming files aside would be wasted.
        self.finish(&record, &Room::none())?;
        // One listing of each folder serves both the clean-up and the load.
        let mut listed = self.remove_temp_files()?;
        let cleaned = started.elapsed();
        let mut shards = BTreeMap::new();
        let mut files = Vec::new();
        for (&shard, meta) in &record.shards {
            let mut s = Shard::new(meta.mode.clone());
            s.dups = meta.dups.clone();
            let kept = listed.remove(&self.shard_dir(shard)).unwrap_or_default();
            files.extend(kept.into_iter().map(|path| (shard, path)));
            shards.insert(shard, s);
        }
        for (shard, kf) in loader::read_all(&*self.fs, &files)? {
            if let Some(s) = shards.get_mut(&shard) {
                s.data.insert(kf.key, Value::from(kf.value));
            }
        }
        tracing::info!(
            dir = %self.root.display(),
            applied = record.applied,
            keys = files.len(),
            finish_ms = cleaned.as_millis() as u64,
            load_ms = (started.elapsed() - cleaned).as_millis() as u64,
            "loaded the checkpoint"
        );
        Ok(Some((record, shards)))
    }

    /// Writes a checkpoint (steps 1–4 of the module docs). `dirty` lists the keys
    /// changed since the previous checkpoint; `dropped` the shards no longer held.
    pub fn checkpoint(
        &mut self,
        record: CheckpointRecord,
        shards: &BTreeMap<usize, Shard>,
        dirty: &[(usize, String)],
        dropped: Vec<usize>,
    ) -> Result<(), StateError> {
        let dropped = dropped_shards(shards, dropped);
        let changes: Vec<KeyChange> = dirty
            .iter()
            .map(|(shard, key)| {
                let value = shards.get(shard).and_then(|s| s.data.get(key)).cloned();
                (*shard, key.clone(), value)
            })
            .collect();
        self.write(record, &changes, dropped)
    }

    /// Like [`DiskStore::checkpoint`], with each changed key's value (`None`:
    /// deleted) taken beforehand, so it can run while the state moves on. A record
    /// not newer than the last one written is skipped: a later checkpoint (a
    /// snapshot installed meanwhile) already covers it.
    pub fn write(
        &mut self,
        mut record: CheckpointRecord,
        changes: &[KeyChange],
        dropped: Vec<DroppedShard>,
    ) -> Result<(), StateError> {
        if let Some(earlier) = self.unfinished.take() {
            // Its renames must land before this checkpoint can count as
            // written: skipped as "already written" (same `applied`), the keys
            // it carried would be taken as clean while their files still hold
            // the old values, and the next start would delete the temp files.
            if let Err(e) = self.finish(&earlier, &self.spares.room()) {
                self.unfinished = Some(earlier);
                return Err(e);
            }
        }
        if record.applied <= self.written && self.written > 0 {
            return Ok(());
        }
        self.number += 1;
        record.number = self.number;
        if let Err(e) = self.commit(&mut record, changes, dropped) {
            // Nothing needs the spares now, and a full disk needs their space.
            self.spares.remove_all(&*self.fs);
            return Err(e);
        }
        self.written = record.applied;
        tracing::debug!(
            number = record.number,
            writes = record.writes.len(),
            spares_reused = self.spares.reused(),
            spares_held = self.spares.count(),
            "checkpoint committed"
        );
        if let Err(e) = self.finish(&record, &self.spares.room()) {
            self.unfinished = Some(record);
            return Err(e);
        }
        Ok(())
    }

    /// Steps 1–3 of checkpoint `record.number`: the temp files, the `syncfs`,
    /// and the record (the commit point).
    fn commit(
        &mut self,
        record: &mut CheckpointRecord,
        changes: &[KeyChange],
        dropped: Vec<DroppedShard>,
    ) -> Result<(), StateError> {
        let n = record.number;
        let mut dirs = HashSet::new();
        for (shard, key, value) in changes {
            let name = keyfile::file_name(key);
            match value {
                Some(value) => {
                    let dir = self.shard_dir(*shard);
                    if dirs.insert(*shard) {
                        self.fs.create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
                    }
                    let tmp = dir.join(format!("{name}.{n}.tmp"));
                    let bytes = keyfile::encode(key, value);
                    self.spares.reuse_as(&*self.fs, &tmp);
                    self.fs.write(&tmp, &bytes).map_err(|e| io_err(&tmp, e))?;
                    record.writes.push((*shard, name));
                }
                None => record.deletes.push((*shard, name)),
            }
        }
        for (shard, held) in dropped {
            match held {
                // Deleted, then installed again since the last checkpoint: keep the
                // folder (it now holds the new copy's files), delete the old copy's.
                Some(keep) => self.stale_files(shard, &keep, &mut record.deletes)?,
                None => record.dropped.push(shard),
            }
        }
        self.spares.remove_unused(&*self.fs);
        self.fs
            .sync_file_system(&self.root)
            .map_err(|e| io_err(&self.root, e))?;
        self.spares.synced();
        let path = self.root.join("checkpoint");
        let bytes = encode_record(record).map_err(|e| StateError::Encode {
            what: "the checkpoint record",
            reason: e.to_string(),
        })?;
        durable::replace(&*self.fs, &path, &bytes).map_err(|e| io_err(&path, e))
    }

    /// Step 4: renames, deletions and dropped shard folders (idempotent). The
    /// files replaced become spares while `room` lasts.
    fn finish(&mut self, record: &CheckpointRecord, room: &Room) -> Result<(), StateError> {
        let n = record.number;
        let fs = &*self.fs;
        let renamed = loader::for_each(&record.writes, |(shard, name)| {
            let dir = self.shard_dir(*shard);
            let tmp = dir.join(format!("{name}.{n}.tmp"));
            if !fs.exists(&tmp) {
                return Ok(None);
            }
            let dst = dir.join(name);
            let spare = room.retire(fs, &dst, dir.join(spare_name(name, n)));
            // Renamed aside or not, the new file takes the name (a failure
            // leaves the temp file for the redo).
            let renamed = fs.rename(&tmp, &dst).map_err(|e| io_err(&dst, e));
            let spare = spare?;
            renamed.map(|()| spare)
        });
        if let Ok(spares) = &renamed {
            self.spares.retired(spares.iter().flatten().cloned());
        }
        renamed?;
        let deletes: Vec<PathBuf> = record
            .deletes
            .iter()
            .map(|(shard, name)| self.shard_dir(*shard).join(name))
            .collect();
        loader::remove_all(&*self.fs, &deletes)?;
        for shard in &record.dropped {
            let dir = self.shard_dir(*shard);
            if self.fs.exists(&dir) {
                self.fs.remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
            }
        }
        Ok(())
    }

    /// Adds to `deletes` every key file in `shard`'s folder whose key `held` lacks.
    fn stale_files(
        &self,
        shard: usize,
        keep: &HashSet<String>,
        deletes: &mut Vec<(usize, String)>,
    ) -> Result<(), StateError> {
        let dir = self.shard_dir(shard);
        if !self.fs.exists(&dir) {
            return Ok(());
        }
        for name in self.fs.read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let Some(name) = name.to_str().map(str::to_string) else {
                continue;
            };
            // Temp files and spares are not key files (nor names a record may hold).
            if keyfile::is_file_name(&name) && !keep.contains(&name) {
                deletes.push((shard, name));
            }
        }
        Ok(())
    }

    /// Removes every temp file (of an unfinished checkpoint, and spares) under
    /// the store; returns the other files of each folder, by folder.
    fn remove_temp_files(&self) -> Result<BTreeMap<PathBuf, Vec<PathBuf>>, StateError> {
        let fs = &*self.fs;
        let is_temp = |p: &Path| p.extension().is_some_and(|x| x == "tmp");
        let mut temps = Vec::new();
        let mut kept = BTreeMap::new();
        for name in fs.read_dir(&self.root).map_err(|e| io_err(&self.root, e))? {
            let p = self.root.join(name);
            if fs.is_dir(&p) {
                let names = fs.read_dir(&p).map_err(|e| io_err(&p, e))?;
                let (tmp, files): (Vec<PathBuf>, Vec<PathBuf>) = names
                    .into_iter()
                    .map(|f| p.join(f))
                    .partition(|f| is_temp(f));
                temps.extend(tmp);
                kept.insert(p, files);
            } else if is_temp(&p) {
                temps.push(p);
            }
        }
        loader::remove_all(fs, &temps)?;
        Ok(kept)
    }

    /// Spares held, and temp files written into a spare so far.
    #[cfg(test)]
    pub fn spares(&self) -> (usize, u64) {
        (self.spares.count(), self.spares.reused())
    }
}

#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod tests;
