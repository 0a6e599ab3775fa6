//! The Redis protocol (RESP2 and RESP3) front door: `diskv serve --resp ADDR`,
//! `diskv server --resp ADDR`, `diskv cluster --resp ADDR`, so `redis-cli` and
//! Redis client libraries work with diskv.
//!
//! It runs every store operation through the same [`ClerkPool`] as the HTTP
//! front door, so a single-key command has the Clerk's guarantees: routed to the
//! owning group, linearizable, applied exactly once under retries, and a write
//! answered `+OK` only once it is durable on a majority of the group. Commands
//! over several keys (DEL, EXISTS, MGET, MSET) are one operation per key and not
//! atomic across keys. README's "Redis protocol" section lists every command.
//!
//! The request path, one file per step:
//! - [`server`]: accept loop (connection limit, graceful stop) and the
//!   connection loop (pipelining, idle timeout);
//! - [`parse`]: bytes → commands, incremental and bounded;
//! - [`dispatch`] with [`commands`] (the table: names, arity, `COMMAND`), after
//!   [`auth`] (tokens: `AUTH`, and who may run what);
//! - [`admin`] (connection and server commands), [`single`] (the commands
//!   that are one operation on one key, which a pipeline batches), [`data`]
//!   (the store commands over several keys or all of them),
//!   [`args`] (which keys and values diskv can store), [`glob`] (`KEYS`/`MATCH`
//!   patterns), [`cursor`] (`SCAN` cursors);
//! - [`pipeline`]: a pipeline's run of single-key commands sent as one batch;
//! - [`reply`]: replies → bytes in RESP2 or RESP3;
//! - [`door`]: what connections share, and the options.
//!
//! [`ClerkPool`]: crate::front::http::pool::ClerkPool

pub mod admin;
pub mod args;
pub mod auth;
pub mod budget;
pub mod commands;
pub mod cursor;
pub mod data;
pub mod dispatch;
pub mod door;
pub mod glob;
pub mod parse;
pub mod pipeline;
pub mod reply;
pub mod server;
pub mod single;

pub use door::{Door, RespOptions};
pub use parse::{Decoder, Limits, ParseError};
pub use reply::{Protocol, Reply};
pub use server::{serve, spawn, Running};
