//! The interface every store under benchmark implements.
//!
//! A [`Store`] is one system under test (a diskv cluster, an etcd cluster, a Redis
//! server). Each benchmark client calls [`Store::connect`] once and then drives its own
//! [`StoreClient`] sequentially, so a client is one outstanding operation at a time, as in
//! YCSB. Keys and values are strings (diskv's values are UTF-8).

use std::future::Future;
use std::pin::Pin;

/// A boxed future borrowed from the client for the duration of one operation.
pub type OpFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why an operation failed. The driver counts errors per operation type; it does not retry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or the connection broke.
    #[error("connection: {0}")]
    Connection(String),
    /// The store answered with an error.
    #[error("store error: {0}")]
    Store(String),
    /// The operation did not finish within the driver's deadline.
    #[error("timed out")]
    Timeout,
}

/// One system under test.
pub trait Store: Send + Sync {
    /// A short label for tables and plots, e.g. `diskv 1x3`, `etcd 3`, `redis`.
    fn name(&self) -> String;
    /// Opens one client's connection (called once per benchmark client).
    fn connect(&self) -> OpFuture<'_, Box<dyn StoreClient>>;
}

/// One benchmark client's connection; operations are issued one at a time.
pub trait StoreClient: Send {
    /// Reads a key (YCSB read). `None` when the key does not exist.
    fn read<'a>(&'a mut self, key: &'a str) -> OpFuture<'a, Option<String>>;
    /// Overwrites a key (YCSB update).
    fn update<'a>(&'a mut self, key: &'a str, value: &'a str) -> OpFuture<'a, ()>;
    /// Writes a new key (YCSB insert); for these stores the same as an update.
    fn insert<'a>(&'a mut self, key: &'a str, value: &'a str) -> OpFuture<'a, ()> {
        self.update(key, value)
    }
    /// Up to `limit` records with keys in `[start, end]` (inclusive), sorted by key
    /// (YCSB scan; the driver picks `end` so the range holds about `limit` records).
    fn scan<'a>(
        &'a mut self,
        start: &'a str,
        end: &'a str,
        limit: usize,
    ) -> OpFuture<'a, Vec<(String, String)>>;
}
