//! The durable log: a directory of append-only, checksummed segment files.
//!
//! # Format
//!
//! The directory holds segment files named `{seq:020}.log` (`00000000000000000042.log`)
//! so that names sort in log order; other files are ignored. A segment is a sequence
//! of frames, each `len: u32 LE | crc32c(payload): u32 LE | payload`, the payload
//! being the postcard encoding of one [`Record`] (at most 64 MiB). Loading the log
//! reads the segments in order and returns their records.
//!
//! When the current segment has reached [`LogOptions::segment_bytes`], the next append
//! starts a new segment, whose *head* restates the log's latest facts: the highest
//! promise (by a `Promised` record or implied by an `Accepted` one), `Committed` and
//! `Forgotten`. So a segment whose instances are all forgotten can be deleted by
//! [`Storage::compact`] without losing the facts that outlive instances.
//!
//! The current segment is no exception: when every instance it holds is forgotten,
//! `compact` rotates to a fresh segment (just the head) and deletes the old one. An
//! idle group's log therefore shrinks to a few dozen bytes of facts instead of
//! keeping up to `segment_bytes` of dead records.
//!
//! # Durability
//!
//! [`Storage::sync`] `fdatasync`s the current segment and, if a segment was created or
//! deleted since the last sync, `fsync`s the directory. Before a new segment is created
//! the previous one is synced, so **every segment but the last is complete on disk**.
//! Compaction syncs the log before deleting anything, so the facts a deleted segment
//! held are durable in a later one first, and syncs the directory after deleting, so
//! an idle log does not wait for a later sync to make the deletions durable.
//!
//! At open, what a killed process may have left in the page cache is made durable
//! before anything acts on it: the last segment's data, the directory's entries
//! (a segment it created or deleted) and the directory's own entry in its parent.
//!
//! # Recovery rule
//!
//! A crash can only tear the end of the last segment: the bytes after its last
//! complete frame are a prefix of what was being appended, possibly followed by
//! zeros (space allocated, data never written) or by garbage up to a page end (a
//! page written in part). Anything else is corruption, and a replica with a corrupt
//! log must not vote, so it is never silently repaired. On [`SegmentLog::open`] a
//! defective frame (short header, zero or oversized length, short payload, checksum
//! mismatch) is a **torn tail** if and only if:
//!
//! 1. it is in the last segment, and
//! 2. it is not a frame that passes its checksum but does not decode, and
//! 3. no valid frame starts anywhere after it in the segment (zero runs are skipped;
//!    a torn write never leaves a complete frame behind its first defect), and
//! 4. it is not one flipped bit from a valid frame: neither its checksum field is
//!    one bit off its payload's checksum, nor its length field one bit off a length
//!    whose payload passes the checksum and decodes, nor its payload one bit off a
//!    payload that passes the checksum and decodes (one pass over the payload: a
//!    checksum is linear, so every bit position's effect is known without
//!    rehashing) — unless that bit is the last set bit of the file, which a write
//!    that never reached the disk explains as well.
//!
//! A torn tail is truncated away (and the truncation synced), with a `warn!` giving the
//! bytes cut; a zero-filled (preallocated) tail is a torn tail. Every other defect is
//! [`StorageError::Corrupt`] naming the file and offset.
//!
//! **Detected** without any format change: a flipped bit (or any damage) in a frame
//! of a segment that is not the last; in the last segment, damage to any frame
//! that has a valid frame after it, whichever field it hit (a length field that
//! now points past the file or into the middle of a frame included), and one
//! flipped bit anywhere in the last frame (length, checksum or payload). The last
//! frame matters most: it is usually synced, so its promise or vote may already
//! have been revealed, and cutting it would forget it.
//!
//! **Not detected** (cut as a torn tail): two or more flipped bits in the last
//! frame when nothing valid follows (a torn write of that frame looks the same); a
//! flip that clears the file's last set bit; a flip in the last frame's last byte
//! when garbage follows up to a page end (a torn write whose page was filled with
//! garbage looks the same); damage that also wiped every later
//! frame (zeros to the end look like preallocation); and anything past the scan
//! budget of 3 and 4 (64 MiB of payload hashed per defect, far more than one torn
//! write; a `warn!` says when it ran out).
//!
//! **False alarms**, safe (the replica recovers from its peers) but possible: a torn
//! record whose command bytes themselves hold a complete valid frame, and a file
//! system that persists a later page of an unsynced append without an earlier one
//! (the log assumes appends survive a crash in order, as a prefix).

