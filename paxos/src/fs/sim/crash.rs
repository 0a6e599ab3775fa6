//! What a power loss leaves of a simulated disk.
//!
//! - **Directories.** Per directory, a prefix (in order) of the entry operations
//!   not yet synced survives: creations, renames, removals. A rename between two
//!   directories survives in both or in neither.
//! - **Files.** Bytes appended since the last sync survive as a prefix of any
//!   length (none, some, all). A file whose synced bytes were rewritten since
//!   (whole-file write, truncation) comes back either as its synced bytes or as a
//!   prefix of its new ones. With [`SimOptions::torn_chance`], the surviving bytes
//!   of a changed file are followed by a torn tail: zeros (space allocated, data
//!   never written), or garbage up to the end of the page (a partially written last
//!   page). With [`SimOptions::reorder_pages`], unsynced appended pages survive
//!   independently instead of as a prefix, holes reading as zeros.
//! - **Processes.** Every handle and lock from before the crash is dead.
//!
//! Only files still reachable through the surviving entries are kept.

use super::disk::Disk;
use super::inode::{DirOp, FileNode, Ino, Node, ROOT};
use super::SimOptions;
use rand::{Rng, RngCore};
use std::collections::{BTreeMap, BTreeSet};

/// Bytes in a page: the unit of a torn tail and of reordering.
pub(super) const PAGE: usize = 4096;

/// How a crash decides what survives.
pub(super) enum Fate<'a> {
    /// Seeded random choices.
    Random(&'a mut dyn RngCore),
    /// Nothing that was not synced survives.
    LoseUnsynced,
}

impl Fate<'_> {
    /// A number in `0..=n` (0: nothing unsynced survives).
    fn upto(&mut self, n: usize) -> usize {
        match self {
            Fate::Random(rng) => rng.gen_range(0..=n),
            Fate::LoseUnsynced => 0,
        }
    }

    /// True with probability `p` (never when losing everything unsynced).
    fn chance(&mut self, p: f64) -> bool {
        match self {
            Fate::Random(rng) => rng.gen_bool(p.clamp(0.0, 1.0)),
            Fate::LoseUnsynced => false,
        }
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        if let Fate::Random(rng) = self {
            rng.fill_bytes(bytes);
        }
    }
}

/// What one crash did, for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced directory operations that survived.
    pub dir_ops_kept: usize,
    /// Unsynced directory operations that were lost.
    pub dir_ops_lost: usize,
    /// Files that had unsynced changes.
    pub files_changed: usize,
    /// Unsynced bytes lost, over all files.
    pub bytes_lost: u64,
    /// Files left with a torn tail.
    pub torn_files: usize,
}

impl Disk {
    /// Crashes the machine: see the module docs.
    pub(super) fn crash(&mut self, fate: &mut Fate<'_>) -> CrashReport {
        let mut report = CrashReport::default();
        self.generation += 1;
        self.open.clear();
        self.locked.clear();
        let keep = self.surviving_prefixes(fate);
        for (ino, node) in self.nodes.iter_mut() {
            if let Node::Dir(d) = node {
                let n = keep.get(ino).copied().unwrap_or(0);
                report.dir_ops_kept += n;
                report.dir_ops_lost += d.pending.len() - n;
                d.commit(n);
                d.pending.clear();
                d.current.clone_from(&d.durable);
            }
        }
        self.keep_durable_tree();
        let options = self.options;
        for node in self.nodes.values_mut() {
            let Node::File(file) = node else { continue };
            if file.is_synced() {
                continue;
            }
            report.files_changed += 1;
            let (bytes, torn) = survivor(file, fate, &options);
            let kept_new = common_prefix(&bytes, &file.current);
            report.bytes_lost += (file.current.len() - kept_new.min(file.current.len())) as u64;
            report.torn_files += usize::from(torn);
            file.settle(bytes);
        }
        self.recount();
        report
    }

