//! The routes of the HTTP API (docs/REFERENCE.md §1) and their handlers.
//!
//! | route | methods | answer |
//! |---|---|---|
//! | `/kv/{key}` | GET, PUT, DELETE | the value (or 404), 200, 200 |
//! | `/kv/`, `/kv` | GET, PUT, DELETE | 400 `key cannot be empty` |
//! | `/clear` | DELETE | 200 once every key is gone |
//! | `/health` | GET | 200 once recovery finished, else 503 |
//! | `/metrics` | GET | Prometheus text |
//! | `/ui`, `/ui/status.json` | GET | the dashboard ([`super::ui`]) |
//!
//! Other methods on these paths get 405 with an `Allow` header, other paths 404.
//! Every response but the dashboard's carries `Content-Type: text/plain; charset=utf-8`; an error body
//! is the message and one newline. An HTTP/1.1 request without exactly one `Host`
//! is 400 ([`super::host`]). A body over the limit is 413, one that falls behind
//! the [`BodyRules`] 408; both close the connection (the rest of the body is not
//! read).

use super::body::{read_value, BodyError, BodyRules};
use super::front::Front;
use super::host::require_host;
use super::key::{validate_key, KeyError};
use super::pool::PoolError;
use crate::op::Op;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, MethodRouter};
use axum::Extension;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

type Shared = State<Arc<Front>>;

type Rules = Extension<BodyRules>;

/// The router of the API over `front`, with request metrics; request bodies are
/// read under `rules`.
pub fn router(front: Arc<Front>, rules: BodyRules) -> Router {
    let kv = get(get_key)
        .put(put_key)
        .delete(delete_key)
        .fallback(|| async { not_allowed("GET, HEAD, PUT, DELETE") });
    let no_key: MethodRouter<Arc<Front>> = get(empty_key)
        .put(empty_key)
        .delete(empty_key)
        .fallback(|| async { not_allowed("GET, HEAD, PUT, DELETE") });
    Router::new()
        .route("/kv/{*key}", kv)
        .route("/kv/", no_key.clone())
        .route("/kv", no_key)
        .route(
            "/clear",
            delete(clear).fallback(|| async { not_allowed("DELETE") }),
        )
        .route(
            "/health",
            get(health).fallback(|| async { not_allowed("GET, HEAD") }),
        )
        .route(
            "/metrics",
            get(metrics).fallback(|| async { not_allowed("GET, HEAD") }),
        )
        .route(
            "/ui",
            get(super::ui::page).fallback(|| async { not_allowed("GET, HEAD") }),
        )
        .route(
            "/ui/status.json",
            get(super::ui::status).fallback(|| async { not_allowed("GET, HEAD") }),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(Extension(rules))
        .layer(middleware::from_fn_with_state(
            front.clone(),
            super::auth::authorize,
        ))
        .layer(middleware::from_fn(require_host))
        .layer(middleware::from_fn_with_state(front.clone(), track))
        .with_state(front)
}

/// A `text/plain; charset=utf-8` response.
fn text(status: StatusCode, body: String) -> Response {
    (status, body).into_response()
}

/// An error response: the message and one newline.
fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    text(status, format!("{message}\n"))
}