use super::facts::Facts;
use super::frame::{self, EncodeError};
use super::segment::{self, create_segment, io_err, open_for_append, Segment};
use super::{Storage, StorageError};
use crate::fs::{self, FileHandle, FileSystem, SharedFs};
use crate::record::Record;
use crate::types::Slot;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::{debug, info, warn};

/// How a [`SegmentLog`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Size after which the next append starts a new segment (default 8 MiB). Any
    /// value works; a tiny one makes every append start a segment.
    pub segment_bytes: u64,
    /// Whether [`Storage::sync`] really calls `fdatasync`/`fsync` (default `true`).
    /// `false` is for tests and benchmarks only: nothing is durable.
    pub sync: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 8 << 20,
            sync: true,
        }
    }
}

/// Counters of a [`SegmentLog`] since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Times appended data was made durable (one `fdatasync` each, unless
    /// [`LogOptions::sync`] is off). Commands per sync measures group commit.
    pub syncs: u64,
    /// Total nanoseconds spent in `fdatasync`.
    pub sync_nanos: u64,
    /// Directory `fsync`s (after segments were created or deleted).
    pub dir_syncs: u64,
    /// Calls to [`Storage::append`] with at least one record.
    pub appends: u64,
    /// Records appended.
    pub records: u64,
    /// Bytes appended, frame headers included.
    pub bytes: u64,
    /// Segment files the log has now.
    pub segments: u64,
}

/// The on-disk [`Storage`]: see the [module docs](self) for the format and the
/// recovery rule.
#[derive(Debug)]
pub struct SegmentLog {
    /// The file system the log lives on.
    fs: SharedFs,
    dir: PathBuf,
    opts: LogOptions,
    /// In log order; never empty. The last one is the current segment.
    segments: Vec<Segment>,
    /// The current segment, opened for appending.
    current: Box<dyn FileHandle>,
    /// The facts of the whole log, including deleted segments.
    facts: Facts,
    /// Encode buffer, reused by every append.
    buf: Vec<u8>,
    /// The current segment has writes not yet synced.
    unsynced: bool,
    /// A segment was created or deleted since the last directory sync.
    dir_unsynced: bool,
    /// Records read by `open`, handed out by `load` unless the log changed since.
    recovered: Option<Vec<Record>>,
    /// Why the log refuses further calls, after a failure that left its state unknown.
    failed: Option<String>,
    /// A sync failed (see [`Storage::sync_failed`]).
    sync_failed: bool,
    stats: LogStats,
}

