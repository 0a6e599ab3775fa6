//! Connections to KV replicas, opened lazily and reused; a failed one is dropped
//! and opened again on next use.

use crate::rpc::KvRpcClient;
use paxos::transport::{codec, mux};
use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A cache of RPC clients by address.
#[derive(Default)]
pub struct Connections {
    clients: Mutex<HashMap<String, KvRpcClient>>,
}

impl Connections {
    /// The client for `addr`, connecting if needed.
    pub async fn get(&self, addr: &str) -> io::Result<KvRpcClient> {
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(addr)
        {
            return Ok(c.clone());
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, mux::connect(addr, mux::CLIENT))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {addr} timed out"),
                )
            })??;
        let client =
            KvRpcClient::new(tarpc::client::Config::default(), codec::framed(stream)).spawn();
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// Forgets the connection to `addr` (after an error on it).
    pub fn drop_conn(&self, addr: &str) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(addr);
    }
}

/// A tarpc context with a deadline `timeout` from now.
pub fn deadline(timeout: Duration) -> tarpc::context::Context {
    let mut ctx = tarpc::context::current();
    ctx.deadline = std::time::Instant::now() + timeout;
    ctx
}
