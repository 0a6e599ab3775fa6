//! The KV service a replica serves to Clerks and to other groups.

use crate::batch::Batch;
use crate::op::{KvError, Reply, Request};
use crate::replica::shard_snapshots::ShardSnapshots;
use crate::rpc::{KvRpc, ReplicaStatus, ShardPage, ShardRead, ShardTransfer};
use crate::state::logclock::LogClock;
use crate::state::shard::ShardMode;
use crate::state::{KvCommand, KvState};
use paxos::node::{DiskGauge, StorageFailure};
use paxos::rsm::{Rsm, RsmError};
use paxos::PaxosError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tarpc::context;

/// How long one request may wait for its log instance or read index.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The service of one replica. Cheap to clone (one per connection).
#[derive(Clone)]
pub struct KvService {
    rsm: Rsm<KvState>,
    clock: Arc<Mutex<LogClock>>,
    /// Shard snapshots of backups being read page by page.
    snapshots: Arc<Mutex<ShardSnapshots>>,
    about: Arc<About>,
}

/// What a replica's status reports beyond its state: who it is, whether it
/// halted, and its directory's disk use.
pub struct About {
    /// The address its group's configuration names it by.
    pub addr: String,
    /// Its index in the group.
    pub me: usize,
    /// Every replica's address as the group was started (`--peers`).
    pub peers: Vec<String>,
    /// Set once a majority of its group lost their disks and it halted.
    pub halted: Arc<AtomicBool>,
    /// Its directory's disk use.
    pub disk: DiskGauge,
}

