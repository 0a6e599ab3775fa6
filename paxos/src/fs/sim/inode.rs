//! The inodes of a simulated disk: files with their current and durable bytes,
//! directories with their current and durable entries and the entry operations
//! not yet durable, in order.

use std::collections::BTreeMap;
use std::ffi::OsString;

/// An inode number.
pub(super) type Ino = u64;

/// The root directory's inode.
pub(super) const ROOT: Ino = 0;

/// A regular file.
#[derive(Debug, Default)]
pub(super) struct FileNode {
    /// What a reader sees now.
    pub(super) current: Vec<u8>,
    /// What survives a crash for certain.
    pub(super) durable: Vec<u8>,
    /// `current[..kept] == durable[..kept]`: bytes untouched since the last sync.
    pub(super) kept: usize,
}

impl FileNode {
    /// True if a crash cannot change this file.
    pub(super) fn is_synced(&self) -> bool {
        self.kept == self.current.len() && self.kept == self.durable.len()
    }

    /// Makes the current content durable.
    pub(super) fn sync(&mut self) {
        if !self.is_synced() {
            self.durable.clone_from(&self.current);
            self.kept = self.current.len();
        }
    }

    /// Sets the content after a crash: it is all durable.
    pub(super) fn settle(&mut self, bytes: Vec<u8>) {
        self.kept = bytes.len();
        self.durable.clone_from(&bytes);
        self.current = bytes;
    }
}

/// An operation on a directory's entries, replayed on its durable entries when it
/// becomes durable. A rename is a `MoveOut` in the source directory and a `MoveIn`
/// in the target (the same directory for a rename in place) sharing an id: a crash
/// keeps both or neither.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum DirOp {
    /// A new entry (file or directory created).
    Link { name: OsString, ino: Ino },
    /// An entry removed.
    Unlink { name: OsString },
    /// The source half of a rename.
    MoveOut { name: OsString, id: u64, to: Ino },
    /// The target half of a rename.
    MoveIn {
        name: OsString,
        ino: Ino,
        id: u64,
        from: Ino,
    },
}

impl DirOp {
    /// Carries the operation out on `entries`.
    pub(super) fn apply(&self, entries: &mut BTreeMap<OsString, Ino>) {
        match self {
            DirOp::Link { name, ino } | DirOp::MoveIn { name, ino, .. } => {
                entries.insert(name.clone(), *ino);
            }
            DirOp::Unlink { name } | DirOp::MoveOut { name, .. } => {
                entries.remove(name);
            }
        }
    }

    /// For half of a rename: the directory holding the other half.
    pub(super) fn partner_dir(&self) -> Option<Ino> {
        match self {
            DirOp::MoveOut { to, .. } => Some(*to),
            DirOp::MoveIn { from, .. } => Some(*from),
            _ => None,
        }
    }

    /// True if `other` is the other half of the rename `self` is half of.
    pub(super) fn completes(&self, other: &DirOp) -> bool {
        match (self, other) {
            (DirOp::MoveOut { id: a, .. }, DirOp::MoveIn { id: b, .. })
            | (DirOp::MoveIn { id: a, .. }, DirOp::MoveOut { id: b, .. }) => a == b,
            _ => false,
        }
    }

    /// The inode this operation makes an entry for, if any.
    pub(super) fn target(&self) -> Option<Ino> {
        match self {
            DirOp::Link { ino, .. } | DirOp::MoveIn { ino, .. } => Some(*ino),
            _ => None,
        }
    }
}

/// A directory.
#[derive(Debug, Default)]
pub(super) struct DirNode {
    /// What a running process sees.
    pub(super) current: BTreeMap<OsString, Ino>,
    /// What survives a crash for certain.
    pub(super) durable: BTreeMap<OsString, Ino>,
    /// Operations since the last sync of this directory, in order.
    pub(super) pending: Vec<DirOp>,
}

impl DirNode {
    pub(super) fn record(&mut self, op: DirOp) {
        op.apply(&mut self.current);
        self.pending.push(op);
    }

    /// Makes the first `n` pending operations durable; returns them.
    pub(super) fn commit(&mut self, n: usize) -> Vec<DirOp> {
        let done: Vec<DirOp> = self.pending.drain(..n).collect();
        for op in &done {
            op.apply(&mut self.durable);
        }
        done
    }
}

/// An inode.
#[derive(Debug)]
pub(super) enum Node {
    File(FileNode),
    Dir(DirNode),
}
