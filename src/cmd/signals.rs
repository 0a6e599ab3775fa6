//! SIGTERM and SIGINT, watched from the moment [`Signals::new`] returns (unlike a
//! future made later, no signal sent during start-up is missed or kills the process
//! with the default action).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Watches SIGTERM and SIGINT.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Starts watching both signals.
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves at the next SIGTERM or SIGINT; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