/// This process's monotonic clock, in ms since it first read it.
fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl KvService {
    /// A service over a running replicated state machine.
    pub fn new(rsm: Rsm<KvState>, about: About) -> Self {
        KvService {
            rsm,
            clock: Arc::default(),
            snapshots: Arc::default(),
            about: Arc::new(about),
        }
    }

    /// What this replica says about itself (see [`KvRpc::status`]).
    pub async fn status(&self) -> ReplicaStatus {
        let halted = self.about.halted.load(Ordering::SeqCst);
        let node = self.rsm.node().report(halted, &self.about.peers);
        let applied = self.rsm.applied();
        let (gid, config, shards, keys) = self
            .rsm
            .with_state(|st| (st.gid(), st.config().num, st.shard_modes(), st.key_count()));
        let (disk, disk_error) = match self.about.disk.read().await {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e)),
        };
        ReplicaStatus {
            gid,
            me: self.about.me,
            addr: self.about.addr.clone(),
            node,
            applied,
            config,
            shards,
            keys: keys as u64,
            disk,
            disk_error,
        }
    }

    /// True once the replica was stopped ([`crate::KvServer::shutdown`]): it answers
    /// nothing more, and another replica may listen on its address by now.
    pub fn is_stopped(&self) -> bool {
        self.rsm.node().is_stopped()
    }

    /// Refuses requests this replica should not take: followers redirect to the
    /// leader (a write would be forwarded anyway; a read must not be served here).
    fn check_leader(&self) -> Result<(), KvError> {
        let node = self.rsm.node();
        if node.is_leader() {
            Ok(())
        } else {
            Err(KvError::NotLeader {
                leader: self.leader_hint(node.leader()),
            })
        }
    }

    /// Translates a log-layer failure into what the Clerk should do.
    fn rsm_error(&self, e: RsmError) -> KvError {
        match e {
            RsmError::Timeout => KvError::Timeout,
            RsmError::Paxos(PaxosError::NotLeader { leader }) => KvError::NotLeader {
                leader: self.leader_hint(leader),
            },
            RsmError::Paxos(PaxosError::CommandTooLarge { bytes, limit }) => KvError::TooLarge {
                what: "command".into(),
                bytes,
                limit,
            },
            RsmError::Paxos(other) => match self.rsm.node().failure() {
                Some(failure) => KvError::Unavailable(failure.advice()),
                None => KvError::Unavailable(other.to_string()),
            },
        }
    }

    /// The leader's position in the group's server list as the configuration
    /// this replica applied names it — the list Clerks try in turn, which the
    /// hint indexes — from the leader's seat. They differ once a seat was
    /// removed (the list leaves it out) or added. `None` when the list does not
    /// name the leader's address (not recorded yet): the Clerk tries the next.
    fn leader_hint(&self, leader: Option<paxos::NodeId>) -> Option<usize> {
        let seat = leader?;
        let seats = self.rsm.node().seats(&self.about.peers);
        let addr = &seats.seat(seat)?.addr;
        self.rsm
            .with_state(|st| match st.config().groups.get(&st.gid()) {
                Some(servers) => servers.iter().position(|a| a == addr),
                // The group is in no configuration yet: Clerks that reach it were
                // given its founders' list, by seat.
                None => Some(seat),
            })
    }

    /// An operator's change to this group's replica set (see
    /// [`KvRpc::change_membership`]).
    pub fn change_membership(&self, change: paxos::core::Change) -> paxos::core::ChangeAnswer {
        tracing::info!(gid = self.rsm.with_state(|st| st.gid()), me = self.about.me, %change, "operator asks for a membership change");
        self.rsm.node().change_seats(change, &self.about.peers)
    }

    /// Executes a client request (see [`KvRpc::execute`]).
    pub async fn execute_request(&self, req: Request) -> Result<Reply, KvError> {
        validate(&req)?;
        if let Some(failure) = self.rsm.node().failure() {
            return self.while_failed(&req, &failure);
        }
        self.check_leader()?;
        if req.op.is_read() {
            let rsm = &self.rsm;
            rsm.read(REQUEST_TIMEOUT, |st| st.read(&req))
                .await
                .map_err(|e| self.rsm_error(e))?
        } else {
            let at_ms = self.stamp();
            let cmd = KvCommand::Op { req, at_ms };
            self.rsm
                .execute(cmd, REQUEST_TIMEOUT)
                .await
                .map_err(|e| self.rsm_error(e))?
        }
    }

    /// Executes a batch of one client's operations (see [`KvRpc::execute_batch`]):
    /// reads only, under one read index; else as one log instance.
    pub async fn run_batch(&self, batch: Batch) -> Result<Reply, KvError> {
        batch.check()?;
        if let Some(failure) = self.rsm.node().failure() {
            // The same answers as for one request: the first operation stands
            // for the batch (reads only, or a write among them).
            let (shard, op) = batch
                .ops
                .iter()
                .find(|(_, op)| !op.is_read())
                .unwrap_or(&batch.ops[0]);
            let req = Request {
                client: batch.client,
                seq: batch.seq,
                shard: *shard,
                op: op.clone(),
            };
            self.while_failed(&req, &failure)?;
            return self.rsm.with_state(|st| st.read_batch(&batch));
        }
        self.check_leader()?;
        if batch.is_read() {
            let rsm = &self.rsm;
            return rsm
                .read(REQUEST_TIMEOUT, |st| st.read_batch(&batch))
                .await
                .map_err(|e| self.rsm_error(e))?;
        }
        let at_ms = self.stamp();
        self.rsm
            .execute(KvCommand::Batch { batch, at_ms }, REQUEST_TIMEOUT)
            .await
            .map_err(|e| self.rsm_error(e))?
    }

    /// The log time stamp of a command this replica proposes now.
    fn stamp(&self) -> u64 {
        let applied_ms = self.rsm.with_state(|st| st.now_ms());
        self.clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stamp(applied_ms, monotonic_ms())
    }

    /// Answers a request while this replica's storage is failed (it does not
    /// vote, so nothing is decided through it). A write is refused at once, with
    /// the cause. A read is served from the applied state only in a one-replica
    /// group, and only once that state covers everything the log held at the
    /// replica's last start: no other replica can decide anything, a write
    /// acknowledged since was applied before its answer, and one acknowledged
    /// before sits in an instance below [`paxos::PaxosNode::restored_end`] (right
    /// after a restart it may still wait in the log to be applied again: found by
    /// the attack on this change). In a larger group another replica may lead and
    /// have moved on: the Clerk goes there.
    fn while_failed(&self, req: &Request, failure: &StorageFailure) -> Result<Reply, KvError> {
        let node = self.rsm.node();
        if req.op.is_read() {
            if node.group_size() == 1 && self.rsm.applied() >= node.restored_end() {
                return self.rsm.with_state(|st| st.read(req));
            }
            return Err(KvError::Unavailable(failure.advice()));
        }
        if failure.no_space {
            return Err(KvError::NoSpace {
                reason: failure.advice(),
                outcome_unknown: false,
            });
        }
        Err(KvError::Unavailable(failure.advice()))
    }

    /// Hands a frozen shard to its new owner (see [`KvRpc::fetch_shard`]).
    pub async fn fetch(&self, config: u64, shard: usize) -> Result<ShardTransfer, KvError> {
        self.check_leader()?;
        // Linearizable: the answer reflects every instance decided before it.
        let rsm = &self.rsm;
        rsm.read(REQUEST_TIMEOUT, |st| {
            if st.config().num < config {
                return Err(KvError::ShardMoving { shard });
            }
            match st.shard(shard) {
                Some(s) if matches!(s.mode, ShardMode::Leaving { config: c, .. } if c == config) => {
                    // The transfer's wire form keeps plain strings.
                    let data = s.data.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
                    Ok(ShardTransfer { data, dups: s.dups.clone() })
                }
                // Already deleted (the new owner confirmed) or never held here in
                // that config: the caller has what it needs or asks the wrong group.
                _ => Err(KvError::WrongGroup { shard, config: st.config().num }),
            }
        })
        .await
        .map_err(|e| self.rsm_error(e))?
    }

    /// Whether this group installed `shard` given by `config` (see
    /// [`KvRpc::shard_installed`]). A group only moves past a config once every
    /// shard it gave is installed, so a later config means yes.
    pub async fn installed(&self, config: u64, shard: usize) -> Result<bool, KvError> {
        self.check_leader()?;
        let rsm = &self.rsm;
        rsm.read(REQUEST_TIMEOUT, |st| {
            let num = st.config().num;
            num > config
                || (num == config
                    && matches!(st.shard(shard).map(|s| &s.mode), Some(ShardMode::Serving)))
        })
        .await
        .map_err(|e| self.rsm_error(e))
    }
}