fn not_allowed(allow: &'static str) -> Response {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The key of a `/kv/{key}` request, or why it is refused (a 400).
fn checked_key(key: Result<Path<String>, PathRejection>) -> Result<String, KeyError> {
    // A path that does not decode to UTF-8 cannot hold a valid key.
    let Ok(Path(key)) = key else {
        return Err(KeyError::InvalidCharacters);
    };
    validate_key(&key)?;
    Ok(key)
}

fn bad_key(e: KeyError) -> Response {
    error(StatusCode::BAD_REQUEST, e)
}

fn store_error(e: PoolError) -> Response {
    let status = match e {
        PoolError::Invalid(_) => StatusCode::BAD_REQUEST,
        PoolError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        PoolError::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
        PoolError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        PoolError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::warn!(status = status.as_u16(), error = %e, "store operation failed");
    error(status, e)
}

async fn get_key(State(front): Shared, key: Result<Path<String>, PathRejection>) -> Response {
    let key = match checked_key(key) {
        Ok(k) => k,
        Err(e) => return bad_key(e),
    };
    match front.execute(Op::Get { key }).await {
        Ok(Some(value)) => text(StatusCode::OK, value),
        Ok(None) => error(StatusCode::NOT_FOUND, "key not found"),
        Err(e) => store_error(e),
    }
}

async fn put_key(
    State(front): Shared,
    key: Result<Path<String>, PathRejection>,
    Extension(rules): Rules,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Read the body first, even for a bad key, so that the connection can carry
    // the next request.
    let value = read_value(&headers, body, &rules).await;
    let key = match checked_key(key) {
        Ok(k) => k,
        Err(e) => return bad_key(e),
    };
    let value = match value {
        Ok(v) if v.is_empty() => return error(StatusCode::BAD_REQUEST, "value cannot be empty"),
        Ok(v) => v,
        Err(e) => return body_error(e),
    };
    match front.execute(Op::Put { key, value }).await {
        Ok(_) => text(StatusCode::OK, String::new()),
        Err(e) => store_error(e),
    }
}

fn body_error(e: BodyError) -> Response {
    let status = match e {
        BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::NotUtf8 | BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        BodyError::TooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
    };
    tracing::debug!(status = status.as_u16(), error = %e, "request body refused");
    let mut r = error(status, &e);
    if e.leaves_body_unread() {
        // The rest of the body is not read: the connection cannot carry another request.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

async fn delete_key(State(front): Shared, key: Result<Path<String>, PathRejection>) -> Response {
    let key = match checked_key(key) {
        Ok(k) => k,
        Err(e) => return bad_key(e),
    };
    match front.execute(Op::Delete { key }).await {
        Ok(_) => text(StatusCode::OK, String::new()),
        Err(e) => store_error(e),
    }
}

async fn empty_key(
    Extension(rules): Rules,
    headers: HeaderMap,
    method: Method,
    body: Body,
) -> Response {
    let mut r = error(StatusCode::BAD_REQUEST, "key cannot be empty");
    let unread = method == Method::PUT
        && matches!(read_value(&headers, body, &rules).await, Err(e) if e.leaves_body_unread());
    if unread {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

async fn clear(State(front): Shared) -> Response {
    match front.execute(Op::Clear).await {
        Ok(_) => text(StatusCode::OK, String::new()),
        Err(e) => store_error(e),
    }
}

async fn health(State(front): Shared) -> Response {
    if !front.is_ready() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: recovery has not finished",
        );
    }
    match front.storage_failure() {
        Some(advice) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {advice}"),
        ),
        None => text(StatusCode::OK, "ok\n".into()),
    }
}

async fn metrics(State(front): Shared) -> Response {
    let mut r = text(StatusCode::OK, front.render_metrics());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// The metric label of a request.
fn operation(method: &Method, path: &str) -> &'static str {
    let kv = path == "/kv" || path.starts_with("/kv/");
    match (method, path) {
        (&Method::GET | &Method::HEAD, _) if kv => "get",
        (&Method::PUT, _) if kv => "put",
        (&Method::DELETE, _) if kv => "delete",
        (&Method::DELETE, "/clear") => "clear",
        (_, "/health") => "health",
        (_, "/metrics") => "metrics",
        (_, "/ui" | "/ui/status.json") => "ui",
        _ => "other",
    }
}

/// Middleware: times every request and counts it by operation and status.
async fn track(State(front): Shared, req: Request, next: Next) -> Response {
    let op = operation(req.method(), req.uri().path());
    let start = Instant::now();
    let resp = next.run(req).await;
    let took = start.elapsed();
    let status = resp.status().as_u16();
    front.metrics().record(op, status, took);
    tracing::debug!(op, status, micros = took.as_micros() as u64, "request");
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_labelled() {
        assert_eq!(operation(&Method::GET, "/kv/a"), "get");
        assert_eq!(operation(&Method::PUT, "/kv/a"), "put");
        assert_eq!(operation(&Method::DELETE, "/kv"), "delete");
        assert_eq!(operation(&Method::DELETE, "/clear"), "clear");
        assert_eq!(operation(&Method::POST, "/kv/a"), "other");
        assert_eq!(operation(&Method::GET, "/kvx"), "other");
        assert_eq!(operation(&Method::GET, "/health"), "health");
    }
}
