//! What a run measured: per-operation HDR histograms while it runs
//! ([`Recorder`], one per client, merged at the end), and the [`RunReport`] it
//! becomes (JSON and CSV on disk, a table on stdout).

use super::workload::{OpKind, Workload};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

/// Highest latency a histogram tracks, in microseconds (larger values are clamped).
const MAX_LATENCY_US: u64 = 600_000_000;
/// Error messages kept per run, to say what went wrong.
const ERROR_SAMPLES: usize = 5;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// One client's measurements (or several clients' merged).
pub struct Recorder {
    latencies: Vec<Histogram<u64>>,
    errors: Vec<u64>,
    samples: Vec<String>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            latencies: OpKind::ALL.iter().map(|_| histogram()).collect(),
            errors: vec![0; OpKind::ALL.len()],
            samples: Vec::new(),
        }
    }
}

fn slot(kind: OpKind) -> usize {
    OpKind::ALL.iter().position(|&k| k == kind).unwrap_or(0)
}

impl Recorder {
    /// Records one successful operation.
    pub fn ok(&mut self, kind: OpKind, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latencies[slot(kind)].saturating_record(us);
    }

    /// Records one failed operation.
    pub fn error(&mut self, kind: OpKind, what: &str) {
        self.errors[slot(kind)] += 1;
        if self.samples.len() < ERROR_SAMPLES {
            self.samples.push(format!("{kind}: {what}"));
        }
    }

    /// Adds another recorder's measurements to this one.
    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.latencies.iter_mut().zip(&other.latencies) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = mine.add(theirs);
        }
        for (mine, theirs) in self.errors.iter_mut().zip(&other.errors) {
            *mine += theirs;
        }
        for s in &other.samples {
            if self.samples.len() < ERROR_SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }

    /// Successful operations so far.
    pub fn ops(&self) -> u64 {
        self.latencies.iter().map(Histogram::len).sum()
    }

    /// Failed operations so far.
    pub fn errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Per-kind figures over `secs` measured seconds (kinds never issued left out).
    pub fn op_reports(&self, secs: f64) -> Vec<OpReport> {
        OpKind::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| self.latencies[*i].len() + self.errors[*i] > 0)
            .map(|(i, &op)| {
                let h = &self.latencies[i];
                OpReport {
                    op,
                    count: h.len(),
                    errors: self.errors[i],
                    ops_per_sec: rate(h.len(), secs),
                    mean_us: if h.is_empty() { 0.0 } else { h.mean().round() },
                    p50_us: h.value_at_quantile(0.50),
                    p95_us: h.value_at_quantile(0.95),
                    p99_us: h.value_at_quantile(0.99),
                    max_us: h.max(),
                }
            })
            .collect()
    }

    /// The first few error messages.
    pub fn samples(&self) -> Vec<String> {
        self.samples.clone()
    }
}

/// `count / secs`, rounded to 0.1 (0 when nothing was measured).
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        (count as f64 / secs * 10.0).round() / 10.0
    }
}

/// Figures of one operation kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpReport {
    /// The kind.
    pub op: OpKind,
    /// Successful operations.
    pub count: u64,
    /// Failed operations (errors and timeouts), not in the latencies.
    pub errors: u64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 95th percentile latency, microseconds.
    pub p95_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Highest latency, microseconds.
    pub max_us: u64,
}