impl KvService {
    /// The whole state, linearizably (see [`KvRpc::snapshot`]).
    pub async fn group_snapshot(&self) -> Result<crate::rpc::GroupSnapshot, KvError> {
        self.check_leader()?;
        let rsm = &self.rsm;
        rsm.snapshot(REQUEST_TIMEOUT, |st, applied, membership| {
            st.snapshot(applied, membership)
        })
        .await
        .map_err(|e| self.rsm_error(e))
    }
}

impl KvService {
    /// A page of a shard's snapshot for a backup (see [`KvRpc::read_shard`]).
    /// The first page copies the shard inside a linearizable read, under the
    /// state lock as a shard handoff does; the next ones come from that copy.
    pub async fn read_shard(&self, read: ShardRead) -> Result<ShardPage, KvError> {
        let now = Instant::now();
        match read {
            ShardRead::Start { config, shard } => {
                self.check_leader()?;
                let rsm = &self.rsm;
                let data = rsm
                    .read(REQUEST_TIMEOUT, |st| st.shard_at(config, shard).cloned())
                    .await
                    .map_err(|e| self.rsm_error(e))??;
                let page = self.snapshots().start(data, now);
                tracing::info!(
                    config,
                    shard,
                    keys = page.keys,
                    snapshot = page.snapshot,
                    "backup read a shard"
                );
                Ok(page)
            }
            ShardRead::Next { snapshot, after } => self.snapshots().next(snapshot, &after, now),
        }
    }

    fn snapshots(&self) -> std::sync::MutexGuard<'_, ShardSnapshots> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Rejects requests that can never succeed, before anything is proposed: an
/// empty key, or a key or value above the store's limits (a replica never
/// proposes a command its log could not hold).
fn validate(req: &Request) -> Result<(), KvError> {
    if req.op.key().is_some_and(str::is_empty) {
        return Err(KvError::Invalid("key cannot be empty".into()));
    }
    req.op.check_size()
}

impl KvRpc for KvService {
    async fn execute(self, _: context::Context, req: Request) -> Result<Reply, KvError> {
        self.execute_request(req).await
    }

    async fn execute_batch(self, _: context::Context, batch: Batch) -> Result<Reply, KvError> {
        self.run_batch(batch).await
    }

    async fn fetch_shard(
        self,
        _: context::Context,
        config: u64,
        shard: usize,
    ) -> Result<ShardTransfer, KvError> {
        self.fetch(config, shard).await
    }

    async fn shard_installed(
        self,
        _: context::Context,
        config: u64,
        shard: usize,
    ) -> Result<bool, KvError> {
        self.installed(config, shard).await
    }

    async fn snapshot(self, _: context::Context) -> Result<crate::rpc::GroupSnapshot, KvError> {
        self.group_snapshot().await
    }

    async fn status(self, _: context::Context) -> Result<ReplicaStatus, KvError> {
        Ok(KvService::status(&self).await)
    }

    async fn read_shard(self, _: context::Context, read: ShardRead) -> Result<ShardPage, KvError> {
        KvService::read_shard(&self, read).await
    }

    async fn change_membership(
        self,
        _: context::Context,
        change: paxos::core::Change,
    ) -> paxos::core::ChangeAnswer {
        KvService::change_membership(&self, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{Op, MAX_KEY_BYTES, MAX_VALUE_BYTES};

    fn put(key: &str, value: String) -> Request {
        Request {
            client: 1,
            seq: 1,
            shard: 0,
            op: Op::Put {
                key: key.into(),
                value,
            },
        }
    }

    /// Issue #18, B2: a 100 MiB value was proposed, made a log record above the
    /// frame limit and stopped the replicas' storage. It is refused before
    /// `execute_request` proposes anything (`validate` is its first step).
    #[test]
    fn a_value_or_key_over_the_limit_is_refused_before_proposing() {
        assert_eq!(validate(&put("k", "v".repeat(MAX_VALUE_BYTES))), Ok(()));
        assert_eq!(
            validate(&put("k", "v".repeat(MAX_VALUE_BYTES + 1))),
            Err(KvError::TooLarge {
                what: "value".into(),
                bytes: MAX_VALUE_BYTES + 1,
                limit: MAX_VALUE_BYTES
            })
        );
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(
            validate(&put(&long_key, "v".into())),
            Err(KvError::TooLarge { .. })
        ));
        assert!(matches!(
            validate(&put("", "v".into())),
            Err(KvError::Invalid(_))
        ));
        let e = validate(&put("k", "v".repeat(MAX_VALUE_BYTES + 1))).unwrap_err();
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            format!(
                "value of {} bytes is over the {MAX_VALUE_BYTES}-byte limit",
                MAX_VALUE_BYTES + 1
            )
        );
    }
}
