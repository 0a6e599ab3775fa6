//! Metrics of a KV replica running in the same process as the front door: its
//! Paxos role and log positions, the persister's fsyncs, and the shards it holds.
//! (The Paxos ballot is not exposed by [`paxos::PaxosNode`], so it is not reported.)

use super::metrics::{header, single};
use crate::replica::server::KvServer;
use crate::state::shard::ShardMode;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

/// Appends the metrics of `server` in Prometheus text form to `out`.
pub fn render(server: &KvServer, out: &mut String) {
    let node = server.node();
    let stats = node.stats();
    single(
        out,
        "diskv_paxos_is_leader",
        "gauge",
        "1 if this replica leads its group's Paxos log.",
        u8::from(node.is_leader()),
    );
    single(
        out,
        "diskv_paxos_leader",
        "gauge",
        "Index of the leader this replica knows of (-1: none).",
        node.leader().map_or(-1, |l| l as i64),
    );
    single(
        out,
        "diskv_paxos_commit_index",
        "gauge",
        "Every log instance below this is decided here.",
        node.commit_index(),
    );
    single(
        out,
        "diskv_paxos_max_instance",
        "gauge",
        "Highest log instance this replica knows of.",
        node.max(),
    );
    single(
        out,
        "diskv_paxos_min_instance",
        "gauge",
        "Instances below this are forgotten (compacted).",
        node.min(),
    );
    single(
        out,
        "diskv_paxos_failed",
        "gauge",
        "1 if storage failed and this replica stopped voting.",
        u8::from(node.has_failed()),
    );
    single(
        out,
        "diskv_storage_no_space",
        "gauge",
        "1 while the replica's disk is full: writes are refused (507) until space is freed.",
        u8::from(node.failure().is_some_and(|f| f.no_space)),
    );
    single(
        out,
        "diskv_rsm_applied_index",
        "gauge",
        "Every log instance below this is applied to the state machine.",
        server.rsm().applied(),
    );
    single(
        out,
        "diskv_paxos_fsyncs_total",
        "counter",
        "fdatasync calls of the Paxos log.",
        stats.syncs.load(Ordering::Relaxed),
    );
    single(
        out,
        "diskv_paxos_records_persisted_total",
        "counter",
        "Records made durable in the Paxos log.",
        stats.records.load(Ordering::Relaxed),
    );
    single(
        out,
        "diskv_paxos_fsync_seconds_total",
        "counter",
        "Time spent appending to and syncing the Paxos log (divide by diskv_paxos_fsyncs_total for the mean).",
        stats.sync_nanos.load(Ordering::Relaxed) as f64 / 1e9,
    );
    let (gid, config, keys, modes) = server
        .rsm()
        .with_state(|s| (s.gid(), s.config().num, s.key_count(), s.shard_modes()));
    single(
        out,
        "diskv_config_number",
        "gauge",
        "The shard configuration this group has applied.",
        config,
    );
    single(
        out,
        "diskv_keys",
        "gauge",
        "Keys held in the shards this group serves.",
        keys,
    );
    header(
        out,
        "diskv_shard_held",
        "gauge",
        "Shards this group holds, by mode (serving, pulling, leaving).",
    );
    for (shard, mode) in modes {
        let mode = match mode {
            ShardMode::Serving => "serving",
            ShardMode::Pulling { .. } => "pulling",
            ShardMode::Leaving { .. } => "leaving",
        };
        let _ = writeln!(
            out,
            "diskv_shard_held{{gid=\"{gid}\",shard=\"{shard}\",mode=\"{mode}\"}} 1"
        );
    }
}
