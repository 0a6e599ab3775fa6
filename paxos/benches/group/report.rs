//! The benchmark's output: a table on stdout, PASS/MISS lines against the targets of
//! the issue, and the same figures as JSON.

use super::probe::{Mount, RoundTrip, SyncRate};
use super::LoadResult;
use serde_json::{json, Value};
use std::path::Path;

/// At 64 proposers: at least this many commands decided per second...
pub const TARGET_COMMANDS_PER_SEC: f64 = 50_000.0;
/// ...and at least this many commands per leader fsync.
pub const TARGET_COMMANDS_PER_FSYNC: f64 = 10.0;
/// A single proposer's p50 is at most this many times (one fdatasync + one loopback
/// round trip).
pub const TARGET_SINGLE_P50_FACTOR: f64 = 3.0;

/// Everything one run measured.
pub struct Report<'a> {
    /// Where the logs were written.
    pub dir: &'a Path,
    /// The filesystem they were on.
    pub mount: Mount,
    /// CPUs available.
    pub cpus: usize,
    /// Seconds measured per load level, after the warm-up.
    pub secs: f64,
    /// Bytes of each command.
    pub command_bytes: usize,
    /// The raw fdatasync rate of `dir`, with one writer and with one per replica.
    pub fsync: Vec<SyncRate>,
    /// The loopback round trip.
    pub rtt: RoundTrip,
    /// One result per load level.
    pub loads: Vec<LoadResult>,
}

/// One target compared with its measurement.
struct Verdict {
    pass: bool,
    line: String,
    json: Value,
}

