//! The `Host` rule of HTTP/1.1 (RFC 9112 §3.2): a request must carry exactly
//! one `Host` header. HTTP/1.0 requests need none.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Why a request's `Host` is refused. `Display` is the body of the 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostError {
    /// HTTP/1.1 without `Host`.
    #[error("an HTTP/1.1 request must carry a Host header")]
    Missing,
    /// More than one `Host`.
    #[error("a request must carry one Host header, not {0}")]
    Several(usize),
}

/// Checks the `Host` headers of a request of `version`.
pub fn check_host(version: Version, hosts: usize) -> Result<(), HostError> {
    match hosts {
        0 if version >= Version::HTTP_11 => Err(HostError::Missing),
        0 | 1 => Ok(()),
        n => Err(HostError::Several(n)),
    }
}

/// Middleware: answers 400 (and closes: the body is not read) to a request whose
/// `Host` headers break the rule.
pub async fn require_host(req: Request, next: Next) -> Response {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    match check_host(req.version(), hosts) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::debug!(error = %e, version = ?req.version(), "request refused");
            let mut r = (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http11_needs_exactly_one_host() {
        assert_eq!(check_host(Version::HTTP_11, 1), Ok(()));
        assert_eq!(check_host(Version::HTTP_11, 0), Err(HostError::Missing));
        assert_eq!(check_host(Version::HTTP_11, 2), Err(HostError::Several(2)));
        assert_eq!(check_host(Version::HTTP_10, 0), Ok(()));
        assert_eq!(check_host(Version::HTTP_10, 2), Err(HostError::Several(2)));
    }
}
