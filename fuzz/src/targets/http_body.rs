//! A request body as the HTTP API reads a value: `diskv::http::body::read_value`
//! over a body arriving in chunks, with or without a `Content-Length` header.
//!
//! Mode byte: `% 4` picks the header (none, the true length, a wrong length, one
//! above the drain limit); `/ 4` the chunk size (1 to 64 bytes). A value read is
//! exactly the body's bytes; an error is the one the bytes call for.

use crate::targets::{mode, with_mode};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use diskv::http::body::{read_value, BodyError, BodyRules, MAX_VALUE_BYTES};
use std::cell::RefCell;

thread_local! {
    /// One runtime per worker thread (the body reader needs a timer).
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Reads `data` as a body (see the module docs).
pub fn target(data: &[u8]) {
    let (m, body) = mode(data);
    let chunk = 1 + usize::from(m / 4);
    let mut headers = HeaderMap::new();
    let announced = match m % 4 {
        0 => None,
        1 => Some(body.len() as u64),
        2 => Some(body.len() as u64 / 2 + 1),
        _ => Some(u64::MAX),
    };
    if let Some(n) = announced {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    let stream = Body::from_stream(futures::stream::iter(chunks));
    let result = RUNTIME.with(|cell| {
        let mut rt = cell.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a tokio runtime")
        });
        rt.block_on(read_value(&headers, stream, &BodyRules::default()))
    });
    match result {
        Ok(value) => assert_eq!(value.as_bytes(), body, "the value is not the body"),
        Err(BodyError::NotUtf8) => assert!(std::str::from_utf8(body).is_err()),
        Err(BodyError::TooLarge) => {
            assert!(announced == Some(u64::MAX) || body.len() > MAX_VALUE_BYTES)
        }
        Err(e @ (BodyError::TooSlow { .. } | BodyError::Broken(_))) => {
            panic!("{e} for a body that arrived whole")
        }
    }
}

/// Bodies under each header, whole and in small chunks.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let body = "a value 😀 with\nlines".as_bytes();
    let mut seeds = Vec::new();
    for h in 0..4u8 {
        seeds.push((format!("header{h}-whole"), with_mode(h + 4 * 63, body)));
        seeds.push((format!("header{h}-chunks"), with_mode(h + 4 * 2, body)));
    }
    seeds.push(("not-utf8".into(), with_mode(1, b"\xff\xfe")));
    seeds.push(("empty".into(), with_mode(1, b"")));
    seeds
}
