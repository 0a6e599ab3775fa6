//! What `diskv bench compare` runs and what it checks: the runs each pair of
//! systems shares ([`STEPS`]) and the targets measured from them ([`TARGETS`]).

use crate::workload::Workload;
use serde::{Deserialize, Serialize};

/// A pair of systems measured side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Pair {
    /// One diskv group of 3 replicas against 3 etcd members (all on loopback).
    Replicated,
    /// One `diskv serve` node against one Redis server with `appendfsync always`.
    SingleNode,
    /// [`Pair::Replicated`] with mutual TLS on every connection of both systems:
    /// between diskv's processes and to its clients, between etcd's members and
    /// to its clients (client certificates demanded on both sides).
    ReplicatedTls,
}

impl Pair {
    /// Every pair, in the order they run.
    pub const ALL: [Pair; 3] = [Pair::Replicated, Pair::SingleNode, Pair::ReplicatedTls];
}

/// Which side of a pair a run measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// diskv.
    Diskv,
    /// The peer (etcd or Redis).
    Peer,
}

/// One workload at one client count, run on both systems of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The pair.
    pub pair: Pair,
    /// The workload.
    pub workload: Workload,
    /// Concurrent clients.
    pub clients: usize,
}

const fn step(pair: Pair, workload: Workload, clients: usize) -> Step {
    Step {
        pair,
        workload,
        clients,
    }
}

/// Every step, in order (each round runs them all, alternating the sides).
pub const STEPS: [Step; 7] = [
    step(Pair::Replicated, Workload::A, 64),
    step(Pair::Replicated, Workload::A, 1),
    step(Pair::Replicated, Workload::W, 1),
    step(Pair::Replicated, Workload::C, 64),
    step(Pair::SingleNode, Workload::A, 64),
    step(Pair::ReplicatedTls, Workload::A, 64),
    step(Pair::Replicated, Workload::E, 64),
];

/// What a target reads from a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Successful operations per second (higher is better).
    Throughput,
    /// The highest p99 latency over the run's operation kinds (lower is better).
    P99,
    /// The median latency of updates (lower is better).
    UpdateP50,
}

impl Metric {
    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Throughput)
    }
}

/// What diskv is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Baseline {
    /// The pair's peer on the same step.
    Peer,
    /// diskv itself on another step (a scaling target: fewer clients; a cost
    /// target: without TLS).
    Diskv(Step),
}

/// One performance target: diskv's figure over the baseline's, as a factor where
/// 1 means "as good as" and more means better, must reach `goal`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Target {
    /// What it checks, for tables.
    pub title: &'static str,
    /// The step diskv's figure comes from.
    pub step: Step,
    /// The figure.
    pub metric: Metric,
    /// What diskv is compared with.
    pub baseline: Baseline,
    /// The factor to reach.
    pub goal: f64,
}

/// The performance targets of issue #8: at least 2x etcd's throughput on workload A
/// at 64 clients with a p99 no worse; a 1-client write p50 no worse than etcd's;
/// at least 10x etcd's linearizable-read throughput (workload C, 64 clients); a
/// one-replica `diskv serve` at least Redis's throughput; 64 clients at least 10x
/// one client. And those of issue #14: mutual TLS costs diskv at most 15% of its
/// workload-A throughput, and with TLS on both sides diskv stays as far ahead of
/// etcd as the plaintext target asks. And issue #13's scans: workload E (short
/// range scans, etcd's range reads) at least 2x etcd.
pub const TARGETS: [Target; 9] = [
    Target {
        title: "3-replica diskv vs 3-member etcd, workload A, 64 clients: throughput",
        step: STEPS[0],
        metric: Metric::Throughput,
        baseline: Baseline::Peer,
        goal: 2.0,
    },
    Target {
        title: "3-replica diskv vs 3-member etcd, workload A, 64 clients: p99",
        step: STEPS[0],
        metric: Metric::P99,
        baseline: Baseline::Peer,
        goal: 1.0,
    },
    Target {
        title: "diskv vs etcd, 1 client, writes only: p50",
        step: STEPS[2],
        metric: Metric::UpdateP50,
        baseline: Baseline::Peer,
        goal: 1.0,
    },
    Target {
        title: "diskv vs etcd, linearizable reads (workload C), 64 clients: throughput",
        step: STEPS[3],
        metric: Metric::Throughput,
        baseline: Baseline::Peer,
        goal: 10.0,
    },
    Target {
        title: "diskv serve vs Redis appendfsync always, workload A, 64 clients: throughput",
        step: STEPS[4],
        metric: Metric::Throughput,
        baseline: Baseline::Peer,
        goal: 1.0,
    },
    Target {
        title: "diskv 3-replica group, workload A: 64 clients vs 1 client throughput",
        step: STEPS[0],
        metric: Metric::Throughput,
        baseline: Baseline::Diskv(STEPS[1]),
        goal: 10.0,
    },
    Target {
        title: "both with mutual TLS: 3-replica diskv vs 3-member etcd, workload A, 64 clients: throughput",
        step: STEPS[5],
        metric: Metric::Throughput,
        baseline: Baseline::Peer,
        goal: 2.0,
    },
    Target {
        title: "what mutual TLS costs diskv: 3 replicas with TLS vs without, workload A, 64 clients: throughput",
        step: STEPS[5],
        metric: Metric::Throughput,
        baseline: Baseline::Diskv(STEPS[0]),
        goal: 0.85,
    },
    Target {
        title: "3-replica diskv vs 3-member etcd, scans (workload E), 64 clients: throughput",
        step: STEPS[6],
        metric: Metric::Throughput,
        baseline: Baseline::Peer,
        goal: 2.0,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_reads_steps_that_are_run() {
        for t in TARGETS {
            assert!(STEPS.contains(&t.step), "{}: step not run", t.title);
            if let Baseline::Diskv(base) = t.baseline {
                assert!(STEPS.contains(&base), "{}: baseline not run", t.title);
                assert_ne!(base, t.step, "{}: compared with itself", t.title);
            }
        }
    }
}
