//! The trace of a run: one line per notable event, kept only when asked for (a
//! replayed failing seed), so sweeps stay fast.

use crate::clock::Time;

/// Where trace lines go.
#[derive(Default)]
pub struct Trace {
    on: bool,
    lines: Vec<String>,
}

impl Trace {
    /// A trace that keeps lines if `on`.
    pub fn new(on: bool) -> Self {
        Trace {
            on,
            lines: Vec::new(),
        }
    }

    /// True if lines are kept (callers skip formatting otherwise).
    pub fn on(&self) -> bool {
        self.on
    }

    /// Records `what` happened at `now` to `who`.
    pub fn note(&mut self, now: Time, who: &str, what: impl FnOnce() -> String) {
        if self.on {
            self.lines.push(format!(
                "{:>7}.{:03} ms {who:<8} {}",
                now / 1000,
                now % 1000,
                what()
            ));
        }
    }

    /// The lines kept.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}
