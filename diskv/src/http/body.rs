//! Reading a request body as a value: at most [`MAX_VALUE_BYTES`], UTF-8, within
//! [`BODY_TIMEOUT`].

use axum::body::Body;
use axum::http::{header, HeaderMap};
use futures::StreamExt;
use std::time::Duration;

/// Largest value accepted (the store's one limit): a larger body is answered 413.
pub use crate::op::MAX_VALUE_BYTES;

/// An oversized body is read and thrown away up to this many bytes before the 413,
/// so that a client that sends its whole body before reading sees the answer
/// (closing a socket with unread data resets it). Past this the connection is
/// closed at once.
const DRAIN_LIMIT: usize = 64 << 20;

/// How long a client may take to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a body is not a value. `Display` is the body of the error response.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Above [`MAX_VALUE_BYTES`].
    #[error("value is too large: the limit is 16 MiB ({MAX_VALUE_BYTES} bytes)")]
    TooLarge,
    /// Not UTF-8.
    #[error("value must be valid UTF-8")]
    NotUtf8,
    /// Not received within [`BODY_TIMEOUT`].
    #[error("request body not received within {BODY_TIMEOUT:?}")]
    TooSlow,
    /// The connection failed or the framing was malformed.
    #[error("could not read the request body: {0}")]
    Broken(String),
}

/// Reads `body` (announced by `headers`) as a UTF-8 value.
pub async fn read_value(headers: &HeaderMap, body: Body) -> Result<String, BodyError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut stream = body.into_data_stream();
    let mut value = Vec::new();
    let mut total = 0usize;
    let read = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
            total += chunk.len();
            if total > DRAIN_LIMIT {
                return Err(BodyError::TooLarge);
            }
            if total <= MAX_VALUE_BYTES {
                value.extend_from_slice(&chunk);
            }
        }
        Ok(())
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .map_err(|_| BodyError::TooSlow)??;
    if total > MAX_VALUE_BYTES {
        return Err(BodyError::TooLarge);
    }
    String::from_utf8(value).map_err(|_| BodyError::NotUtf8)
}
