//! The HTTP front door (docs/REFERENCE.md §1): one implementation shared by
//! `diskv serve` (one embedded node), `diskv server --http` and `diskv cluster`.
//!
//! Every request borrows a [`Clerk`](crate::Clerk) from a pool and runs one
//! operation through it, so the API has the Clerk's guarantees: routing by key to
//! the owning group, retries with the same sequence number, each operation applied
//! once, and a write answered only after its log instance is durable on a majority
//! of the group (a `200` survives `kill -9` the next instant).
//!
//! - [`key`]: which keys are accepted.
//! - [`host`]: the `Host` rule of HTTP/1.1; [`auth`]: bearer tokens.
//! - [`body`]: reading a value (16 MiB limit, UTF-8, minimum rate).
//! - [`pool`]: the Clerk pool and the operations.
//! - [`front`]: [`Front`], what the handlers share; readiness.
//! - [`routes`]: the router and handlers.
//! - [`metrics`], [`replica_metrics`]: `GET /metrics` in Prometheus text form.
//! - [`server`]: the accept loop with its limits and graceful shutdown ([`serve`]);
//!   [`per_ip`]: connections per client address; [`linger`]: closing after an
//!   answer that left a body unread.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use diskv::http::{serve, Front, FrontOptions};
//! use std::sync::Arc;
//! let front = Arc::new(Front::new(vec!["127.0.0.1:7000".into()], FrontOptions::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let ready = front.clone();
//! tokio::spawn(async move { ready.wait_ready().await });
//! serve(listener, front, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod auth;
pub mod body;
pub mod front;
pub mod host;
pub mod key;
pub mod linger;
pub mod metrics;
pub mod per_ip;
pub mod pool;
pub mod replica_metrics;
pub mod routes;
pub mod server;
pub mod traffic;
pub mod ui;

pub use body::{BodyRules, MAX_VALUE_BYTES};
pub use front::{Front, FrontOptions};
pub use server::{serve, serve_with, spawn, spawn_with, Running, ServeOptions};

#[cfg(test)]
mod abuse_tests;
#[cfg(test)]
mod tests;
