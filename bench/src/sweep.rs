//! `diskv bench sweep`: the standard matrix of runs, each cluster shape spawned
//! locally in turn, results in one folder (`sweep.json`, `results.csv`, SVG charts).
//!
//! The matrix (see [`Preset::plan`]): workloads A-F at 10 clients on 1, 3 and 5
//! groups of 3 replicas; workload A at 1 to 256 clients on 1 and 5 groups; workload
//! A at 10 clients with 1, 3 and 5 replicas in one group. `quick` leaves out the
//! 20, 30 and 256 client runs and measures 5 s per run (a few minutes on two
//! cores); `full` runs all of it, 10 s per run.

use super::diskv_store::DiskvStore;
use super::driver::run_workload;
use super::error::BenchError;
use super::figures;
use super::machine::Machine;
use super::plot::{Chart, Series};
use super::report::{self, RunReport};
use super::spec::{Limit, RunSpec};
use super::store::Store;
use super::target::{SpawnShape, Spawned, Transport};
use super::workload::Workload;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Clients of the workload table and the replication runs.
pub const BASE_CLIENTS: usize = 10;

/// Which matrix to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// A few minutes (5 s per run): A-F on 1x3, 3x3 and 5x3; A at 1/10/64 clients on
    /// 1x3 and 5x3; A on 1x1 and 1x5.
    Quick,
    /// Everything, 10 s per run: as quick, with A at 1, 10, 20, 30, 64 and 256 clients.
    Full,
}

/// The runs on one spawned shape, in order (the first one loads the records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeRuns {
    /// The cluster.
    pub shape: SpawnShape,
    /// (workload, clients) pairs.
    pub runs: Vec<(Workload, usize)>,
}

/// A preset's runs and timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The shapes and their runs.
    pub shapes: Vec<ShapeRuns>,
    /// Measured time per run.
    pub duration: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
}

fn cluster(groups: usize, replicas: usize) -> SpawnShape {
    SpawnShape::Cluster { groups, replicas }
}

/// Workload A at each client count, then the other workloads at [`BASE_CLIENTS`]
/// (inserting workloads D and E last but one and last, as YCSB advises).
fn runs(clients: &[usize], workloads: &[Workload]) -> Vec<(Workload, usize)> {
    let mut runs: Vec<(Workload, usize)> = clients.iter().map(|&c| (Workload::A, c)).collect();
    for &w in workloads {
        if !runs.contains(&(w, BASE_CLIENTS)) {
            runs.push((w, BASE_CLIENTS));
        }
    }
    runs
}

impl Preset {
    /// The runs of this preset: the same shapes, with workload A's client counts
    /// and the time per run of the preset.
    pub fn plan(self) -> Plan {
        let (clients, duration, warmup): (&[usize], _, _) = match self {
            Preset::Quick => (&[1, 10, 64], 5, 1),
            Preset::Full => (&[1, 10, 20, 30, 64, 256], 10, 2),
        };
        let all = Workload::ALL;
        let a = [Workload::A];
        let shape = |groups, replicas, clients: &[usize], workloads: &[Workload]| ShapeRuns {
            shape: cluster(groups, replicas),
            runs: runs(clients, workloads),
        };
        Plan {
            shapes: vec![
                shape(1, 3, clients, &all),
                shape(3, 3, &[], &all),
                shape(5, 3, clients, &all),
                shape(1, 1, &[], &a),
                shape(1, 5, &[], &a),
            ],
            duration: Duration::from_secs(duration),
            warmup: Duration::from_secs(warmup),
        }
    }
}

/// One run of a sweep, with the shape it ran on (`None` for a store not spawned
/// by the sweep, such as etcd or Redis).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRun {
    /// Replica groups.
    pub groups: Option<usize>,
    /// Replicas per group.
    pub replicas: Option<usize>,
    /// What it measured.
    pub report: RunReport,
}

