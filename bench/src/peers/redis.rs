//! Redis as a benchmark peer: [`RedisServer`] starts one `redis-server` (Debian's
//! `redis-server`, v7) as the single-node durable reference, [`RedisStore`] drives
//! it with the `redis` crate over tokio.
//!
//! Durability: `--appendonly yes --appendfsync always` (each write is in the
//! append-only file and fsynced before the reply; Redis fsyncs once per event-loop
//! round for all the writes of that round) and `--save ""` (no RDB snapshots).
//!
//! Scans: Redis has no ordered key space, so, like YCSB's Redis binding, every key
//! is also kept in one sorted-set index. YCSB scores keys by a hash and scans by
//! score; here all scores are 0 and the scan is `ZRANGE index [start [end BYLEX
//! LIMIT 0 n` (lexicographic, i.e. in key order, with inclusive bounds) followed by
//! one `MGET` of those keys: two round trips per scan. Insert and update both write
//! the value and `ZADD` the key in one `MULTI`/`EXEC` (one round trip; a `ZADD` of a
//! member already present changes nothing and adds nothing to the append-only file).

use super::daemon::{wait_ready, Daemon};
use super::{free_ports, temp_dir, PeerError, READY_TIMEOUT};
use crate::store::{OpFuture, Store, StoreClient, StoreError};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use std::time::Duration;

/// The Redis server program (Debian package `redis-server`).
const REDIS_SERVER: &str = "redis-server";
/// The sorted set that indexes every key for scans.
const INDEX: &str = "diskv-bench:index";
/// How long a client waits for one reply (the crate's default, 500 ms, is too short
/// for fsync-bound writes on a loaded machine).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// One durable `redis-server` on 127.0.0.1, killed (by pid) and its data removed
/// when dropped.
pub struct RedisServer {
    url: String,
    // Field order matters: the server is killed before its directory goes.
    _server: Daemon,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` with an fsync-always append-only file in a fresh
    /// directory and waits until it answers PING.
    pub async fn launch() -> Result<RedisServer, PeerError> {
        let dir = temp_dir("diskv-bench-redis-")?;
        let port = free_ports(1)?[0];
        let args = [
            "--bind".to_string(),
            "127.0.0.1".to_string(),
            "--port".to_string(),
            port.to_string(),
            "--dir".to_string(),
            dir.path().display().to_string(),
            "--appendonly".to_string(),
            "yes".to_string(),
            "--appendfsync".to_string(),
            "always".to_string(),
            "--save".to_string(),
            String::new(),
            "--daemonize".to_string(),
            "no".to_string(),
        ];
        let mut server = Daemon::spawn("redis", REDIS_SERVER, &args, dir.path())?;
        let url = format!("redis://127.0.0.1:{port}/");
        wait_ready(
            "redis-server",
            std::slice::from_mut(&mut server),
            READY_TIMEOUT,
            || answers_ping(&url),
        )
        .await?;
        tracing::info!(%url, "redis-server ready");
        Ok(RedisServer {
            url,
            _server: server,
            _dir: dir,
        })
    }

    /// A [`Store`] over this server.
    pub fn store(&self) -> RedisStore {
        RedisStore {
            url: self.url.clone(),
        }
    }
}

/// True when the server answers PING.
async fn answers_ping(url: &str) -> bool {
    let Ok(mut conn) = open(url).await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}

/// One connection to the server at `url`.
async fn open(url: &str) -> Result<MultiplexedConnection, StoreError> {
    let client = Client::open(url).map_err(store_error)?;
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(store_error)
}

/// A running Redis server as a benchmark store.
pub struct RedisStore {
    url: String,
}

impl Store for RedisStore {
    fn name(&self) -> String {
        "redis".to_string()
    }

    fn connect(&self) -> OpFuture<'_, Box<dyn StoreClient>> {
        Box::pin(async move {
            let conn = open(&self.url).await?;
            Ok(Box::new(RedisClient { conn }) as Box<dyn StoreClient>)
        })
    }
}

/// One benchmark client's connection.
struct RedisClient {
    conn: MultiplexedConnection,
}

impl StoreClient for RedisClient {
    fn read<'a>(&'a mut self, key: &'a str) -> OpFuture<'a, Option<String>> {
        Box::pin(async move {
            redis::cmd("GET")
                .arg(key)
                .query_async(&mut self.conn)
                .await
                .map_err(store_error)
        })
    }

    fn update<'a>(&'a mut self, key: &'a str, value: &'a str) -> OpFuture<'a, ()> {
        Box::pin(async move {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(key)
                .arg(value)
                .ignore()
                .cmd("ZADD")
                .arg(INDEX)
                .arg(0)
                .arg(key)
                .ignore()
                .query_async::<()>(&mut self.conn)
                .await
                .map_err(store_error)
        })
    }

    fn scan<'a>(
        &'a mut self,
        start: &'a str,
        end: &'a str,
        limit: usize,
    ) -> OpFuture<'a, Vec<(String, String)>> {
        Box::pin(async move {
            let keys: Vec<String> = redis::cmd("ZRANGE")
                .arg(INDEX)
                .arg(format!("[{start}"))
                .arg(format!("[{end}"))
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut self.conn)
                .await
                .map_err(store_error)?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut self.conn)
                .await
                .map_err(store_error)?;
            // A key indexed but without a value (none here: nothing deletes) is skipped.
            Ok(keys
                .into_iter()
                .zip(values)
                .filter_map(|(k, v)| Some((k, v?)))
                .collect())
        })
    }
}

/// Timeouts, broken connections and I/O failures are told apart from the server's
/// own error replies.
fn store_error(e: redis::RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreError::Connection(e.to_string())
    } else {
        StoreError::Store(e.to_string())
    }
}
