//! How much work the checker may spend per key.

use std::time::Duration;

/// Limits on the work spent per key.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Search steps per key before giving up with [`super::CheckResult::Unknown`].
    pub max_steps: u64,
    /// Wall-clock time per key before giving up with [`super::CheckResult::Unknown`].
    pub max_time: Duration,
    /// Approximate bytes of search memory per key before giving up with
    /// [`super::CheckResult::Unknown`].
    pub max_memory: usize,
    /// Time spent shrinking a failing key's history for the explanation.
    pub explain_time: Duration,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            max_steps: 10_000_000,
            max_time: Duration::from_secs(10),
            max_memory: 1 << 30,
            explain_time: Duration::from_secs(2),
        }
    }
}
