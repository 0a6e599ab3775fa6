//! What one run does: [`RunSpec`].

use super::error::BenchError;
use super::workload::Workload;
use std::time::Duration;

/// When the measured part of a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// After this long.
    Duration(Duration),
    /// After this many operations (over all clients, warm-up excluded).
    Operations(u64),
}

/// One run: a workload at one client count against one store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSpec {
    /// The YCSB workload.
    pub workload: Workload,
    /// Records loaded (or assumed loaded) before the run.
    pub records: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Concurrent clients, each with one operation outstanding (a closed loop).
    pub clients: usize,
    /// When the measured part ends.
    pub limit: Limit,
    /// Operations before the measured part, not in any figure.
    pub warmup: Duration,
    /// Whether to write records `0..records` first (the YCSB load phase).
    pub load: bool,
    /// Longest scan, in records (a scan's length is uniform in `1..=max_scan_len`).
    pub max_scan_len: u64,
    /// Deadline of one operation; a later answer counts as an error.
    pub op_timeout: Duration,
    /// Seed of the clients' random choices (client `i` uses `seed + i`).
    pub seed: u64,
    /// How often to print progress on stderr (`None`: quiet).
    pub progress: Option<Duration>,
}

impl Default for RunSpec {
    fn default() -> RunSpec {
        RunSpec {
            workload: Workload::A,
            records: 1_000,
            value_size: 1_024,
            clients: 10,
            limit: Limit::Duration(Duration::from_secs(10)),
            warmup: Duration::from_secs(2),
            load: true,
            max_scan_len: 100,
            op_timeout: Duration::from_secs(5),
            seed: 1,
            progress: Some(Duration::from_secs(1)),
        }
    }
}

impl RunSpec {
    /// Refuses settings that cannot run.
    pub fn check(&self) -> Result<(), BenchError> {
        let bad = |what: &str| Err(BenchError::Spec(what.to_string()));
        if self.clients == 0 {
            return bad("--clients must be at least 1");
        }
        if self.records == 0 {
            return bad("--records must be at least 1");
        }
        if self.max_scan_len == 0 {
            return bad("--scan-length must be at least 1");
        }
        if self.op_timeout.is_zero() {
            return bad("--op-timeout must be positive");
        }
        match self.limit {
            Limit::Duration(d) if d.is_zero() => bad("--duration must be positive"),
            Limit::Operations(0) => bad("--operations must be at least 1"),
            _ => Ok(()),
        }
    }
}

/// Parses `10`, `10s`, `500ms`, `2m` or `1.5s` as a duration (plain numbers are seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 10s, 500ms or 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn impossible_settings_are_refused() {
        assert!(RunSpec::default().check().is_ok());
        let zero_clients = RunSpec {
            clients: 0,
            ..RunSpec::default()
        };
        assert!(zero_clients.check().is_err());
        let no_ops = RunSpec {
            limit: Limit::Operations(0),
            ..RunSpec::default()
        };
        assert!(no_ops.check().is_err());
    }
}