/// Everything a sweep measured (`sweep.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepResults {
    /// The preset.
    pub preset: Preset,
    /// The command that produced it.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// When it started, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Wall time of the whole sweep, seconds.
    pub wall_secs: f64,
    /// The runs.
    pub runs: Vec<SweepRun>,
    /// Runs that could not run at all, with why.
    pub failures: Vec<String>,
}

/// Runs `preset` (plus each of `extra`'s stores on the workload and client runs of
/// the first shape), writing everything into `out`. `base` gives the settings
/// the preset does not fix (records, value size, timeouts, seed, progress).
pub async fn run_sweep(
    preset: Preset,
    base: &RunSpec,
    extra: &[Box<dyn Store>],
    out: &Path,
) -> Result<SweepResults, BenchError> {
    std::fs::create_dir_all(out).map_err(|e| BenchError::io(out, e))?;
    let plan = preset.plan();
    let started = Instant::now();
    let mut results = SweepResults {
        preset,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine::detect(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        wall_secs: 0.0,
        runs: Vec::new(),
        failures: Vec::new(),
    };
    let spec = |w: Workload, clients: usize, load: bool| RunSpec {
        workload: w,
        clients,
        load,
        limit: Limit::Duration(plan.duration),
        warmup: plan.warmup,
        ..base.clone()
    };
    for step in &plan.shapes {
        let (groups, replicas) = match step.shape {
            SpawnShape::Cluster { groups, replicas } => (Some(groups), Some(replicas)),
            SpawnShape::Serve => (Some(1), Some(1)),
        };
        eprintln!("== {}: starting", step.shape.label());
        let spawned = match Spawned::start(step.shape, Transport::Plain).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("== {}: {e}", step.shape.label());
                results
                    .failures
                    .push(format!("{}: {e}", step.shape.label()));
                continue;
            }
        };
        let store = DiskvStore::new(spawned.masters.clone(), spawned.label.clone());
        for (i, &(w, clients)) in step.runs.iter().enumerate() {
            let outcome = run_workload(&store, &spec(w, clients, i == 0)).await;
            record(&mut results, groups, replicas, &store.name(), outcome);
        }
        spawned.stop().await;
        write(out, &results)?;
    }
    for store in extra {
        let first = plan
            .shapes
            .first()
            .map(|s| s.runs.clone())
            .unwrap_or_default();
        for (i, &(w, clients)) in first.iter().enumerate() {
            let outcome = run_workload(store.as_ref(), &spec(w, clients, i == 0)).await;
            record(&mut results, None, None, &store.name(), outcome);
        }
    }
    results.wall_secs = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    write(out, &results)?;
    Ok(results)
}

/// Adds one run's outcome to the results and prints its table.
fn record(
    results: &mut SweepResults,
    groups: Option<usize>,
    replicas: Option<usize>,
    store: &str,
    outcome: Result<RunReport, BenchError>,
) {
    match outcome {
        Ok(report) => {
            println!("{}", report.table());
            results.runs.push(SweepRun {
                groups,
                replicas,
                report,
            });
        }
        Err(e) => {
            eprintln!("== {store}: {e}");
            results.failures.push(format!("{store}: {e}"));
        }
    }
}

/// Writes `sweep.json`, `results.json`, `results.csv` and the charts.
pub fn write(out: &Path, results: &SweepResults) -> Result<(), BenchError> {
    let path = out.join("sweep.json");
    let json = serde_json::to_string_pretty(results).map_err(|e| BenchError::Results {
        path: path.clone(),
        error: e,
    })?;
    std::fs::write(&path, json + "\n").map_err(|e| BenchError::io(&path, e))?;
    let reports: Vec<RunReport> = results.runs.iter().map(|r| r.report.clone()).collect();
    report::write_files(out, &reports).map_err(|e| BenchError::io(out, e))?;
    for (file, chart) in charts(results) {
        chart.draw(&out.join(file))?;
    }
    Ok(())
}

