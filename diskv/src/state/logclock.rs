//! Log time: the clock the duplicate table's expiry runs on.
//!
//! Every command a leader proposes carries a time stamp (`at_ms`), and the state
//! machine's clock is the highest stamp applied: every replica sees the same
//! stamps in the same order, so expiry happens at the same instance everywhere.
//! The stamps must not come from the wall clock: a leader whose wall clock jumps
//! forward by more than the duplicate table's time to live would expire every
//! client at once, and a client's retried write, already applied, would be
//! applied again (the simulator found exactly that). So a proposer stamps the
//! log time it has applied plus the time its *monotonic* clock says has passed
//! since — log time runs at the speed of real time, whatever the wall clocks do.
//!
//! An anchor is trusted for [`ANCHOR_MAX_AGE_MS`] only. Log time does not count
//! the time a group sat idle or without a leader (a new proposer anchors at the
//! applied time), so a proposer holding an old anchor would otherwise put the
//! whole gap into one stamp when it proposes again: log time would jump by an
//! idle hour in one command and expire a client whose retry is a second old
//! (found in review). With fresh anchors, a stamp exceeds the log time this
//! proposer saw applied by at most the anchor's age, so between any two commands
//! log time advances by at most the real time between them plus that age plus
//! the time a command is in flight. Re-anchoring only ever slows log time down,
//! which keeps duplicate entries longer, never shorter.

/// How long an anchor is trusted before the proposer anchors again at the log
/// time it has applied.
pub const ANCHOR_MAX_AGE_MS: u64 = 1_000;

/// The stamps one proposer puts on its commands.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogClock {
    /// A log time this proposer saw applied, and its monotonic clock (ms) at
    /// that moment.
    anchor: Option<(u64, u64)>,
}

impl LogClock {
    /// The stamp for a command proposed now: `applied_ms` is the log time of the
    /// local state, `monotonic_ms` this process's monotonic clock.
    pub fn stamp(&mut self, applied_ms: u64, monotonic_ms: u64) -> u64 {
        if let Some((log, at)) = self.anchor {
            let age = monotonic_ms.saturating_sub(at);
            let ours = log.saturating_add(age);
            if age <= ANCHOR_MAX_AGE_MS && ours >= applied_ms {
                return ours;
            }
        }
        self.anchor = Some((applied_ms, monotonic_ms));
        applied_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_time_runs_with_the_monotonic_clock_from_the_applied_time() {
        let mut c = LogClock::default();
        assert_eq!(c.stamp(5_000, 100), 5_000);
        assert_eq!(c.stamp(5_000, 350), 5_250);
        // Another leader pushed log time further: follow it.
        assert_eq!(c.stamp(9_000, 400), 9_000);
        assert_eq!(c.stamp(9_000, 500), 9_100);
        // A monotonic clock never goes back; if it did, the stamp would not.
        assert_eq!(c.stamp(9_000, 450), 9_050);
    }

    #[test]
    fn an_old_anchor_is_not_trusted() {
        let mut c = LogClock::default();
        assert_eq!(c.stamp(10_000, 0), 10_000);
        // An hour later, log time has moved by a second only (the group was idle,
        // another proposer stamped): no jump of an hour.
        assert_eq!(c.stamp(11_000, 3_600_000), 11_000);
        assert_eq!(c.stamp(11_000, 3_600_400), 11_400);
    }
}
