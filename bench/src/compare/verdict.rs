//! From the runs to the targets: each figure is the median over the rounds, and a
//! target passes when diskv's factor over its baseline reaches the goal.

use super::plan::{Baseline, Metric, Side, Step, Target};
use crate::report::RunReport;
use crate::workload::OpKind;
use serde::{Deserialize, Serialize};

/// One run of one side of a step, in one round.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measured {
    /// The step.
    pub step: Step,
    /// Which side ran.
    pub side: Side,
    /// The round (0-based).
    pub round: usize,
    /// What it measured.
    pub report: RunReport,
}

/// A run's figure: ops/s, or a latency in microseconds.
pub fn figure(report: &RunReport, metric: Metric) -> Option<f64> {
    match metric {
        Metric::Throughput => Some(report.ops_per_sec),
        Metric::P99 => report
            .per_op
            .iter()
            .filter(|op| op.count > 0)
            .map(|op| op.p99_us as f64)
            .reduce(f64::max),
        Metric::UpdateP50 => report
            .per_op
            .iter()
            .find(|op| op.op == OpKind::Update && op.count > 0)
            .map(|op| op.p50_us as f64),
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The median over rounds of `metric` for `side` on `step`.
pub fn median_figure(runs: &[Measured], step: Step, side: Side, metric: Metric) -> Option<f64> {
    let values = runs
        .iter()
        .filter(|m| m.step == step && m.side == side)
        .filter_map(|m| figure(&m.report, metric))
        .collect();
    median(values)
}

/// A target's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The target.
    pub target: Target,
    /// diskv's figure (median over rounds).
    pub diskv: Option<f64>,
    /// The baseline's figure (median over rounds).
    pub baseline: Option<f64>,
    /// diskv's factor over the baseline: >1 is better, whichever way the metric goes.
    pub factor: Option<f64>,
    /// Whether the factor reaches the goal.
    pub pass: bool,
}

/// diskv's factor over a baseline (`None` when a figure is missing or zero).
pub fn factor(metric: Metric, diskv: f64, baseline: f64) -> Option<f64> {
    let (num, den) = if metric.higher_is_better() {
        (diskv, baseline)
    } else {
        (baseline, diskv)
    };
    (den > 0.0 && num.is_finite()).then(|| num / den)
}

/// Judges every target on the runs.
pub fn judge(targets: &[Target], runs: &[Measured]) -> Vec<Verdict> {
    targets
        .iter()
        .map(|&target| {
            let diskv = median_figure(runs, target.step, Side::Diskv, target.metric);
            let baseline = match target.baseline {
                Baseline::Peer => median_figure(runs, target.step, Side::Peer, target.metric),
                Baseline::Diskv(step) => median_figure(runs, step, Side::Diskv, target.metric),
            };
            let factor = match (diskv, baseline) {
                (Some(d), Some(b)) => factor(target.metric, d, b),
                _ => None,
            };
            Verdict {
                target,
                diskv,
                baseline,
                factor,
                pass: factor.is_some_and(|f| f >= target.goal),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn factors_favour_diskv_above_one_whichever_way_the_metric_goes() {
        assert_eq!(factor(Metric::Throughput, 200.0, 100.0), Some(2.0));
        assert_eq!(factor(Metric::P99, 200.0, 100.0), Some(0.5));
        assert_eq!(factor(Metric::UpdateP50, 100.0, 300.0), Some(3.0));
        assert_eq!(factor(Metric::Throughput, 5.0, 0.0), None);
    }
}
