//! The charts drawn from reports: latency percentiles of a run, and throughput and
//! latency against client counts over several runs.

use super::error::BenchError;
use super::plot::{Chart, Series};
use super::report::RunReport;
use std::collections::BTreeMap;
use std::path::Path;

/// Most series on one chart (the rest are left out).
const MAX_SERIES: usize = 8;

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Latency at p50, p95, p99 and max for each operation kind of each run.
pub fn latency_percentiles(reports: &[RunReport]) -> Chart {
    let mut series = Vec::new();
    for r in reports {
        for op in &r.per_op {
            series.push(Series {
                name: format!("{} {} {}c {}", r.store, r.workload, r.clients, op.op),
                points: vec![
                    (50.0, ms(op.p50_us)),
                    (95.0, ms(op.p95_us)),
                    (99.0, ms(op.p99_us)),
                    (100.0, ms(op.max_us)),
                ],
            });
        }
    }
    series.truncate(MAX_SERIES);
    Chart {
        title: "Latency percentiles (100 = max)".into(),
        x_label: "percentile".into(),
        y_label: "latency (ms)".into(),
        log_x: false,
        series,
    }
}

/// Runs grouped by store and workload, each group sorted by client count.
fn by_store_and_workload(reports: &[RunReport]) -> BTreeMap<String, Vec<&RunReport>> {
    let mut groups: BTreeMap<String, Vec<&RunReport>> = BTreeMap::new();
    for r in reports {
        groups
            .entry(format!("{} workload {}", r.store, r.workload))
            .or_default()
            .push(r);
    }
    for runs in groups.values_mut() {
        runs.sort_by_key(|r| r.clients);
    }
    groups
}

/// Throughput against concurrent clients, one line per store and workload.
pub fn throughput_vs_clients(reports: &[RunReport]) -> Chart {
    let series = by_store_and_workload(reports)
        .into_iter()
        .take(MAX_SERIES)
        .map(|(name, runs)| Series {
            name,
            points: runs
                .iter()
                .map(|r| (r.clients as f64, r.ops_per_sec))
                .collect(),
        })
        .collect();
    Chart {
        title: "Throughput vs concurrent clients".into(),
        x_label: "clients (closed loop)".into(),
        y_label: "operations/s".into(),
        log_x: true,
        series,
    }
}

/// p50 and p99 latency of each run's main operation against concurrent clients.
pub fn latency_vs_clients(reports: &[RunReport]) -> Chart {
    let mut series = Vec::new();
    for (name, runs) in by_store_and_workload(reports) {
        for (label, pick) in [("p50", 0usize), ("p99", 1)] {
            let points = runs
                .iter()
                .filter_map(|r| {
                    let op = r.main_op()?;
                    let us = if pick == 0 { op.p50_us } else { op.p99_us };
                    Some((r.clients as f64, ms(us)))
                })
                .collect();
            series.push(Series {
                name: format!("{name} {label}"),
                points,
            });
        }
    }
    series.truncate(MAX_SERIES);
    Chart {
        title: "Latency vs concurrent clients (most frequent operation)".into(),
        x_label: "clients (closed loop)".into(),
        y_label: "latency (ms)".into(),
        log_x: true,
        series,
    }
}

/// Draws the charts that fit `reports` into `dir`; returns the files written.
pub fn draw_all(dir: &Path, reports: &[RunReport]) -> Result<Vec<String>, BenchError> {
    let mut written = Vec::new();
    let mut clients: Vec<usize> = reports.iter().map(|r| r.clients).collect();
    clients.sort_unstable();
    clients.dedup();
    let mut charts = vec![("latency-percentiles.svg", latency_percentiles(reports))];
    if clients.len() > 1 {
        charts.push(("throughput-vs-clients.svg", throughput_vs_clients(reports)));
        charts.push(("latency-vs-clients.svg", latency_vs_clients(reports)));
    }
    for (file, chart) in charts {
        chart.draw(&dir.join(file))?;
        written.push(file.to_string());
    }
    Ok(written)
}
