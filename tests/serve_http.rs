//! `diskv serve` as users run it (docs/REFERENCE.md §1): every endpoint, status code,
//! body and content type against a real process, plus concurrency, byte-exact
//! values, limits and misbehaving clients.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::http::{delete, get, must_put, put, raw, request, value, Response, ServeNode};
use support::process::{diskv_bin, reserve_addrs, wait_for, Process};

const TEXT: &str = "text/plain; charset=utf-8";

#[track_caller]
fn expect(r: &Response, status: u16, body: &str) {
    assert_eq!(r.status, status, "body: {:?}", r.text());
    assert_eq!(r.message(), body);
    if !r.body.is_empty() {
        assert_eq!(r.header("content-type"), Some(TEXT));
    }
}

#[test]
fn put_get_delete_and_their_errors() {
    let root = tempfile::tempdir().unwrap();
    let node = ServeNode::start(root.path());
    let a = node.addr.as_str();

    let r = put(a, "kenya:capital", "Nairobi");
    assert_eq!(r.status, 200);
    let r = get(a, "kenya:capital");
    expect(&r, 200, "Nairobi");
    assert_eq!(r.body, b"Nairobi", "byte-exact, no newline added");
    must_put(a, "kenya:capital", "Nairobi!");
    assert_eq!(value(a, "kenya:capital").as_deref(), Some("Nairobi!"));

    expect(&get(a, "missing"), 404, "key not found");
    expect(
        &request(a, "GET", "/kv/", b"").unwrap(),
        400,
        "key cannot be empty",
    );
    expect(
        &request(a, "PUT", "/kv/", b"v").unwrap(),
        400,
        "key cannot be empty",
    );
    expect(
        &request(a, "DELETE", "/kv/", b"").unwrap(),
        400,
        "key cannot be empty",
    );
    expect(&put(a, "k", ""), 400, "value cannot be empty");

    // Keys are case-sensitive.
    must_put(a, "Case", "upper");
    must_put(a, "case", "lower");
    assert_eq!(value(a, "Case").as_deref(), Some("upper"));
    assert_eq!(value(a, "case").as_deref(), Some("lower"));

    // DELETE is 200 whether or not the key existed.
    assert_eq!(delete(a, "case").status, 200);
    assert_eq!(delete(a, "case").status, 200);
    assert_eq!(delete(a, "never-there").status, 200);
    assert_eq!(value(a, "case"), None);
    assert_eq!(value(a, "Case").as_deref(), Some("upper"));
}

#[test]
fn keys_outside_the_alphabet_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let node = ServeNode::start(root.path());
    let a = node.addr.as_str();
    for key in [
        "a%20b",
        "a/b",
        "%C3%A9",
        "%F0%9F%98%80",
        "a%2Fb",
        "a+b",
        "a,b",
        "a%00",
        "%FF",
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let r = request(a, method, &format!("/kv/{key}"), b"v").unwrap();
            expect(&r, 400, "key contains invalid characters");
        }
    }
    // Every allowed character, and a percent-encoded allowed character.
    let all = "AZaz09:_.-";
    must_put(a, all, "ok");
    assert_eq!(value(a, all).as_deref(), Some("ok"));
    assert_eq!(value(a, "%41z").as_deref(), None);
    must_put(a, "%41z", "encoded");
    assert_eq!(value(a, "Az").as_deref(), Some("encoded"));
}

#[test]
fn clear_removes_every_key() {
    let root = tempfile::tempdir().unwrap();
    let node = ServeNode::start(root.path());
    let a = node.addr.as_str();
    for i in 0..30 {
        must_put(a, &format!("k{i}"), &format!("v{i}"));
    }
    let r = request(a, "DELETE", "/clear", b"").unwrap();
    assert_eq!(r.status, 200);
    for i in 0..30 {
        assert_eq!(value(a, &format!("k{i}")), None);
    }
    must_put(a, "after", "clear");
    assert_eq!(value(a, "after").as_deref(), Some("clear"));
}

