//! The last minutes of a listener's traffic, second by second, for the
//! dashboard's ops/s and p99 graphs: a ring of one-second slots, each with its
//! request count and latency histogram (the buckets of [`super::metrics`]).
//! Recording costs a few additions under the lock the metrics already take; no
//! task runs in the background.

use super::metrics::BUCKETS;
use serde::Serialize;

/// How many seconds the ring keeps.
pub const SPAN_SECS: u64 = 300;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// The second (since the listener started) this slot counts; slots of older
    /// seconds are stale and count as empty.
    second: u64,
    requests: u64,
    /// Requests at or below each bucket's bound (not cumulative); the last
    /// counts those above every bound.
    latency: [u64; BUCKETS.len() + 1],
}

/// Requests per second and their latency over the last [`SPAN_SECS`].
pub struct Traffic {
    slots: Box<[Slot]>,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            slots: vec![Slot::default(); SPAN_SECS as usize].into_boxed_slice(),
        }
    }
}

/// One point of the graphs: `step` seconds of traffic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrafficPoint {
    /// How many seconds before the last one counted the step ended.
    pub ago_secs: u64,
    /// Requests answered per second over the step.
    pub ops_per_sec: f64,
    /// The 99th percentile latency over the step, in milliseconds, as the upper
    /// bound of its histogram bucket (`None`: no request).
    pub p99_ms: Option<f64>,
}

impl Traffic {
    /// Counts one request answered in second `second` after `secs` seconds.
    pub fn record(&mut self, second: u64, secs: f64) {
        let slot = &mut self.slots[(second % SPAN_SECS) as usize];
        if slot.second != second {
            *slot = Slot {
                second,
                ..Slot::default()
            };
        }
        slot.requests += 1;
        let bucket = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        slot.latency[bucket] += 1;
    }

    /// The last [`SPAN_SECS`] up to second `now`, in points of `step` seconds,
    /// oldest first.
    pub fn series(&self, now: u64, step: u64) -> Vec<TrafficPoint> {
        let step = step.clamp(1, SPAN_SECS);
        (0..SPAN_SECS / step)
            .rev()
            .map(|k| {
                // A step that ends before second 0 (the listener's first
                // minutes) is empty, not second 0 over again.
                let end = now.checked_sub(k * step);
                let seconds = match end {
                    Some(end) => end.saturating_sub(step - 1)..=end,
                    #[allow(clippy::reversed_empty_ranges)]
                    None => 1..=0,
                };
                let mut requests = 0;
                let mut latency = [0u64; BUCKETS.len() + 1];
                for second in seconds {
                    let slot = &self.slots[(second % SPAN_SECS) as usize];
                    if slot.second == second && slot.requests > 0 {
                        requests += slot.requests;
                        for (sum, n) in latency.iter_mut().zip(slot.latency) {
                            *sum += n;
                        }
                    }
                }
                TrafficPoint {
                    ago_secs: k * step,
                    ops_per_sec: requests as f64 / step as f64,
                    p99_ms: p99(&latency, requests),
                }
            })
            .collect()
    }
}

/// The upper bound, in ms, of the bucket holding the 99th percentile.
fn p99(latency: &[u64], requests: u64) -> Option<f64> {
    if requests == 0 {
        return None;
    }
    let rank = (requests * 99).div_ceil(100);
    let mut seen = 0;
    for (i, n) in latency.iter().enumerate() {
        seen += n;
        if seen >= rank {
            // Above the last bound: report the last bound (a lower bound then).
            return Some(BUCKETS[i.min(BUCKETS.len() - 1)] * 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_p99_come_from_the_seconds_of_each_step() {
        let mut t = Traffic::default();
        for _ in 0..99 {
            t.record(100, 0.0004);
        }
        t.record(100, 0.2);
        for _ in 0..10 {
            t.record(101, 0.003);
        }
        let s = t.series(101, 2);
        assert_eq!(s.len(), (SPAN_SECS / 2) as usize);
        let last = s.last().unwrap();
        assert_eq!(last.ago_secs, 0);
        assert_eq!(last.ops_per_sec, 55.0);
        // 110 requests: the 99th percentile is the 109th, in the 5 ms bucket.
        assert_eq!(last.p99_ms, Some(5.0));
        assert_eq!(s[0].p99_ms, None, "nothing before");
        let by_second = t.series(101, 1);
        assert_eq!(by_second[by_second.len() - 2].p99_ms, Some(0.5));
        assert_eq!(by_second[by_second.len() - 2].ops_per_sec, 100.0);
    }

    #[test]
    fn a_slot_is_reused_after_a_full_turn_and_stale_slots_count_as_empty() {
        let mut t = Traffic::default();
        t.record(5, 0.001);
        t.record(5 + SPAN_SECS, 0.001);
        let s = t.series(5 + SPAN_SECS, 1);
        assert_eq!(s.iter().map(|p| p.ops_per_sec).sum::<f64>(), 1.0);
        // Long after: everything is stale.
        let later = t.series(10 * SPAN_SECS, 5);
        assert!(later.iter().all(|p| p.ops_per_sec == 0.0));
    }

    #[test]
    fn a_latency_above_every_bound_reports_the_last_bound() {
        let mut t = Traffic::default();
        t.record(0, 60.0);
        assert_eq!(t.series(0, 1).last().unwrap().p99_ms, Some(10_000.0));
    }

    /// Found by the attack on the dashboard: in a listener's first five minutes
    /// every point whose step lies before its start saturated to second 0 and
    /// counted second 0's requests again, so the graph showed traffic that never
    /// was (ten requests in second 0 read as ten in each of 59 points).
    #[test]
    fn attack_seconds_before_the_start_count_as_empty_not_as_second_zero() {
        let mut t = Traffic::default();
        for _ in 0..10 {
            t.record(0, 0.001);
        }
        let s = t.series(3, 5);
        let total: f64 = s.iter().map(|p| p.ops_per_sec * 5.0).sum();
        assert_eq!(total, 10.0, "requests counted more than once: {total}");
        assert_eq!(s.iter().filter(|p| p.p99_ms.is_some()).count(), 1);
    }
}
