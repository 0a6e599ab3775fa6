//! The state of one simulated disk: its inodes (`inode.rs`), path resolution,
//! the file and directory operations, syncs, capacity and injected failures.
//!
//! Paths are resolved through the *current* entries (what a running process sees);
//! a crash (see `crash.rs`) rebuilds the tree from the durable entries plus a prefix
//! of each directory's pending operations.

use super::inode::{DirNode, DirOp, FileNode, Ino, Node, ROOT};
use super::SimOptions;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path, PathBuf};

/// An error with the errno a real file system would give.
pub(super) fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Countdowns to injected failures.
#[derive(Debug, Default)]
pub(super) struct Faults {
    /// The Nth next data write fails.
    pub(super) write_in: Option<u64>,
    /// The Nth next sync fails.
    pub(super) sync_in: Option<u64>,
    /// The Nth next rename fails.
    pub(super) rename_in: Option<u64>,
}

/// Counts down `counter`; true when it reaches its mark (which clears it).
fn trips(counter: &mut Option<u64>) -> bool {
    match counter {
        Some(n) if *n <= 1 => {
            *counter = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

/// One simulated disk.
#[derive(Debug)]
pub(super) struct Disk {
    pub(super) nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
    next_move: u64,
    /// Bumped by every crash; handles of an older generation are dead.
    pub(super) generation: u64,
    pub(super) options: SimOptions,
    /// Bytes of file content held (current), for the capacity limit.
    pub(super) used: u64,
    pub(super) faults: Faults,
    /// Open handles and held locks of this generation, per inode.
    pub(super) open: BTreeMap<Ino, usize>,
    /// Files locked in this generation.
    pub(super) locked: BTreeSet<Ino>,
    /// Inodes alive after the last garbage collection.
    live_after_gc: usize,
}

/// The normal components of `path` (`.` skipped, `..` goes up), from the root.
fn components(path: &Path) -> Vec<&OsStr> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

impl Disk {
    /// An empty disk: just the root directory.
    pub(super) fn new(options: SimOptions) -> Disk {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node::Dir(DirNode::default()));
        Disk {
            nodes,
            next_ino: ROOT + 1,
            next_move: 0,
            generation: 0,
            options,
            used: 0,
            faults: Faults::default(),
            open: BTreeMap::new(),
            locked: BTreeSet::new(),
            live_after_gc: 1,
        }
    }

    /// Loses everything: an empty disk, every handle dead.
    pub(super) fn wipe(&mut self) {
        let generation = self.generation + 1;
        let options = self.options;
        *self = Disk::new(options);
        self.generation = generation;
    }

    fn node(&self, ino: Ino) -> io::Result<&Node> {
        self.nodes.get(&ino).ok_or_else(|| errno(libc::ENOENT))
    }

    fn node_mut(&mut self, ino: Ino) -> io::Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or_else(|| errno(libc::ENOENT))
    }

    pub(super) fn dir(&self, ino: Ino) -> io::Result<&DirNode> {
        match self.node(ino)? {
            Node::Dir(d) => Ok(d),
            Node::File(_) => Err(errno(libc::ENOTDIR)),
        }
    }

    pub(super) fn dir_mut(&mut self, ino: Ino) -> io::Result<&mut DirNode> {
        match self.node_mut(ino)? {
            Node::Dir(d) => Ok(d),
            Node::File(_) => Err(errno(libc::ENOTDIR)),
        }
    }

    pub(super) fn file(&self, ino: Ino) -> io::Result<&FileNode> {
        match self.node(ino)? {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(errno(libc::EISDIR)),
        }
    }

    pub(super) fn file_mut(&mut self, ino: Ino) -> io::Result<&mut FileNode> {
        match self.node_mut(ino)? {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(errno(libc::EISDIR)),
        }
    }

    /// The inode `path` names now.
    pub(super) fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT;
        for name in components(path) {
            ino = *self
                .dir(ino)?
                .current
                .get(name)
                .ok_or_else(|| errno(libc::ENOENT))?;
        }
        Ok(ino)
    }

    /// The directory that holds `path`, and `path`'s name in it.
    fn parent_of<'p>(&self, path: &'p Path) -> io::Result<(Ino, &'p OsStr)> {
        let mut comps = components(path);
        let name = comps.pop().ok_or_else(|| errno(libc::EBUSY))?;
        let mut ino = ROOT;
        for c in comps {
            ino = *self
                .dir(ino)?
                .current
                .get(c)
                .ok_or_else(|| errno(libc::ENOENT))?;
        }
        self.dir(ino)?;
        Ok((ino, name))
    }

    fn add_node(&mut self, node: Node) -> Ino {
        if self.nodes.len() > 2 * self.live_after_gc + 64 {
            self.collect_garbage();
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    /// Creates every missing directory of `path`.
    pub(super) fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let mut ino = ROOT;
        for name in components(path) {
            let found = self.dir(ino)?.current.get(name).copied();
            ino = match found {
                Some(child) => {
                    self.dir(child).map_err(|_| errno(libc::EEXIST))?;
                    child
                }
                None => {
                    let child = self.add_node(Node::Dir(DirNode::default()));
                    self.dir_mut(ino)?.record(DirOp::Link {
                        name: name.to_os_string(),
                        ino: child,
                    });
                    child
                }
            };
        }
        Ok(())
    }

    /// The file at `path`, created empty if missing (`exclusive`: it must be).
    pub(super) fn create_file(&mut self, path: &Path, exclusive: bool) -> io::Result<Ino> {
        let (parent, name) = self.parent_of(path)?;
        if let Some(&ino) = self.dir(parent)?.current.get(name) {
            if exclusive {
                return Err(errno(libc::EEXIST));
            }
            self.file(ino)?;
            return Ok(ino);
        }
        let ino = self.add_node(Node::File(FileNode::default()));
        self.dir_mut(parent)?.record(DirOp::Link {
            name: name.to_os_string(),
            ino,
        });
        Ok(ino)
    }

    /// Checks the capacity and the injected write fault before a write that grows
    /// the content held by `grow` bytes.
    fn charge(&mut self, grow: u64) -> io::Result<()> {
        if trips(&mut self.faults.write_in) {
            return Err(errno(libc::EIO));
        }
        if let Some(capacity) = self.options.capacity {
            if self.used + grow > capacity {
                self.collect_garbage();
                if self.used + grow > capacity {
                    return Err(errno(libc::ENOSPC));
                }
            }
        }
        self.used += grow;
        Ok(())
    }

    /// Checks the injected sync fault.
    pub(super) fn sync_fault(&mut self) -> io::Result<()> {
        if trips(&mut self.faults.sync_in) {
            return Err(errno(libc::EIO));
        }
        Ok(())
    }

    pub(super) fn append(&mut self, ino: Ino, bytes: &[u8]) -> io::Result<()> {
        self.file(ino)?;
        self.charge(bytes.len() as u64)?;
        self.file_mut(ino)?.current.extend_from_slice(bytes);
        Ok(())
    }

    pub(super) fn set_len(&mut self, ino: Ino, len: usize) -> io::Result<()> {
        let old = self.file(ino)?.current.len();
        if len > old {
            self.charge((len - old) as u64)?;
        } else {
            self.used -= (old - len) as u64;
        }
        let file = self.file_mut(ino)?;
        file.current.resize(len, 0);
        file.kept = file.kept.min(len);
        Ok(())
    }

    /// Replaces the content of the file at `path` (created if missing).
    pub(super) fn write(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let ino = self.create_file(path, false)?;
        let old = self.file(ino)?.current.len() as u64;
        self.charge((bytes.len() as u64).saturating_sub(old))?;
        self.used -= old.saturating_sub(bytes.len() as u64);
        let file = self.file_mut(ino)?;
        file.current.clear();
        file.current.extend_from_slice(bytes);
        file.kept = 0;
        Ok(())
    }

    pub(super) fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if trips(&mut self.faults.rename_in) {
            return Err(errno(libc::EIO));
        }
        let (src, from_name) = self.parent_of(from)?;
        let ino = *self
            .dir(src)?
            .current
            .get(from_name)
            .ok_or_else(|| errno(libc::ENOENT))?;
        let (dst, to_name) = self.parent_of(to)?;
        if src == dst && from_name == to_name {
            return Ok(());
        }
        let (from_comps, to_comps) = (components(from), components(to));
        if to_comps.len() > from_comps.len() && to_comps.starts_with(&from_comps) {
            return Err(errno(libc::EINVAL)); // into its own subtree
        }
        let moving_dir = self.dir(ino).is_ok();
        if let Some(&existing) = self.dir(dst)?.current.get(to_name) {
            match (moving_dir, self.dir(existing)) {
                (false, Ok(_)) => return Err(errno(libc::EISDIR)),
                (true, Err(_)) => return Err(errno(libc::ENOTDIR)),
                (true, Ok(d)) if !d.current.is_empty() => return Err(errno(libc::ENOTEMPTY)),
                _ => {}
            }
        }
        let id = self.next_move;
        self.next_move += 1;
        self.dir_mut(src)?.record(DirOp::MoveOut {
            name: from_name.to_os_string(),
            id,
            to: dst,
        });
        self.dir_mut(dst)?.record(DirOp::MoveIn {
            name: to_name.to_os_string(),
            ino,
            id,
            from: src,
        });
        Ok(())
    }

    pub(super) fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        let (parent, name) = self.parent_of(path)?;
        let ino = *self
            .dir(parent)?
            .current
            .get(name)
            .ok_or_else(|| errno(libc::ENOENT))?;
        self.file(ino)?;
        self.dir_mut(parent)?.record(DirOp::Unlink {
            name: name.to_os_string(),
        });
        Ok(())
    }

    pub(super) fn remove_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let (parent, name) = self.parent_of(path)?;
        let ino = *self
            .dir(parent)?
            .current
            .get(name)
            .ok_or_else(|| errno(libc::ENOENT))?;
        self.dir(ino)?;
        self.empty_dir(ino)?;
        self.dir_mut(parent)?.record(DirOp::Unlink {
            name: name.to_os_string(),
        });
        Ok(())
    }

    /// Removes everything under directory `ino`, deepest first.
    fn empty_dir(&mut self, ino: Ino) -> io::Result<()> {
        let children: Vec<(OsString, Ino)> = self
            .dir(ino)?
            .current
            .iter()
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        for (name, child) in children {
            if self.dir(child).is_ok() {
                self.empty_dir(child)?;
            }
            self.dir_mut(ino)?.record(DirOp::Unlink { name });
        }
        Ok(())
    }

    /// Makes the pending operations of directory `ino` durable, and with each
    /// half of a rename the other directory's operations up to its other half (a
    /// journal commits in order, and a rename is one entry of it).
    pub(super) fn sync_dir(&mut self, ino: Ino) -> io::Result<()> {
        self.dir(ino)?;
        let mut work: Vec<(Ino, Option<DirOp>)> = vec![(ino, None)];
        while let Some((dir, through)) = work.pop() {
            let Ok(d) = self.dir_mut(dir) else { continue };
            let n = match &through {
                None => d.pending.len(),
                Some(half) => match d.pending.iter().position(|p| half.completes(p)) {
                    Some(at) => at + 1,
                    None => continue, // already durable
                },
            };
            for op in d.commit(n) {
                if let Some(other) = op.partner_dir() {
                    work.push((other, Some(op)));
                }
            }
        }
        Ok(())
    }

    /// Makes everything durable.
    pub(super) fn sync_everything(&mut self) {
        for node in self.nodes.values_mut() {
            match node {
                Node::File(f) => f.sync(),
                Node::Dir(d) => {
                    let n = d.pending.len();
                    d.commit(n);
                }
            }
        }
    }

    /// Inodes reachable from the root through current or durable entries, pending
    /// operations, or open handles.
    fn reachable(&self) -> BTreeSet<Ino> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Ino> = vec![ROOT];
        stack.extend(self.open.keys());
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            if let Some(Node::Dir(d)) = self.nodes.get(&ino) {
                stack.extend(d.current.values());
                stack.extend(d.durable.values());
                stack.extend(d.pending.iter().filter_map(DirOp::target));
            }
        }
        seen
    }

    /// Drops the inodes nothing can reach any more.
    pub(super) fn collect_garbage(&mut self) {
        let live = self.reachable();
        self.nodes.retain(|ino, _| live.contains(ino));
        self.recount();
    }

    /// Recomputes the bytes held and the live inode count.
    pub(super) fn recount(&mut self) {
        self.used = self
            .nodes
            .values()
            .map(|n| match n {
                Node::File(f) => f.current.len() as u64,
                Node::Dir(_) => 0,
            })
            .sum();
        self.live_after_gc = self.nodes.len();
    }

    /// Every file in the current tree, with its path, sorted by path.
    pub(super) fn files(&self, durable: bool) -> Vec<(PathBuf, Ino)> {
        let mut out = Vec::new();
        let mut stack = vec![(PathBuf::from("/"), ROOT)];
        let mut seen = BTreeSet::new();
        while let Some((path, ino)) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            match self.nodes.get(&ino) {
                Some(Node::Dir(d)) => {
                    let entries = if durable { &d.durable } else { &d.current };
                    for (name, child) in entries {
                        stack.push((path.join(name), *child));
                    }
                }
                Some(Node::File(_)) => out.push((path, ino)),
                None => {}
            }
        }
        out.sort();
        out
    }

    /// The inode `path` names in the durable tree.
    pub(super) fn lookup_durable(&self, path: &Path) -> Option<Ino> {
        let mut ino = ROOT;
        for name in components(path) {
            ino = *self.dir(ino).ok()?.durable.get(name)?;
        }
        Some(ino)
    }
}
