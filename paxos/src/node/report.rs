//! What a running replica says about itself to an operator (`diskv admin
//! status`, the dashboard): its role, its log positions, its last error and its
//! disk. Both services (KV groups and the shardmaster) answer with it.

use super::PaxosNode;
use crate::membership::Seat;
use crate::types::{NodeId, Slot};
use futures::future::{BoxFuture, FutureExt, Shared};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A replica's part in its group, as an operator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Leads the group's log.
    Leader,
    /// Votes and follows a leader (or waits for one).
    Follower,
    /// Lost its disk and is fetching the group's state, or has its state but its
    /// vote does not count yet: it takes part only in new instances.
    Recovering,
    /// Its storage failed: it does not vote (see [`NodeReport::error`]).
    Failed,
    /// A majority of its group lost their disks: it halted and never restarts
    /// empty (DESIGN.md, the disk-loss rule).
    Halted,
    /// Holds a learner's seat (added by an operator, not promoted yet): it
    /// receives every decision and serves nothing, and its vote does not count.
    Learner,
    /// Its seat was removed from the group: it takes no part any more and can
    /// be stopped.
    Removed,
}

impl NodeRole {
    /// The lowercase name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            NodeRole::Leader => "leader",
            NodeRole::Follower => "follower",
            NodeRole::Recovering => "recovering",
            NodeRole::Failed => "failed",
            NodeRole::Halted => "halted",
            NodeRole::Learner => "learner",
            NodeRole::Removed => "removed",
        }
    }

    /// True for the roles of a replica that votes and serves.
    pub fn votes(self) -> bool {
        matches!(self, NodeRole::Leader | NodeRole::Follower)
    }

    /// True for the roles of a replica doing what its seat asks of it: voting
    /// and serving, or (a learner) keeping up without a vote.
    pub fn is_healthy(self) -> bool {
        self.votes() || self == NodeRole::Learner
    }
}

/// A Paxos replica's view of itself, read under one lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Its role.
    pub role: NodeRole,
    /// The leader it knows of (an index into the group's replicas).
    pub leader: Option<NodeId>,
    /// How many replicas the group has.
    pub group_size: usize,
    /// Every instance below this is decided here.
    pub commit_index: Slot,
    /// The highest instance it knows of.
    pub max: Slot,
    /// Instances below this are forgotten (compacted).
    pub min: Slot,
    /// The storage failure that stopped it, with what to do, while it lasts.
    pub error: Option<String>,
    /// The group's seats as it knows them (voters, learners, removed ones).
    pub seats: super::GroupSeats,
}

impl PaxosNode {
    /// What this replica says about itself. `halted` is the application's own
    /// verdict (a majority of the group lost their disks), which outranks the
    /// rest; `founders` are the addresses the group was started with (`--peers`).
    pub fn report(&self, halted: bool, founders: &[String]) -> NodeReport {
        let failure = self.failure();
        let seats = self.seats(founders);
        let core = self.core();
        let own = core.membership().latest().get(core.id());
        let holds =
            |m: &crate::core::Member| !m.vacant && Some(m.incarnation) == core.incarnation();
        let role = if halted {
            NodeRole::Halted
        } else if failure.is_some() {
            NodeRole::Failed
        } else if own.is_some_and(|m| m.seat == Seat::Removed) {
            NodeRole::Removed
        } else if own.is_some_and(|m| m.seat == Seat::Learner && holds(m)) {
            NodeRole::Learner
        } else if !core.votes_now() {
            NodeRole::Recovering
        } else if core.is_leader() {
            NodeRole::Leader
        } else {
            NodeRole::Follower
        };
        NodeReport {
            role,
            leader: core.leader(),
            group_size: self.group_size(),
            commit_index: core.commit_index(),
            max: core.max(),
            min: core.min(),
            error: failure.map(|f| f.advice()),
            seats,
        }
    }
}

/// How much disk a replica's directory takes, and how much its file system has left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUse {
    /// Bytes allocated to the files under the directory (blocks, as `du` counts).
    pub used_bytes: u64,
    /// Bytes an unprivileged writer may still use on its file system.
    pub free_bytes: u64,
    /// Bytes of that file system in all.
    pub total_bytes: u64,
}

impl DiskUse {
    /// Measures `dir`: walks every file under it (a replica with many keys has
    /// many files, so [`DiskGauge`] keeps the answer for a while).
    pub fn measure(dir: &Path) -> std::io::Result<DiskUse> {
        let (free_bytes, total_bytes) = file_system_space(dir)?;
        Ok(DiskUse {
            used_bytes: allocated_under(dir)?,
            free_bytes,
            total_bytes,
        })
    }
}

/// Bytes allocated to `dir` and everything under it; files that vanish while it
/// walks (a checkpoint renaming, a segment deleted) are skipped.
fn allocated_under(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && folder != dir => continue,
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                folders.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Free (for an unprivileged writer) and total bytes of the file system holding `dir`.
fn file_system_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `st`
    // is a properly sized, writable statvfs the call fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = st.f_frsize as u64;
    Ok((
        (st.f_bavail as u64).saturating_mul(block),
        (st.f_blocks as u64).saturating_mul(block),
    ))
}

/// How long a replica reports a measured disk use before it walks its directory
/// again.
pub const DISK_FIGURE_MAX_AGE: Duration = Duration::from_secs(10);