#[test]
fn values_are_stored_byte_exact() {
    let root = tempfile::tempdir().unwrap();
    let node = ServeNode::start(root.path());
    let a = node.addr.as_str();
    let long: String = (0..10_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let values = [
        "trailing spaces   ".to_string(),
        "trailing tabs\t\t".to_string(),
        "  leading and inner   spaces ".to_string(),
        "emoji 😀🎉 and accents éàü".to_string(),
        "line\nbreaks\r\nand\0nul".to_string(),
        "\n".to_string(),
        " ".to_string(),
        long,
        "😀".repeat(2_500),
    ];
    for (i, v) in values.iter().enumerate() {
        must_put(a, &format!("v{i}"), v);
    }
    for (i, v) in values.iter().enumerate() {
        let r = get(a, &format!("v{i}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, v.as_bytes(), "value {i}");
    }
    for len in [1, 50, 100, 105] {
        let key = "k".repeat(len - 1) + ":";
        must_put(a, &key, &format!("len {len}"));
        assert_eq!(value(a, &key), Some(format!("len {len}")));
    }
}

#[test]
fn concurrent_puts_all_land() {
    let root = tempfile::tempdir().unwrap();
    let node = ServeNode::start(root.path());
    let addr = node.addr.clone();
    let start = Instant::now();
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                must_put(&addr, &format!("key-{i}"), &format!("value-{i}"));
                must_put(&addr, "shared", &format!("writer-{i}"));
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a writer panicked");
    }
    eprintln!("200 concurrent PUTs in {:?}", start.elapsed());
    for i in 0..100 {
        assert_eq!(
            value(&addr, &format!("key-{i}")),
            Some(format!("value-{i}"))
        );
    }
    let last = value(&addr, "shared").expect("shared was written");
    let n: usize = last
        .strip_prefix("writer-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected value {last:?}"));
    assert!(n < 100);
}

#[test]
fn wrong_methods_unknown_paths_and_size_limits() {
    let root = tempfile::tempdir().unwrap();
    let node = ServeNode::start(root.path());
    let a = node.addr.as_str();
    for (method, path) in [
        ("POST", "/kv/x"),
        ("PATCH", "/kv/x"),
        ("OPTIONS", "/kv/x"),
        ("POST", "/kv/"),
        ("GET", "/clear"),
        ("PUT", "/clear"),
        ("POST", "/clear"),
        ("POST", "/health"),
        ("DELETE", "/health"),
        ("PUT", "/metrics"),
    ] {
        let r = request(a, method, path, b"").unwrap();
        expect(&r, 405, "method not allowed");
        assert!(
            r.header("allow").is_some(),
            "{method} {path}: no Allow header"
        );
    }
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/kvx"),
        ("GET", "/clear/x"),
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("GET", "/health/x"),
    ] {
        let r = request(a, method, path, b"").unwrap();
        expect(&r, 404, "not found");
    }

    // 16 MiB is the limit: one byte more is 413, the limit itself is stored.
    let limit = 16 << 20;
    let r = request(a, "PUT", "/kv/big", &vec![b'x'; limit + 1]).unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.message().contains("16 MiB"), "{}", r.text());
    assert_eq!(value(a, "big"), None);
    // Refused on its Content-Length alone, without the client sending the body.
    let r = raw(
        a,
        b"PUT /kv/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 413);
    let big = "y".repeat(limit);
    must_put(a, "big", &big);
    assert_eq!(get(a, "big").body.len(), limit);

    // Bodies must be UTF-8.
    let r = request(a, "PUT", "/kv/bin", &[0x66, 0xff, 0xfe, 0x00]).unwrap();
    expect(&r, 400, "value must be valid UTF-8");
    assert_eq!(value(a, "bin"), None);
}

