//! Request metrics of the HTTP front door and their Prometheus text form
//! (exposition format 0.0.4), written by hand: counters per operation and status,
//! and a latency histogram per operation.

use super::traffic::{Traffic, TrafficPoint};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds of the latency histogram's buckets, in seconds.
pub(super) const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when rendered).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += secs;
    }
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    traffic: Traffic,
}

/// Counters and latency histograms of the requests one listener served, and
/// the last minutes of its store operations second by second ([`Traffic`]).
pub struct RequestMetrics {
    inner: Mutex<Inner>,
    started: Instant,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            inner: Mutex::default(),
            started: Instant::now(),
        }
    }
}

/// The operations that touch the store, the ones [`Traffic`] counts.
const STORE_OPS: [&str; 4] = ["get", "put", "delete", "clear"];

impl RequestMetrics {
    /// Records one request of operation `op` answered with `status` after `took`.
    pub fn record(&self, op: &'static str, status: u16, took: Duration) {
        let second = self.started.elapsed().as_secs();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.requests.entry((op, status)).or_default() += 1;
        let secs = took.as_secs_f64();
        inner.latency.entry(op).or_default().observe(secs);
        if STORE_OPS.contains(&op) {
            inner.traffic.record(second, secs);
        }
    }

    /// Store operations per second and their p99 over the last minutes, in
    /// points of `step` seconds, oldest first, up to the last whole second (the
    /// current one, still counting, would read as a drop).
    pub fn traffic(&self, step: u64) -> Vec<TrafficPoint> {
        let now = self.started.elapsed().as_secs().saturating_sub(1);
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.traffic.series(now, step)
    }

    /// How many requests of `op` were answered with `status`.
    pub fn count(&self, op: &'static str, status: u16) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.requests.get(&(op, status)).copied().unwrap_or(0)
    }

    /// Appends the metrics in Prometheus text form to `out`.
    pub fn render(&self, out: &mut String) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        header(
            out,
            "diskv_http_requests_total",
            "counter",
            "HTTP requests answered, by operation and status code.",
        );
        for ((op, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "diskv_http_requests_total{{op=\"{op}\",status=\"{status}\"}} {n}"
            );
        }
        header(
            out,
            "diskv_http_request_duration_seconds",
            "histogram",
            "Time from the request's arrival to its response, by operation.",
        );
        for (op, h) in &inner.latency {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "diskv_http_request_duration_seconds_bucket{{op=\"{op}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "diskv_http_request_duration_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "diskv_http_request_duration_seconds_sum{{op=\"{op}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "diskv_http_request_duration_seconds_count{{op=\"{op}\"}} {}",
                h.count
            );
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one metric without labels, with its `# HELP` and `# TYPE` lines.
pub fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = RequestMetrics::default();
        m.record("put", 200, Duration::from_micros(300));
        m.record("put", 200, Duration::from_millis(20));
        m.record("put", 400, Duration::from_secs(60));
        assert_eq!(m.count("put", 200), 2);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("diskv_http_requests_total{op=\"put\",status=\"200\"} 2\n"));
        assert!(out.contains("diskv_http_requests_total{op=\"put\",status=\"400\"} 1\n"));
        assert!(out
            .contains("diskv_http_request_duration_seconds_bucket{op=\"put\",le=\"0.0005\"} 1\n"));
        assert!(
            out.contains("diskv_http_request_duration_seconds_bucket{op=\"put\",le=\"0.025\"} 2\n")
        );
        assert!(
            out.contains("diskv_http_request_duration_seconds_bucket{op=\"put\",le=\"10\"} 2\n")
        );
        assert!(
            out.contains("diskv_http_request_duration_seconds_bucket{op=\"put\",le=\"+Inf\"} 3\n")
        );
        assert!(out.contains("diskv_http_request_duration_seconds_count{op=\"put\"} 3\n"));
        assert!(out.contains("# TYPE diskv_http_request_duration_seconds histogram\n"));
    }
}