/// The load phase's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Records written.
    pub records: u64,
    /// Failed inserts.
    pub errors: u64,
    /// How long it took, seconds.
    pub secs: f64,
    /// Inserts per second.
    pub ops_per_sec: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The store's label ([`super::store::Store::name`]).
    pub store: String,
    /// The workload.
    pub workload: Workload,
    /// Concurrent clients (each one operation at a time: a closed loop).
    pub clients: usize,
    /// Records loaded before the run.
    pub records: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Warm-up, seconds (not in any figure).
    pub warmup_secs: f64,
    /// The measured interval, seconds.
    pub measured_secs: f64,
    /// Successful operations in the measured interval.
    pub ops: u64,
    /// Failed operations in the measured interval.
    pub errors: u64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Per operation kind.
    pub per_op: Vec<OpReport>,
    /// The load phase, if this run loaded the records.
    pub load: Option<LoadReport>,
    /// The first few error messages.
    pub error_samples: Vec<String>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl RunReport {
    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} | workload {} ({}) | {} clients | {} records x {} B | {:.1} s measured after {:.1} s warm-up",
            self.store,
            self.workload,
            self.workload.describe(),
            self.clients,
            self.records,
            self.value_size,
            self.measured_secs,
            self.warmup_secs
        );
        if let Some(l) = &self.load {
            let _ = writeln!(
                out,
                "  load: {} records in {:.1} s ({:.0} inserts/s, {} errors)",
                l.records, l.secs, l.ops_per_sec, l.errors
            );
        }
        let _ = writeln!(
            out,
            "  {:<18} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "op", "count", "ops/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"
        );
        for r in &self.per_op {
            let _ = writeln!(
                out,
                "  {:<18} {:>9} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                r.op.name(),
                r.count,
                r.ops_per_sec,
                ms(r.p50_us),
                ms(r.p95_us),
                ms(r.p99_us),
                ms(r.max_us),
                r.errors
            );
        }
        let _ = writeln!(
            out,
            "  {:<18} {:>9} {:>10.1} {:>49}",
            "total", self.ops, self.ops_per_sec, self.errors
        );
        for s in &self.error_samples {
            let _ = writeln!(out, "  error: {s}");
        }
        out
    }

    /// The CSV header matching [`RunReport::csv_rows`].
    pub const CSV_HEADER: &'static str = "store,workload,clients,records,value_size,measured_secs,op,count,errors,ops_per_sec,mean_us,p50_us,p95_us,p99_us,max_us";

    /// One CSV line per operation kind.
    pub fn csv_rows(&self) -> String {
        let mut out = String::new();
        for r in &self.per_op {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{:.3},{},{},{},{:.1},{:.0},{},{},{},{}",
                self.store.replace(',', ";"),
                self.workload,
                self.clients,
                self.records,
                self.value_size,
                self.measured_secs,
                r.op.name(),
                r.count,
                r.errors,
                r.ops_per_sec,
                r.mean_us,
                r.p50_us,
                r.p95_us,
                r.p99_us,
                r.max_us
            );
        }
        out
    }

    /// The latency percentile of the run's dominant operation kind (the one with
    /// most operations), for plots over many runs.
    pub fn main_op(&self) -> Option<&OpReport> {
        self.per_op.iter().max_by_key(|r| r.count)
    }
}

/// Writes reports as `results.json` and `results.csv` in `dir`.
pub fn write_files(dir: &std::path::Path, reports: &[RunReport]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(reports).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("results.json"), json + "\n")?;
    let mut csv = String::from(RunReport::CSV_HEADER);
    csv.push('\n');
    for r in reports {
        csv.push_str(&r.csv_rows());
    }
    std::fs::write(dir.join("results.csv"), csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> Recorder {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for ms in 1..=100u64 {
            a.ok(OpKind::Read, Duration::from_millis(ms));
        }
        b.ok(OpKind::Update, Duration::from_millis(7));
        b.error(OpKind::Update, "timed out");
        a.merge(&b);
        a
    }

    #[test]
    fn merged_histograms_give_percentiles_over_all_clients() {
        let r = recorded();
        assert_eq!(r.ops(), 101);
        assert_eq!(r.errors(), 1);
        let ops = r.op_reports(2.0);
        assert_eq!(ops.len(), 2, "only the kinds issued: {ops:?}");
        let read = &ops[0];
        assert_eq!(
            (read.op, read.count, read.ops_per_sec),
            (OpKind::Read, 100, 50.0)
        );
        // HDR with 3 significant digits: within 0.1%.
        assert!((49_950..=50_050).contains(&read.p50_us), "{}", read.p50_us);
        assert!((98_900..=99_100).contains(&read.p99_us), "{}", read.p99_us);
        assert!((99_900..=100_100).contains(&read.max_us), "{}", read.max_us);
        assert_eq!((ops[1].count, ops[1].errors), (1, 1));
        assert_eq!(r.samples(), vec!["update: timed out".to_string()]);
    }

    #[test]
    fn a_report_survives_a_json_round_trip() {
        let r = recorded();
        let report = RunReport {
            store: "diskv 1x3".into(),
            workload: Workload::A,
            clients: 10,
            records: 1_000,
            value_size: 1_024,
            warmup_secs: 2.0,
            measured_secs: 2.0,
            ops: r.ops(),
            errors: r.errors(),
            ops_per_sec: rate(r.ops(), 2.0),
            per_op: r.op_reports(2.0),
            load: Some(LoadReport {
                records: 1_000,
                errors: 0,
                secs: 1.5,
                ops_per_sec: 666.5,
            }),
            error_samples: r.samples(),
        };
        let json = serde_json::to_string(std::slice::from_ref(&report)).unwrap();
        let back: Vec<RunReport> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![report.clone()]);
        assert!(json.contains("\"op\":\"read\""), "{json}");
        let table = report.table();
        assert!(
            table.contains("read") && table.contains("update"),
            "{table}"
        );
        assert_eq!(report.csv_rows().lines().count(), 2);
        assert_eq!(report.main_op().map(|o| o.op), Some(OpKind::Read));
    }
}