/// Reads every segment of `dir` in order, cutting a torn tail off the last one.
/// Returns the segments, the facts of the whole log and its records.
fn read_segments(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<(Vec<Segment>, Facts, Vec<Record>), StorageError> {
    let listed = segment::list(fs, dir)?;
    let mut records = Vec::new();
    let mut segments = Vec::with_capacity(listed.len());
    let mut facts = Facts::default();
    for (i, (seq, path)) in listed.iter().enumerate() {
        let bytes = fs.read(path).map_err(io_err(path))?;
        let scan = segment::scan(path, &bytes, i + 1 == listed.len(), &mut records)?;
        if let Some(defect) = &scan.torn {
            let cut_bytes = bytes.len() as u64 - scan.valid_len;
            warn!(path = %path.display(), offset = scan.valid_len, cut_bytes, %defect,
                "cutting a torn record off the tail of the log");
            let mut file = open_for_append(fs, path)?;
            file.set_len(scan.valid_len).map_err(io_err(path))?;
            file.sync_data().map_err(io_err(path))?;
        }
        facts.absorb(&scan.facts);
        segments.push(Segment {
            seq: *seq,
            path: path.clone(),
            facts: scan.facts,
            len: scan.valid_len,
        });
    }
    Ok((segments, facts, records))
}

impl SegmentLog {
    /// Opens (creating it if needed) the log in `dir` and recovers it: every segment
    /// is read, a torn tail is cut off, and a corrupt log is refused with
    /// [`StorageError::Corrupt`]. The records read are kept for the first
    /// [`Storage::load`] (which reads the disk again if the log changed since).
    ///
    /// The log lives on the machine's real file system; see
    /// [`SegmentLog::open_on`] for any other.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<SegmentLog, StorageError> {
        SegmentLog::open_on(fs::os(), dir, opts)
    }

    /// Like [`SegmentLog::open`], on the file system `fs` (a simulated disk in
    /// tests).
    pub fn open_on(fs: SharedFs, dir: &Path, opts: LogOptions) -> Result<SegmentLog, StorageError> {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        let existed = fs.is_dir(dir);
        crate::fs::durable::create_dir_all(&*fs, dir).map_err(io_err(dir))?;
        let (mut segments, facts, records) = read_segments(&*fs, dir)?;
        let fresh = segments.is_empty();
        let mut current = if fresh {
            let (first, file) = create_segment(&*fs, dir, 0)?;
            segments.push(first);
            file
        } else {
            open_for_append(&*fs, &segments[segments.len() - 1].path)?
        };
        // A process killed with SIGKILL leaves its last appends, and the segments it
        // created or deleted, in the page cache: visible now, but not durable. Make
        // them durable before anyone acts on them (a promise read back must survive
        // a power loss too, and so must the entry of the segment holding it).
        if opts.sync {
            current
                .sync_data()
                .map_err(io_err(&segments[segments.len() - 1].path))?;
            if !fresh {
                segment::sync_dir(&*fs, dir)?;
            }
            if let Some(parent) = parent.filter(|_| existed) {
                segment::sync_dir(&*fs, parent)?;
            }
        }
        let mut log = SegmentLog {
            fs,
            dir: dir.to_path_buf(),
            opts,
            segments,
            current,
            facts: facts.clone(),
            buf: Vec::new(),
            unsynced: false,
            // A new first segment's entry is synced by the first sync.
            dir_unsynced: fresh,
            recovered: Some(records),
            failed: None,
            sync_failed: false,
            stats: LogStats::default(),
        };
        if !log.segments[log.segments.len() - 1].facts.covers(&facts) {
            // The head of the last segment was torn off: restate it.
            log.write_records(&facts.head().collect::<Vec<_>>())?;
        }
        debug!(dir = %dir.display(), segments = log.segments.len(), "log opened");
        Ok(log)
    }

    /// Opens the same log again from its files, as a restarted process would
    /// (after a failed append: see [`crate::node::failure`]).
    pub fn reopen(&self) -> Result<SegmentLog, StorageError> {
        SegmentLog::open_on(self.fs.clone(), &self.dir, self.opts)
    }

    /// True if `dir` on `fs` holds a log: at least one segment file (a log, once
    /// opened, always has one). A missing folder holds none.
    pub fn exists_on(fs: &dyn FileSystem, dir: &Path) -> Result<bool, StorageError> {
        if !fs.is_dir(dir) {
            return Ok(false);
        }
        Ok(!segment::list(fs, dir)?.is_empty())
    }

    /// True if no segment of `dir` on `fs` holds a byte (a missing folder or one
    /// without segments included). Other files are ignored.
    pub fn is_empty_on(fs: &dyn FileSystem, dir: &Path) -> Result<bool, StorageError> {
        if !fs.is_dir(dir) {
            return Ok(true);
        }
        for (_, path) in segment::list(fs, dir)? {
            if fs.metadata(&path).map_err(io_err(&path))?.len > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// True if `dir` on `fs` holds anything a replica wrote: a segment with bytes in
    /// it, or a file that is not a segment. A missing folder, or one holding only
    /// empty segments (a log created but never written), holds nothing.
    pub fn holds_data_on(fs: &dyn FileSystem, dir: &Path) -> Result<bool, StorageError> {
        let names = match fs.read_dir(dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(dir)(e)),
        };
        for name in names {
            if segment::parse_file_name(&name).is_none() {
                return Ok(true);
            }
            let path = dir.join(name);
            if fs.metadata(&path).map_err(io_err(&path))?.len > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The log's counters.
    pub fn stats(&self) -> LogStats {
        LogStats {
            segments: self.segments.len() as u64,
            ..self.stats
        }
    }

    /// Syncs the current segment, then starts the next one with the log's head.
    fn rotate(&mut self) -> Result<(), StorageError> {
        // The previous segment must be complete on disk before the next one exists:
        // recovery treats a defect in any segment but the last as corruption.
        self.sync()?;
        let seq = self.segments[self.segments.len() - 1].seq + 1;
        let (next, file) = create_segment(&*self.fs, &self.dir, seq)?;
        self.dir_unsynced = true;
        self.current = file;
        self.segments.push(next);
        let head: Vec<Record> = self.facts.head().collect();
        self.write_records(&head)
    }

    /// Frames `records` into the encode buffer and writes them to the current segment
    /// in one `write_all`. A failed write is undone, or else the log is failed.
    fn write_records(&mut self, records: &[Record]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let current = self.segments.len() - 1;
        let (mut seg_facts, mut log_facts) =
            (self.segments[current].facts.clone(), self.facts.clone());
        self.buf.clear();
        for record in records {
            if let Err(e) = frame::encode(record, &mut self.buf) {
                return Err(self.encode_error(e));
            }
            seg_facts.observe(record);
            log_facts.observe(record);
        }
        let segment = &mut self.segments[current];
        if let Err(source) = self.current.append(&self.buf) {
            // Cut whatever part was written, so the next append does not land behind
            // a torn frame (which recovery would call corruption).
            if let Err(undo) = self.current.set_len(segment.len) {
                self.failed = Some(format!("a failed write could not be undone: {undo}"));
            }
            return Err(StorageError::Io {
                path: segment.path.clone(),
                source,
            });
        }
        segment.len += self.buf.len() as u64;
        segment.facts = seg_facts;
        self.facts = log_facts;
        self.unsynced = true;
        self.stats.bytes += self.buf.len() as u64;
        Ok(())
    }

    /// Refuses the call if an earlier failure left the log in an unknown state.
    fn check_usable(&self) -> Result<(), StorageError> {
        match &self.failed {
            None => Ok(()),
            Some(reason) => Err(StorageError::Io {
                path: self.dir.clone(),
                source: io::Error::other(format!("log unusable, reopen it to recover: {reason}")),
            }),
        }
    }
}

impl Storage for SegmentLog {
    fn load(&mut self) -> Result<Vec<Record>, StorageError> {
        self.check_usable()?;
        if let Some(records) = self.recovered.take() {
            return Ok(records);
        }
        // Read the log again from disk, keeping what this handle still owes it.
        let mut reopened = SegmentLog::open_on(self.fs.clone(), &self.dir, self.opts)?;
        reopened.unsynced |= self.unsynced;
        reopened.dir_unsynced |= self.dir_unsynced;
        reopened.stats = self.stats;
        let records = reopened.recovered.take().unwrap_or_default();
        *self = reopened;
        Ok(records)
    }

    fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.check_usable()?;
        if records.is_empty() {
            return Ok(());
        }
        // What open() read is no longer the whole log.
        self.recovered = None;
        let current = &self.segments[self.segments.len() - 1];
        if current.len > 0 && current.len >= self.opts.segment_bytes {
            self.rotate()?;
        }
        self.write_records(records)?;
        self.stats.appends += 1;
        self.stats.records += records.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        if self.unsynced {
            if self.opts.sync {
                let started = Instant::now();
                if let Err(source) = self.current.sync_data() {
                    // After a failed fdatasync the page cache may have dropped the
                    // dirty pages: nothing written since the last sync can be trusted.
                    self.failed = Some(format!("fdatasync failed: {source}"));
                    self.sync_failed = true;
                    let path = self.segments[self.segments.len() - 1].path.clone();
                    return Err(StorageError::Io { path, source });
                }
                self.stats.sync_nanos += started.elapsed().as_nanos() as u64;
            }
            self.stats.syncs += 1;
            self.unsynced = false;
        }
        if self.dir_unsynced {
            if self.opts.sync {
                if let Err(e) = segment::sync_dir(&*self.fs, &self.dir) {
                    self.failed = Some(format!("directory fsync failed: {e}"));
                    self.sync_failed = true;
                    return Err(e);
                }
                self.stats.dir_syncs += 1;
            }
            self.dir_unsynced = false;
        }
        Ok(())
    }

    fn sync_failed(&self) -> bool {
        self.sync_failed
    }

    fn compact(&mut self, below: Slot) -> Result<(), StorageError> {
        self.check_usable()?;
        if self.current_is_dead_weight(below)? {
            // Every instance the current segment holds is forgotten: start a fresh
            // one, whose head restates the facts, so the old one can go like any other.
            self.recovered = None;
            self.rotate()?;
        }
        let doomed = self.doomed_segments(below);
        if doomed.is_empty() {
            return Ok(());
        }
        // The facts that make the doomed segments redundant must be on disk first.
        self.sync()?;
        self.recovered = None;
        self.delete_segments(&doomed, below)?;
        // Make the deletions durable now: an idle log may see no further sync.
        self.sync()
    }
}

/// Compaction helpers.
impl SegmentLog {
    /// True if the current segment holds no instance at or above `below` and is
    /// longer than the head a fresh segment would start with: replacing it by that
    /// head shrinks the log. This is what lets an idle group's log shrink to its
    /// facts; a segment that is only a head is never rotated again.
    fn current_is_dead_weight(&mut self, below: Slot) -> Result<bool, StorageError> {
        let current = &self.segments[self.segments.len() - 1];
        let forgotten = current.facts.max_slot.is_none_or(|slot| slot < below);
        if !forgotten {
            return Ok(false);
        }
        let current_len = current.len;
        Ok(current_len > self.head_len()?)
    }

    /// Bytes of the head a new segment would start with now.
    fn head_len(&mut self) -> Result<u64, StorageError> {
        self.buf.clear();
        let head: Vec<Record> = self.facts.head().collect();
        for record in &head {
            frame::encode(record, &mut self.buf).map_err(|e| self.encode_error(e))?;
        }
        Ok(self.buf.len() as u64)
    }

    /// Indices of the segments `compact(below)` may delete, in descending order: all
    /// their instances are below `below` and the segments after them restate their
    /// facts. The current segment is never among them.
    fn doomed_segments(&self, below: Slot) -> Vec<usize> {
        // Walk from the newest segment back, collecting the facts of those that stay.
        let current = self.segments.len() - 1;
        let mut later = self.segments[current].facts.clone();
        let mut doomed = Vec::new();
        for (i, segment) in self.segments[..current].iter().enumerate().rev() {
            let forgotten = segment.facts.max_slot.is_none_or(|slot| slot < below);
            if forgotten && later.covers(&segment.facts) {
                doomed.push(i);
            } else {
                later.absorb(&segment.facts);
            }
        }
        doomed
    }

    /// Deletes the segments at `doomed` (descending indices); the directory is left
    /// to the next sync.
    fn delete_segments(&mut self, doomed: &[usize], below: Slot) -> Result<(), StorageError> {
        for &i in doomed {
            // Descending order: earlier indices stay valid.
            let segment = &self.segments[i];
            match self.fs.remove_file(&segment.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StorageError::Io {
                        path: segment.path.clone(),
                        source,
                    })
                }
            }
            info!(path = %segment.path.display(), seq = segment.seq, below,
                "deleted a forgotten log segment");
            self.segments.remove(i);
            self.dir_unsynced = true;
        }
        Ok(())
    }

    /// The error for a record that cannot be framed into the current segment.
    fn encode_error(&self, e: EncodeError) -> StorageError {
        let kind = match e {
            EncodeError::TooLarge(_) => io::ErrorKind::InvalidInput,
            EncodeError::Postcard(_) => io::ErrorKind::InvalidData,
        };
        StorageError::Io {
            path: self.segments[self.segments.len() - 1].path.clone(),
            source: io::Error::new(kind, e.to_string()),
        }
    }
}

#[cfg(test)]
impl SegmentLog {
    /// The current segment's path and length, for crash tests.
    pub(crate) fn tail(&self) -> (PathBuf, u64) {
        let current = &self.segments[self.segments.len() - 1];
        (current.path.clone(), current.len)
    }
}