#[test]
fn health_metrics_and_stdout() {
    let root = tempfile::tempdir().unwrap();
    let mut node = ServeNode::start(root.path());
    let a = node.addr.clone();
    let r = request(&a, "GET", "/health", b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(TEXT));
    must_put(&a, "m", "1");
    assert_eq!(value(&a, "m").as_deref(), Some("1"));
    expect(&get(&a, "absent"), 404, "key not found");
    let r = request(&a, "GET", "/metrics", b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let m = r.text();
    for needle in [
        "diskv_http_requests_total{op=\"put\",status=\"200\"} 1\n",
        "diskv_http_requests_total{op=\"get\",status=\"404\"} 1\n",
        "diskv_http_request_duration_seconds_bucket{op=\"put\",le=\"+Inf\"} 1\n",
        "diskv_paxos_is_leader 1\n",
        "diskv_paxos_fsyncs_total ",
        "diskv_keys 1\n",
        "diskv_http_ready 1\n",
    ] {
        assert!(m.contains(needle), "no {needle:?} in\n{m}");
    }
    // stdout holds exactly the two contract lines.
    let out = node.process().stdout();
    let data = node.data.display().to_string();
    assert_eq!(
        out,
        format!("Server listening on {a}\nLoaded 0 keys from {data}\n")
    );
    node.sigterm();
}

#[test]
fn data_dir_defaults_to_the_environment() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("from-env");
    let addr = reserve_addrs(1).remove(0);
    let mut p = Process::spawn_with(
        "serve-env",
        &root.path().join("logs"),
        diskv_bin(),
        ["serve", "--listen", &addr],
        |c| {
            c.env("DATA_DIR", &data);
        },
    );
    let want = format!("Loaded 0 keys from {}", data.display());
    wait_for(Duration::from_secs(30), "serve ready", || {
        assert!(p.is_running(), "exited:\n{}", p.stderr_tail(20));
        p.stdout().contains(&want).then_some(())
    });
    assert!(data.join("group-1").join("identity").exists());
    must_put(&addr, "k", "v");
    p.sigterm();
    let status = p.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn malformed_and_slow_clients_do_not_hurt_others() {
    let root = tempfile::tempdir().unwrap();
    let node = ServeNode::start(root.path());
    let a = node.addr.as_str();
    must_put(a, "k", "before");

    // Garbage instead of a request line: a 4xx or a closed connection, no crash.
    if let Ok(r) = raw(a, b"HELLO THERE\r\n\r\n") {
        assert!((400..500).contains(&r.status), "{r:?}");
    }
    let _ = raw(a, b"\x00\x01\x02\xff\r\n\r\n");
    let _ = raw(
        a,
        b"PUT /kv/k HTTP/1.1\r\nContent-Length: nope\r\n\r\nvalue",
    );
    // A chunked body is a body like any other.
    let r = raw(
        a,
        b"PUT /kv/chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(value(a, "chunked").as_deref(), Some("abcde"));

    // Slow clients: one stuck mid-headers, one stuck mid-body, one that hangs up
    // mid-body. Others are served meanwhile.
    let mut stuck_head = TcpStream::connect(a).unwrap();
    stuck_head
        .write_all(b"GET /kv/k HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut stuck_body = TcpStream::connect(a).unwrap();
    stuck_body
        .write_all(b"PUT /kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        .unwrap();
    {
        let mut gone = TcpStream::connect(a).unwrap();
        gone.write_all(b"PUT /kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
            .unwrap();
    }
    let start = Instant::now();
    must_put(a, "k2", "during");
    assert_eq!(
        value(a, "k").as_deref(),
        Some("before"),
        "a partial PUT changed the key"
    );
    assert_eq!(value(a, "k2").as_deref(), Some("during"));
    assert!(start.elapsed() < Duration::from_secs(5));

    // The stalled request-head is answered or closed by the server eventually.
    stuck_head
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = stuck_head.read_to_end(&mut buf);
    drop(stuck_body);
    assert_eq!(value(a, "k").as_deref(), Some("before"));
}
