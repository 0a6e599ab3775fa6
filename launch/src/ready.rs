//! Waiting for a freshly started cluster to serve: first the shardmasters, then
//! each group (one linearizable read of a key in a shard it owns), with progress
//! on stdout. A child that exits meanwhile ends the wait with its log's path.

use crate::children::Children;
use crate::layout::Layout;
use crate::say;
use shardmaster::{shard_of, Config, ConfigNum};
use std::time::{Duration, Instant};

/// Deadline of one probe.
const PROBE: Duration = Duration::from_secs(2);
/// How often a long wait says it is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Fails if a child has exited, naming it and its log.
fn check_children(children: &mut Children) -> anyhow::Result<()> {
    if let Some((r, status)) = children.newly_exited().into_iter().next() {
        anyhow::bail!(
            "{} (pid {}) exited ({status}) before the cluster was ready; see {}",
            r.spec.name,
            r.pid,
            r.log.display()
        );
    }
    Ok(())
}

/// Progress of one wait: announced at the start, then every few seconds.
struct Progress {
    what: String,
    start: Instant,
    next_note: Instant,
}

impl Progress {
    fn new(what: String) -> Progress {
        say(&format!("waiting for {what}..."));
        let start = Instant::now();
        Progress {
            what,
            start,
            next_note: start + PROGRESS_EVERY,
        }
    }

    /// Between two attempts: fails if a child exited, notes progress, pauses.
    async fn pause(&mut self, children: &mut Children) -> anyhow::Result<()> {
        check_children(children)?;
        if Instant::now() >= self.next_note {
            say(&format!(
                "  still waiting for {} ({} s)",
                self.what,
                self.start.elapsed().as_secs()
            ));
            self.next_note += PROGRESS_EVERY;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }
}

/// A key that hashes to `shard` (among `nshards`).
fn key_in_shard(shard: usize, nshards: usize) -> String {
    (0u64..)
        .map(|i| format!("diskv:ready:{i}"))
        .find(|k| shard_of(k.as_bytes(), nshards) == shard)
        .unwrap_or_default()
}

/// Waits until the shardmasters answer and every group serves one of its shards.
pub async fn wait(layout: &Layout, children: &mut Children) -> anyhow::Result<()> {
    let masters = shardmaster::Clerk::new(layout.masters.clone());
    let mut progress = Progress::new(format!(
        "the shardmasters ({} replicas)",
        layout.masters.len()
    ));
    while query(&masters).await.is_none() {
        progress.pause(children).await?;
    }
    let mut clerk = diskv::Clerk::new(layout.masters.clone()).await;
    for g in &layout.groups {
        let mut progress =
            Progress::new(format!("group {} ({} replicas)", g.gid, g.replicas.len()));
        let shards = loop {
            if let Some(shards) = group_serves(&masters, &mut clerk, g.gid).await {
                break shards;
            }
            progress.pause(children).await?;
        };
        let list: Vec<String> = shards.iter().map(usize::to_string).collect();
        say(&format!(
            "group {} ready (shards {})",
            g.gid,
            list.join(",")
        ));
    }
    Ok(())
}

/// The latest configuration, if a shardmaster answers in time.
async fn query(masters: &shardmaster::Clerk) -> Option<Config> {
    tokio::time::timeout(PROBE, masters.query(ConfigNum::Latest))
        .await
        .ok()?
        .ok()
}

/// The shards of `gid` once it has joined and serves one of them (a group without
/// shards, when there are more groups than shards, only needs to have joined).
async fn group_serves(
    masters: &shardmaster::Clerk,
    clerk: &mut diskv::Clerk,
    gid: u64,
) -> Option<Vec<usize>> {
    let config = query(masters).await?;
    config.servers(gid)?;
    let shards = config.shards_of(gid);
    if let Some(&shard) = shards.first() {
        let key = key_in_shard(shard, config.shards.len());
        tokio::time::timeout(PROBE, clerk.get(&key))
            .await
            .ok()?
            .ok()?;
    }
    Some(shards)
}