impl Report<'_> {
    /// The readable table, then one PASS/MISS line per target.
    pub fn print(&self) {
        println!("paxos group benchmark: 3 replicas on 127.0.0.1, fsync on");
        println!(
            "  log dir   {} ({} on {}, mounted at {})",
            self.dir.display(),
            self.mount.fs_type,
            self.mount.device,
            self.mount.mount_point.display()
        );
        println!(
            "  machine   {} CPUs; {:.0} s per load level after a 1 s warm-up; {}-byte commands",
            self.cpus, self.secs, self.command_bytes
        );
        for f in &self.fsync {
            println!(
                "  disk      raw append + fdatasync, {} writer(s): {:.0}/s in all, p50 {} µs, p99 {} µs",
                f.writers, f.per_sec, f.p50_us, f.p99_us
            );
        }
        println!(
            "  network   loopback TCP round trip: p50 {} µs, p99 {} µs",
            self.rtt.p50_us, self.rtt.p99_us
        );
        println!();
        println!(
            "  {:>9} {:>11} {:>8} {:>8} {:>8} {:>10} {:>11} {:>7}",
            "proposers",
            "commands/s",
            "p50 µs",
            "p99 µs",
            "max µs",
            "fsyncs/s",
            "cmds/fsync",
            "errors"
        );
        for l in &self.loads {
            println!(
                "  {:>9} {:>11.0} {:>8} {:>8} {:>8} {:>10.0} {:>11.1} {:>7}",
                l.proposers,
                l.commands_per_sec(),
                l.hist.value_at_quantile(0.5),
                l.hist.value_at_quantile(0.99),
                l.hist.max(),
                l.leader_syncs as f64 / l.secs,
                l.commands_per_fsync(),
                l.errors
            );
        }
        println!();
        for verdict in self.verdicts() {
            println!(
                "  {}  {}",
                if verdict.pass { "PASS" } else { "MISS" },
                verdict.line
            );
        }
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let loads: Vec<Value> = self
            .loads
            .iter()
            .map(|l| {
                json!({
                    "proposers": l.proposers,
                    "seconds": l.secs,
                    "commands": l.commands,
                    "errors": l.errors,
                    "commands_per_sec": l.commands_per_sec(),
                    "latency_us": {
                        "p50": l.hist.value_at_quantile(0.5),
                        "p90": l.hist.value_at_quantile(0.9),
                        "p99": l.hist.value_at_quantile(0.99),
                        "max": l.hist.max(),
                        "mean": l.hist.mean(),
                    },
                    "leader": {
                        "fsyncs": l.leader_syncs,
                        "records": l.leader_records,
                        "persist_us_per_fsync": l.persist_micros_per_sync(),
                    },
                    "commands_per_fsync": l.commands_per_fsync(),
                })
            })
            .collect();
        let targets: Vec<Value> = self.verdicts().into_iter().map(|v| v.json).collect();
        json!({
            "benchmark": "paxos group",
            "replicas": 3,
            "fsync": true,
            "dir": self.dir.display().to_string(),
            "filesystem": {
                "type": self.mount.fs_type,
                "device": self.mount.device,
                "mount_point": self.mount.mount_point.display().to_string(),
            },
            "cpus": self.cpus,
            "command_bytes": self.command_bytes,
            "raw_fdatasync": self.fsync.iter().map(|f| json!({
                "writers": f.writers,
                "per_sec": f.per_sec,
                "p50_us": f.p50_us,
                "p99_us": f.p99_us,
            })).collect::<Vec<_>>(),
            "loopback_rtt_us": { "p50": self.rtt.p50_us, "p99": self.rtt.p99_us },
            "loads": loads,
            "targets": targets,
        })
    }

    fn load(&self, proposers: usize) -> Option<&LoadResult> {
        self.loads.iter().find(|l| l.proposers == proposers)
    }

    fn verdicts(&self) -> Vec<Verdict> {
        let mut out = Vec::new();
        if let Some(l) = self.load(64) {
            out.push(at_least(
                "64 proposers: commands/s",
                l.commands_per_sec(),
                TARGET_COMMANDS_PER_SEC,
            ));
            out.push(at_least(
                "64 proposers: commands per leader fsync",
                l.commands_per_fsync(),
                TARGET_COMMANDS_PER_FSYNC,
            ));
        }
        if let Some(l) = self.load(1) {
            out.push(self.single_proposer_latency(l));
        }
        out
    }

    /// The fastest fdatasync p50 measured: the strictest bound for the single
    /// proposer's latency (a lone writer on an idle CPU can be slower than the same
    /// disk with a writer per replica).
    fn fsync_p50(&self) -> u64 {
        self.fsync.iter().map(|f| f.p50_us).min().unwrap_or(0)
    }

    fn single_proposer_latency(&self, l: &LoadResult) -> Verdict {
        let fsync_p50 = self.fsync_p50();
        let base = (fsync_p50 + self.rtt.p50_us) as f64;
        let bound = TARGET_SINGLE_P50_FACTOR * base;
        let p50 = l.hist.value_at_quantile(0.5) as f64;
        let ratio = p50 / base;
        Verdict {
            pass: p50 <= bound,
            line: format!(
                "1 proposer: p50 {p50:.0} µs <= {TARGET_SINGLE_P50_FACTOR} x (fdatasync p50 {fsync_p50} µs + RTT p50 {} µs) = {bound:.0} µs; measured {ratio:.2} x",
                self.rtt.p50_us
            ),
            json: json!({
                "target": "1 proposer: p50 <= 3 x (fastest fdatasync p50 + loopback RTT p50)",
                "fdatasync_p50_us": fsync_p50,
                "rtt_p50_us": self.rtt.p50_us,
                "measured_us": p50,
                "bound_us": bound,
                "ratio_to_fsync_plus_rtt": ratio,
                "pass": p50 <= bound,
            }),
        }
    }
}

/// A "measured >= target" comparison.
fn at_least(what: &str, measured: f64, target: f64) -> Verdict {
    let ratio = measured / target;
    Verdict {
        pass: measured >= target,
        line: format!("{what}: {measured:.1} >= {target:.0}; measured {ratio:.2} x the target"),
        json: json!({
            "target": format!("{what} >= {target}"),
            "measured": measured,
            "ratio_to_target": ratio,
            "pass": measured >= target,
        }),
    }
}