/// A replica directory's [`DiskUse`], measured at most once per `max_age` (a
/// status poll every second must not walk 200,000 key files every second).
///
/// One walk at a time, on a blocking thread, and the walk stores its own figure:
/// a caller that gives up (a status RPC aborted at its deadline) does not lose
/// it, and the next poll does not start another walk. Once a figure exists, a
/// poll never waits for a walk: it gets the last figure (at most one walk older
/// than `max_age`) while a fresh one is measured behind it.
#[derive(Debug)]
pub struct DiskGauge {
    dir: PathBuf,
    max_age: Duration,
    state: Arc<Mutex<GaugeState>>,
}

type Figure = Result<DiskUse, String>;
type Walk = Shared<BoxFuture<'static, Figure>>;

#[derive(Default)]
struct GaugeState {
    last: Option<(Instant, Figure)>,
    /// The walk under way, if any.
    walking: Option<Walk>,
}

impl std::fmt::Debug for GaugeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaugeState")
            .field("last", &self.last)
            .field("walking", &self.walking.is_some())
            .finish()
    }
}

impl DiskGauge {
    /// A gauge of `dir`, re-measured when its figure is older than `max_age`.
    pub fn new(dir: impl Into<PathBuf>, max_age: Duration) -> Self {
        DiskGauge {
            dir: dir.into(),
            max_age,
            state: Arc::default(),
        }
    }

    /// The directory's use: the last figure, measured anew (on a blocking thread)
    /// when it is older than `max_age`; only the very first call waits for a
    /// walk. An error says why it could not be measured.
    pub async fn read(&self) -> Figure {
        let walk = {
            let mut st = lock(&self.state);
            if let Some((at, figure)) = &st.last {
                if at.elapsed() < self.max_age {
                    return figure.clone();
                }
            }
            let walk = match &st.walking {
                Some(walk) => walk.clone(),
                None => {
                    let walk = self.walk();
                    st.walking = Some(walk.clone());
                    walk
                }
            };
            if let Some((_, figure)) = &st.last {
                return figure.clone();
            }
            walk
        };
        walk.await
    }

    /// Starts a walk that stores its figure itself (called under the lock).
    fn walk(&self) -> Walk {
        /// Ends the walk in the state even if measuring panics.
        struct Done(Arc<Mutex<GaugeState>>, Option<Figure>);
        impl Drop for Done {
            fn drop(&mut self) {
                let mut st = lock(&self.0);
                st.walking = None;
                if let Some(figure) = self.1.take() {
                    st.last = Some((Instant::now(), figure));
                }
            }
        }
        let dir = self.dir.clone();
        let state = self.state.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut done = Done(state, None);
            let figure = DiskUse::measure(&dir)
                .map_err(|e| format!("cannot measure {}: {e}", dir.display()));
            done.1 = Some(figure.clone());
            figure
        });
        task.map(|joined| joined.unwrap_or_else(|e| Err(format!("disk measurement failed: {e}"))))
            .boxed()
            .shared()
    }
}

fn lock(state: &Mutex<GaugeState>) -> std::sync::MutexGuard<'_, GaugeState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_use_counts_the_files_under_the_directory_and_sees_its_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let empty = DiskUse::measure(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/a"), vec![7u8; 64 * 1024]).unwrap();
        let after = DiskUse::measure(dir.path()).unwrap();
        assert!(
            after.used_bytes >= empty.used_bytes + 64 * 1024,
            "{empty:?} then {after:?}"
        );
        assert!(after.total_bytes > 0 && after.free_bytes <= after.total_bytes);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_zero() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DiskUse::measure(&dir.path().join("gone")).is_err());
    }

    #[tokio::test]
    async fn the_gauge_keeps_its_figure_until_it_is_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let gauge = DiskGauge::new(dir.path(), Duration::from_secs(3600));
        let first = gauge.read().await.unwrap();
        std::fs::write(dir.path().join("big"), vec![1u8; 256 * 1024]).unwrap();
        assert_eq!(gauge.read().await.unwrap(), first, "kept within max_age");
        let fresh = DiskGauge::new(dir.path(), Duration::ZERO);
        assert!(fresh.read().await.unwrap().used_bytes >= first.used_bytes + 256 * 1024);
    }

    /// Found by the attack on `diskv admin status`: a status RPC whose deadline
    /// passes while the gauge walks a large directory is dropped (tarpc aborts a
    /// request at its deadline), and the walk's figure was stored only by the
    /// caller that awaited it. So once a walk took longer than the survey's
    /// deadline, no figure was ever kept: every poll started another walk (they
    /// piled up on the blocking pool) and timed out, and the replica — healthy —
    /// showed as down (a whole group of large replicas: unavailable, exit 3).
    /// A walk must keep its figure whoever waited for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attack_a_figure_measured_for_a_caller_that_gave_up_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        for d in 0..20 {
            let sub = dir.path().join(format!("shard-{d}"));
            std::fs::create_dir(&sub).unwrap();
            for f in 0..1000 {
                std::fs::write(sub.join(format!("key-{f}")), b"v").unwrap();
            }
        }
        let gauge = DiskGauge::new(dir.path(), Duration::from_secs(3600));
        // A poll with a deadline shorter than one walk of 20,000 files.
        let poll = || tokio::time::timeout(Duration::from_millis(1), gauge.read());
        assert!(
            poll().await.is_err(),
            "the first walk takes longer than 1 ms"
        );
        let mut answered = false;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if poll().await.is_ok() {
                answered = true;
                break;
            }
        }
        assert!(
            answered,
            "every poll walked the directory again and gave up: the figure is never kept"
        );
    }
}
