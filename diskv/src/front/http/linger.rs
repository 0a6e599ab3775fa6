//! Closing a connection whose request body was left unread (a 413, a 408, a
//! refusal) without losing the answer.
//!
//! Closing a TCP socket that still holds unread bytes makes the kernel reset the
//! connection, and a reset can destroy the response before the client reads it
//! (a client that sends its whole body before reading would see "connection reset"
//! instead of the 413). So the server half-closes (the client sees the whole
//! answer, then end of stream) and reads and discards what the client still sends
//! for a bounded time and number of bytes, then closes.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a refused client may go on sending before the connection is closed.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// How many bytes a refused client may go on sending before the connection is
/// closed (a little more than a whole body at the value limit).
pub const LINGER_BYTES: usize = 20 << 20;

/// Sends end-of-stream to the client, then discards what it still sends until
/// it closes, [`LINGER_TIME`] passes or [`LINGER_BYTES`] arrive. Returns the
/// number of bytes discarded.
pub async fn close_lingering<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> usize {
    close_lingering_within(stream, LINGER_TIME, LINGER_BYTES).await
}

/// [`close_lingering`] with explicit bounds.
pub async fn close_lingering_within<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    time: Duration,
    bytes: usize,
) -> usize {
    let _ = stream.shutdown().await;
    let mut scratch = vec![0u8; 64 << 10];
    let mut discarded = 0usize;
    let drain = async {
        while discarded <= bytes {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(time, drain).await;
    discarded
}
