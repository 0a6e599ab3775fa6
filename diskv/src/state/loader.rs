//! Reading a checkpoint's key files at start-up (and removing the temp files of
//! an interrupted checkpoint), many at once.
//!
//! The durable state of a replica is one file per key, and a replica reads
//! them all when it starts. With a cold page cache every read waits for the
//! disk: one read at a time, a start costs the disk's latency times the key
//! count (15–19 s for 200,000 keys on the virtual disk of docs/BENCHMARKS.md).
//! SSDs and virtual disks serve many requests at once, so the files are read by
//! [`READERS`] threads, each keeping one read in flight; the order in which the
//! files come back does not matter, since each holds its own key.

use crate::error::StateError;
use crate::state::keyfile::KeyFile;
use paxos::fs::FileSystem;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Threads reading key files at once: enough to keep an SSD's or a virtual
/// disk's queue busy (32 read 200,000 cold files in 3.2 s here, 96 in 2.3 s:
/// docs/BENCHMARKS.md, "Restarts"); they live only while a replica starts.
pub(crate) const READERS: usize = 96;

/// Below this many files one thread reads them all: starting threads costs
/// more than it saves, and the simulator's small states stay on one thread.
const PARALLEL_FROM: usize = 1024;

/// Files a reader claims at a time.
const CLAIM: usize = 16;

/// A key file to read: (its shard, its path).
pub(crate) type KeyFilePath = (usize, PathBuf);

/// Reads and decodes every file of `files`, returning (shard, key file) pairs in
/// no particular order. A file that cannot be read or decoded stops the load:
/// the error names it (if several are bad, the first in `files` order among
/// those read).
pub(crate) fn read_all(
    fs: &dyn FileSystem,
    files: &[KeyFilePath],
) -> Result<Vec<(usize, KeyFile)>, StateError> {
    for_each(files, |f| read_one(fs, f))
}

/// Removes every file of `paths` (one already gone is fine): the temp files of
/// a checkpoint that a crash interrupted, tens of thousands after a crash during
/// a large one, each unlink waiting for the disk.
pub(crate) fn remove_all(fs: &dyn FileSystem, paths: &[PathBuf]) -> Result<(), StateError> {
    for_each(paths, |p| match fs.remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::Io {
            path: p.clone(),
            source: e,
        }),
    })?;
    Ok(())
}

/// `f` over every item, on up to [`READERS`] threads when there are many (the
/// files of a checkpoint's step 4 too: renames and deletions); the results in
/// no particular order. The first error (in `items` order, among
/// the items done) stops the work and is returned.
pub(crate) fn for_each<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, StateError> + Sync,
) -> Result<Vec<R>, StateError> {
    if items.len() < PARALLEL_FROM {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<(usize, StateError)>> = Mutex::new(None);
    let threads = READERS.min(items.len() / CLAIM).max(1);
    let parts: Vec<Vec<R>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::with_capacity(items.len() / threads + CLAIM);
                    while !failed.load(Ordering::Relaxed) {
                        let start = next.fetch_add(CLAIM, Ordering::Relaxed);
                        if start >= items.len() {
                            break;
                        }
                        let end = (start + CLAIM).min(items.len());
                        for (i, item) in items[start..end].iter().enumerate() {
                            match f(item) {
                                Ok(r) => done.push(r),
                                Err(e) => {
                                    failed.store(true, Ordering::Relaxed);
                                    let mut first =
                                        first_error.lock().unwrap_or_else(|p| p.into_inner());
                                    if first.as_ref().is_none_or(|(at, _)| start + i < *at) {
                                        *first = Some((start + i, e));
                                    }
                                    break;
                                }
                            }
                        }
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if let Some((_, e)) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let done: usize = parts.iter().map(Vec::len).sum();
    if done != items.len() {
        // A thread panicked (join gave nothing): never go on with part of it.
        return Err(StateError::Mismatch(format!(
            "did {done} of {} key file operations; a worker thread failed",
            items.len()
        )));
    }
    Ok(parts.into_iter().flatten().collect())
}

/// Reads and decodes one key file.
fn read_one(
    fs: &dyn FileSystem,
    (shard, path): &KeyFilePath,
) -> Result<(usize, KeyFile), StateError> {
    let bytes = fs.read(path).map_err(|e| StateError::Io {
        path: path.clone(),
        source: e,
    })?;
    let kf = KeyFile::decode(&bytes).map_err(|reason| StateError::Corrupt {
        path: path.clone(),
        reason,
    })?;
    Ok((*shard, kf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::fs::SimFs;
    use std::path::Path;

    fn disk_with(keys: usize) -> (SimFs, Vec<KeyFilePath>) {
        let fs = SimFs::new();
        let mut files = Vec::new();
        for i in 0..keys {
            let shard = i % 3;
            let dir = PathBuf::from(format!("/kv/shard-{shard}"));
            fs.create_dir_all(&dir).unwrap();
            let path = dir.join(format!("k{i}"));
            let bytes = KeyFile {
                key: format!("k{i}"),
                value: format!("v{i}"),
            }
            .encode();
            fs.write(&path, &bytes).unwrap();
            files.push((shard, path));
        }
        (fs, files)
    }

    #[test]
    fn many_files_are_read_by_many_threads_and_each_arrives_once() {
        let (fs, files) = disk_with(PARALLEL_FROM * 3 + 7);
        let mut got = read_all(&fs, &files).unwrap();
        assert_eq!(got.len(), files.len());
        got.sort_by_key(|(_, kf)| kf.key[1..].parse::<usize>().unwrap());
        for (i, (shard, kf)) in got.iter().enumerate() {
            assert_eq!(
                (*shard, kf.key.as_str(), kf.value.as_str()),
                (i % 3, &*format!("k{i}"), &*format!("v{i}"))
            );
        }
    }

    #[test]
    fn a_corrupt_file_among_many_stops_the_load_and_is_named() {
        for keys in [10, PARALLEL_FROM * 2] {
            let (fs, files) = disk_with(keys);
            let bad = &files[keys / 2].1;
            let mut bytes = fs.read(bad).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            fs.write(bad, &bytes).unwrap();
            match read_all(&fs, &files) {
                Err(StateError::Corrupt { path, .. }) => assert_eq!(&path, bad),
                other => panic!("{keys} files: expected the corrupt file named, got {other:?}"),
            }
        }
    }

    #[test]
    fn many_files_are_removed_and_one_already_gone_is_fine() {
        let (fs, files) = disk_with(PARALLEL_FROM + 5);
        let mut paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
        paths.push(PathBuf::from("/kv/shard-0/never-there"));
        remove_all(&fs, &paths).unwrap();
        for p in &paths {
            assert!(!fs.exists(p), "{} is still there", p.display());
        }
    }

    #[test]
    fn a_missing_file_among_many_is_an_io_error_naming_it() {
        let (fs, mut files) = disk_with(PARALLEL_FROM + 1);
        files.push((0, Path::new("/kv/shard-0/gone").to_path_buf()));
        match read_all(&fs, &files) {
            Err(StateError::Io { path, .. }) => assert_eq!(path, Path::new("/kv/shard-0/gone")),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }
}
