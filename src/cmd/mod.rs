//! One module per subcommand: an `Args` struct (clap) and an async `run`.

pub mod admin;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod serve;
pub mod server;
pub mod shardmaster;
pub mod signals;
pub mod stable_ports;

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
