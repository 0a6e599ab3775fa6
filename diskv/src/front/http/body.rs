//! Reading a request body as a value: at most [`MAX_VALUE_BYTES`], UTF-8, and
//! arriving at a minimum rate ([`BodyRules`]).
//!
//! A body announced larger than the limit is refused before any of it is read; a
//! body without a length (chunked) is refused as soon as it crosses the limit. A
//! body that stops arriving, or trickles, is cut once it falls behind
//! [`BodyRules`]. Nothing is handed to the store until the whole body is in, so
//! a body that ends early is never stored.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use futures::StreamExt;
use std::time::Duration;
use tokio::time::Instant;

/// Largest value accepted (the store's one limit): a larger body is answered 413.
pub use crate::op::MAX_VALUE_BYTES;

/// How fast a body must arrive: by `grace + n / min_rate` after the request's
/// headers, its first `n` bytes must be in (`n` up to the whole body). So a
/// body of `len` bytes has at most `grace + len / min_rate` in all, and one that
/// stops, or trickles slower than `min_rate`, is cut once it falls behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyRules {
    /// Time every body gets before the rate counts (10 s).
    pub grace: Duration,
    /// Bytes per second a body must average after the grace (64 KiB/s; a body
    /// at the 16 MiB limit may take 10 s + 256 s).
    pub min_rate: u64,
}

impl Default for BodyRules {
    fn default() -> Self {
        BodyRules {
            grace: Duration::from_secs(10),
            min_rate: 64 << 10,
        }
    }
}

impl BodyRules {
    /// How long after the headers the first `received + 1` bytes may take.
    pub fn allowance(&self, received: usize) -> Duration {
        let rate = self.min_rate.max(1);
        let secs = received as u64 / rate;
        let nanos = (received as u64 % rate) * 1_000_000_000 / rate;
        self.grace + Duration::new(secs, nanos as u32)
    }
}

/// Why a body is not a value. `Display` is the body of the error response.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Above [`MAX_VALUE_BYTES`], announced or received.
    #[error("value is too large: the limit is 16 MiB ({MAX_VALUE_BYTES} bytes)")]
    TooLarge,
    /// Not UTF-8.
    #[error("value must be valid UTF-8")]
    NotUtf8,
    /// Fell behind [`BodyRules`].
    #[error(
        "request body too slow: {received} bytes in {waited:?}; a body gets {grace:?}, \
         then must arrive at {min_rate} bytes per second"
    )]
    TooSlow {
        /// Bytes received before the cut.
        received: usize,
        /// Time since the headers.
        waited: Duration,
        /// [`BodyRules::grace`].
        grace: Duration,
        /// [`BodyRules::min_rate`].
        min_rate: u64,
    },
    /// The connection failed or the framing was malformed (a client that hangs
    /// up before sending what it announced, a broken chunk).
    #[error("could not read the request body: {0}")]
    Broken(String),
}

impl BodyError {
    /// True if the rest of the body was left unread, so the connection cannot
    /// carry another request.
    pub fn leaves_body_unread(&self) -> bool {
        matches!(self, BodyError::TooLarge | BodyError::TooSlow { .. })
    }
}

/// The Content-Length of a request, if it has a valid one.
fn announced(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Reads `body` (announced by `headers`) as a UTF-8 value under `rules`.
pub async fn read_value(
    headers: &HeaderMap,
    body: Body,
    rules: &BodyRules,
) -> Result<String, BodyError> {
    if announced(headers).is_some_and(|n| n > MAX_VALUE_BYTES as u64) {
        return Err(BodyError::TooLarge);
    }
    let start = Instant::now();
    let mut stream = body.into_data_stream();
    let mut value = Vec::new();
    loop {
        let due = start + rules.allowance(value.len());
        let chunk = match tokio::time::timeout_at(due, stream.next()).await {
            Err(_) => {
                return Err(BodyError::TooSlow {
                    received: value.len(),
                    waited: start.elapsed(),
                    grace: rules.grace,
                    min_rate: rules.min_rate,
                })
            }
            Ok(None) => break,
            Ok(Some(chunk)) => chunk.map_err(|e| BodyError::Broken(e.to_string()))?,
        };
        if value.len() + chunk.len() > MAX_VALUE_BYTES {
            return Err(BodyError::TooLarge);
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value).map_err(|_| BodyError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_grows_with_the_bytes_received() {
        let r = BodyRules {
            grace: Duration::from_secs(10),
            min_rate: 1000,
        };
        assert_eq!(r.allowance(0), Duration::from_secs(10));
        assert_eq!(r.allowance(500), Duration::from_millis(10_500));
        assert_eq!(r.allowance(3000), Duration::from_secs(13));
        let d = BodyRules::default();
        assert_eq!(d.allowance(MAX_VALUE_BYTES), Duration::from_secs(10 + 256));
        let zero = BodyRules {
            grace: Duration::ZERO,
            min_rate: 0,
        };
        assert_eq!(zero.allowance(2), Duration::from_secs(2));
    }
}