/// Reads `sweep.json` back.
pub fn read(path: &Path) -> Result<SweepResults, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| BenchError::Results {
        path: path.to_path_buf(),
        error: e,
    })
}

/// Runs of `results` matching a filter, as reports.
pub fn select(results: &SweepResults, keep: impl Fn(&SweepRun) -> bool) -> Vec<RunReport> {
    results
        .runs
        .iter()
        .filter(|r| keep(r))
        .map(|r| r.report.clone())
        .collect()
}

/// The sweep's charts, by file name.
pub fn charts(results: &SweepResults) -> Vec<(&'static str, Chart)> {
    let mut out = Vec::new();
    // Throughput of each workload against the number of groups (3 replicas, 10 clients).
    let series = Workload::ALL
        .iter()
        .map(|&w| Series {
            name: format!("workload {w}"),
            points: results
                .runs
                .iter()
                .filter(|r| {
                    r.replicas == Some(3)
                        && r.report.workload == w
                        && r.report.clients == BASE_CLIENTS
                })
                .filter_map(|r| Some((r.groups? as f64, r.report.ops_per_sec)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    out.push((
        "workloads.svg",
        Chart {
            title: format!("Workloads A-F, {BASE_CLIENTS} clients, 3 replicas per group"),
            x_label: "replica groups".into(),
            y_label: "operations/s".into(),
            log_x: false,
            series,
        },
    ));
    let a_clients = select(results, |r| {
        r.report.workload == Workload::A && (r.replicas == Some(3) || r.replicas.is_none())
    });
    out.push((
        "throughput-vs-clients.svg",
        figures::throughput_vs_clients(&a_clients),
    ));
    out.push((
        "latency-vs-clients.svg",
        figures::latency_vs_clients(&a_clients),
    ));
    // Replication factor: one group, workload A, 10 clients.
    let mut rf: Vec<&SweepRun> = results
        .runs
        .iter()
        .filter(|r| {
            r.groups == Some(1)
                && r.report.workload == Workload::A
                && r.report.clients == BASE_CLIENTS
        })
        .collect();
    rf.sort_by_key(|r| r.replicas);
    let point =
        |r: &&SweepRun, f: &dyn Fn(&RunReport) -> f64| Some((r.replicas? as f64, f(&r.report)));
    out.push((
        "replication.svg",
        Chart {
            title: format!("Replication factor: workload A, {BASE_CLIENTS} clients, 1 group"),
            x_label: "replicas".into(),
            y_label: "operations/s".into(),
            log_x: false,
            series: vec![Series {
                name: "throughput".into(),
                points: rf
                    .iter()
                    .filter_map(|r| point(r, &|x| x.ops_per_sec))
                    .collect(),
            }],
        },
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_preset_covers_the_issue_matrix() {
        let plan = Preset::Full.plan();
        let has = |g, r, w, c| {
            plan.shapes
                .iter()
                .any(|s| s.shape == cluster(g, r) && s.runs.contains(&(w, c)))
        };
        for g in [1, 3, 5] {
            for w in Workload::ALL {
                assert!(has(g, 3, w, 10), "{g}x3 {w}");
            }
        }
        for g in [1, 5] {
            for c in [1, 10, 20, 30, 64, 256] {
                assert!(has(g, 3, Workload::A, c), "{g}x3 A {c} clients");
            }
        }
        for r in [1, 3, 5] {
            assert!(has(1, r, Workload::A, 10), "1x{r}");
        }
        for s in Preset::Quick.plan().shapes.iter().chain(&plan.shapes) {
            let mut runs = s.runs.clone();
            runs.sort();
            runs.dedup();
            assert_eq!(runs.len(), s.runs.len(), "a run repeated on {:?}", s.shape);
            let d = s.runs.iter().position(|r| r.0 == Workload::D);
            let last_read_only = s.runs.iter().rposition(|r| r.0 < Workload::D);
            assert!(
                d.is_none() || d > last_read_only,
                "inserting workloads come last"
            );
        }
    }
}
