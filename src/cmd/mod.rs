//! One module per subcommand: an `Args` struct (clap) and an async `run`.

pub mod admin;
pub mod bench;
pub mod certs;
pub mod client;
pub mod cluster;
pub mod front_door;
pub mod restore;
pub mod serve;
pub mod server;
pub mod shardmaster;
pub mod signals;
pub mod status;
pub mod tls;
pub mod token;

/// Binds `--resp ADDR`, if given (before anything starts, so a busy port fails
/// first).
pub(crate) async fn bind_resp(
    addr: Option<&str>,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    use anyhow::Context;
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--resp)"))?;
    Ok(Some(listener))
}

/// Serves the Redis protocol on `listener`, if bound, through `pool` (the HTTP
/// front door's, where the process has one) with `opts` (tokens, TLS); `local`
/// is the KV replica running in this process, if any, for `INFO replication`.
pub(crate) fn spawn_resp(
    listener: Option<tokio::net::TcpListener>,
    pool: &std::sync::Arc<diskv::http::pool::ClerkPool>,
    local: Option<std::sync::Arc<diskv::KvServer>>,
    opts: diskv::resp::RespOptions,
) -> anyhow::Result<Option<diskv::resp::Running>> {
    let Some(listener) = listener else {
        return Ok(None);
    };
    let mut door = diskv::resp::Door::new(pool.clone(), opts);
    if let Some(server) = local {
        door = door.with_local(server);
    }
    let resp = diskv::resp::spawn(listener, door)?;
    tracing::info!(addr = %resp.local_addr(), "Redis protocol listening");
    Ok(Some(resp))
}

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
