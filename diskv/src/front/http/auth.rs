//! Bearer tokens on the HTTP API ([`crate::front::access`]): when the front door has
//! a token file, every request but `GET /health` must carry
//! `Authorization: Bearer <token>`. Reads (GET, HEAD, and `/metrics` unless it
//! is left open) need a `read` token, everything else a `write` token. A
//! missing, unknown or revoked token is 401 with `WWW-Authenticate: Bearer`; a
//! read-only token asking to write is 403. The body says which.

use super::front::Front;
use crate::front::access::{Denied, Role};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The middleware: passes the request on, or answers 401/403.
pub async fn authorize(State(front): State<Arc<Front>>, req: Request, next: Next) -> Response {
    let opts = front.options();
    let Some(tokens) = &opts.tokens else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    // The dashboard's page holds no data (it asks for a token on a 401 from
    // `/ui/status.json`, which is checked like any read).
    if path == "/health" || path == "/ui" || (path == "/metrics" && opts.open_metrics) {
        return next.run(req).await;
    }
    let role = if read { Role::Read } else { Role::Write };
    match tokens.check(bearer(&req), role) {
        Ok(_) => next.run(req).await,
        Err(denied) => refusal(denied),
    }
}

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn refusal(denied: Denied) -> Response {
    let status = match denied {
        Denied::ReadOnly(_) => StatusCode::FORBIDDEN,
        Denied::Missing | Denied::Unknown | Denied::BadFile(_) => StatusCode::UNAUTHORIZED,
    };
    let mut r = (status, format!("{denied}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}