    /// How many pending operations survive in each directory: a random prefix
    /// each, shortened until every rename survives in both of its directories or in
    /// neither.
    fn surviving_prefixes(&self, fate: &mut Fate<'_>) -> BTreeMap<Ino, usize> {
        let dirs: Vec<(Ino, usize)> = self
            .nodes
            .iter()
            .filter_map(|(ino, n)| match n {
                Node::Dir(d) if !d.pending.is_empty() => Some((*ino, d.pending.len())),
                _ => None,
            })
            .collect();
        let mut keep: BTreeMap<Ino, usize> = dirs
            .iter()
            .map(|&(ino, len)| (ino, fate.upto(len)))
            .collect();
        // Both halves of every rename: (directory, index) of each.
        let mut halves: BTreeMap<u64, Vec<(Ino, usize)>> = BTreeMap::new();
        for &(ino, _) in &dirs {
            if let Ok(d) = self.dir(ino) {
                for (i, op) in d.pending.iter().enumerate() {
                    if let Some(id) = move_id(op) {
                        halves.entry(id).or_default().push((ino, i));
                    }
                }
            }
        }
        loop {
            let mut changed = false;
            for pair in halves.values() {
                let survives = |&(dir, i): &(Ino, usize)| keep.get(&dir).is_some_and(|&k| i < k);
                if pair.iter().any(survives) && !pair.iter().all(survives) {
                    for &(dir, i) in pair {
                        if let Some(k) = keep.get_mut(&dir) {
                            *k = (*k).min(i);
                        }
                    }
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        keep
    }

    /// Drops every inode the durable tree no longer reaches.
    fn keep_durable_tree(&mut self) {
        let mut live = BTreeSet::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if !live.insert(ino) {
                continue;
            }
            if let Some(Node::Dir(d)) = self.nodes.get(&ino) {
                stack.extend(d.durable.values());
            }
        }
        self.nodes.retain(|ino, _| live.contains(ino));
    }
}

/// The rename an operation is half of, if any.
fn move_id(op: &DirOp) -> Option<u64> {
    match op {
        DirOp::MoveOut { id, .. } | DirOp::MoveIn { id, .. } => Some(*id),
        _ => None,
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// What survives of a file with unsynced changes, and whether its tail is torn.
fn survivor(file: &FileNode, fate: &mut Fate<'_>, options: &SimOptions) -> (Vec<u8>, bool) {
    if matches!(fate, Fate::LoseUnsynced) {
        return (file.durable.clone(), false);
    }
    let start = file.kept;
    if file.durable.len() > start && fate.chance(0.5) {
        // The rewrite never reached the disk.
        return (file.durable.clone(), false);
    }
    if options.reorder_pages {
        return (reordered(file, fate), false);
    }
    let mut bytes = file.current[..start + fate.upto(file.current.len() - start)].to_vec();
    let torn = fate.chance(options.torn_chance);
    if torn {
        tear(&mut bytes, fate);
    }
    (bytes, torn)
}

/// Extends `bytes` with a torn tail: zeros, or garbage to the end of its page.
fn tear(bytes: &mut Vec<u8>, fate: &mut Fate<'_>) {
    let end = bytes.len();
    if fate.chance(0.5) {
        bytes.resize(end + 1 + fate.upto(PAGE - 1), 0);
    } else {
        let page_end = (end / PAGE + 1) * PAGE;
        bytes.resize(page_end, 0);
        fate.fill(&mut bytes[end..]);
    }
}

/// The synced bytes, then each unsynced page kept or not on its own (holes read as
/// zeros); the file ends with the last page kept.
fn reordered(file: &FileNode, fate: &mut Fate<'_>) -> Vec<u8> {
    let start = file.kept;
    let current = &file.current;
    let mut pages = Vec::new();
    let mut at = start;
    while at < current.len() {
        let end = ((at / PAGE + 1) * PAGE).min(current.len());
        pages.push((at, end, fate.chance(0.5)));
        at = end;
    }
    let len = pages
        .iter()
        .filter(|p| p.2)
        .map(|p| p.1)
        .max()
        .unwrap_or(start);
    let mut bytes = vec![0; len];
    bytes[..start].copy_from_slice(&current[..start]);
    for &(from, to, kept) in &pages {
        if kept {
            bytes[from..to].copy_from_slice(&current[from..to]);
        }
    }
    bytes
}
