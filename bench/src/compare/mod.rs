//! `diskv bench compare` (feature `compare`): diskv side by side with etcd and
//! Redis, in the same process, on the same machine, in alternating runs.
//!
//! For each [`plan::Pair`] both systems are started (a spawned diskv cluster or
//! `diskv serve` node, and the peer from [`super::peers`]), then every round runs
//! each of the pair's [`plan::STEPS`] on both sides with the same [`RunSpec`] (same
//! workload, records, value size and client count, through the same driver),
//! alternating which side goes first from one step and round to the next. Each
//! store is loaded once, by its first run. [`verdict`] turns the runs into the
//! [`plan::TARGETS`]' factors (medians over rounds) and [`render`] into markdown.

pub mod plan;
pub mod render;
pub mod verdict;

use super::diskv_store::DiskvStore;
use super::error::BenchError;
use super::peers::etcd::{EtcdCluster, EtcdSecurity};
use super::peers::redis::RedisServer;
use super::target::{SpawnShape, Spawned, Transport};
use super::{run_workload, RunSpec, Store};
use plan::{Pair, Side, Step, STEPS, TARGETS};
use serde::Serialize;
use std::time::Instant;
use verdict::{Measured, Verdict};

/// etcd members started for the replicated pair (as many as diskv replicas).
const ETCD_MEMBERS: usize = 3;

/// Everything a comparison measured.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The machine, in one line.
    pub machine: String,
    /// Rounds (each runs every step on both sides).
    pub rounds: usize,
    /// Records loaded into each store.
    pub records: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Warm-up per run, seconds.
    pub warmup_secs: f64,
    /// Measured interval per run, seconds.
    pub measured_secs: f64,
    /// Wall time of the whole comparison, seconds.
    pub wall_secs: f64,
    /// Every run.
    pub runs: Vec<Measured>,
    /// Every target's outcome.
    pub verdicts: Vec<Verdict>,
}

/// Runs the comparison: `rounds` rounds of every step, each run shaped by `base`
/// (its workload, clients and load flag are set per run).
pub async fn compare(rounds: usize, base: &RunSpec) -> Result<Comparison, BenchError> {
    base.check()?;
    if rounds == 0 {
        return Err(BenchError::Spec("--rounds must be at least 1".into()));
    }
    let started = Instant::now();
    let mut runs = Vec::new();
    for pair in Pair::ALL {
        let steps: Vec<Step> = STEPS.iter().copied().filter(|s| s.pair == pair).collect();
        let systems = Systems::start(pair).await?;
        let outcome = run_pair(&systems, &steps, rounds, base, &mut runs).await;
        systems.stop().await;
        outcome?;
    }
    let verdicts = verdict::judge(&TARGETS, &runs);
    let (warmup_secs, measured_secs) = match base.limit {
        super::Limit::Duration(d) => (base.warmup.as_secs_f64(), d.as_secs_f64()),
        super::Limit::Operations(_) => (base.warmup.as_secs_f64(), 0.0),
    };
    Ok(Comparison {
        machine: super::machine::Machine::detect().describe(),
        rounds,
        records: base.records,
        value_size: base.value_size,
        warmup_secs,
        measured_secs,
        wall_secs: started.elapsed().as_secs_f64(),
        runs,
        verdicts,
    })
}

/// Every round of `steps` on both sides of a pair.
async fn run_pair(
    systems: &Systems,
    steps: &[Step],
    rounds: usize,
    base: &RunSpec,
    runs: &mut Vec<Measured>,
) -> Result<(), BenchError> {
    let mut loaded = std::collections::HashSet::new();
    for round in 0..rounds {
        for (i, &step) in steps.iter().enumerate() {
            let order = if (round + i) % 2 == 0 {
                [Side::Diskv, Side::Peer]
            } else {
                [Side::Peer, Side::Diskv]
            };
            for side in order {
                let spec = RunSpec {
                    workload: step.workload,
                    clients: step.clients,
                    load: loaded.insert(side),
                    ..base.clone()
                };
                let report = run_workload(systems.store(side), &spec).await?;
                println!("round {}/{rounds}\n{}", round + 1, report.table());
                runs.push(Measured {
                    step,
                    side,
                    round,
                    report,
                });
            }
        }
    }
    Ok(())
}

/// A running peer (kept for its launcher's Drop, which kills it).
enum Peer {
    Etcd(Box<EtcdCluster>),
    Redis(RedisServer),
}

/// Both systems of a pair, running.
struct Systems {
    diskv: Spawned,
    diskv_store: DiskvStore,
    peer_store: Box<dyn Store>,
    _peer: Peer,
}

impl Systems {
    /// Starts diskv first, then the peer (stopping diskv if the peer fails).
    async fn start(pair: Pair) -> Result<Systems, BenchError> {
        let replicated = SpawnShape::Cluster {
            groups: 1,
            replicas: 3,
        };
        let (shape, transport) = match pair {
            Pair::Replicated => (replicated, Transport::Plain),
            Pair::SingleNode => (SpawnShape::Serve, Transport::Plain),
            Pair::ReplicatedTls => (replicated, Transport::MutualTls),
        };
        eprintln!("starting {}{}...", shape.label(), transport.suffix());
        let diskv = Spawned::start(shape, transport).await?;
        let peer = match pair {
            Pair::Replicated | Pair::ReplicatedTls => {
                let security = match transport {
                    Transport::Plain => EtcdSecurity::Plain,
                    Transport::MutualTls => EtcdSecurity::Tls,
                };
                eprintln!("starting etcd ({ETCD_MEMBERS} members, {security:?})...");
                EtcdCluster::launch(ETCD_MEMBERS, security)
                    .await
                    .map(|c| Peer::Etcd(Box::new(c)))
            }
            Pair::SingleNode => {
                eprintln!("starting redis-server (appendfsync always)...");
                RedisServer::launch().await.map(Peer::Redis)
            }
        };
        let peer = match peer {
            Ok(p) => p,
            Err(e) => {
                diskv.stop().await;
                return Err(BenchError::Spawn(anyhow::Error::new(e)));
            }
        };
        let peer_store: Box<dyn Store> = match &peer {
            Peer::Etcd(c) => Box::new(c.store()),
            Peer::Redis(r) => Box::new(r.store()),
        };
        Ok(Systems {
            diskv_store: DiskvStore::new(diskv.masters.clone(), diskv.label.clone()),
            diskv,
            peer_store,
            _peer: peer,
        })
    }

    fn store(&self, side: Side) -> &dyn Store {
        match side {
            Side::Diskv => &self.diskv_store,
            Side::Peer => self.peer_store.as_ref(),
        }
    }

    /// Stops diskv by pid (the peer is killed when dropped).
    async fn stop(self) {
        self.diskv.stop().await;
    }
}
