//! `diskv serve --resp` driven by real Redis clients: the `redis` crate (every
//! phase-1 command, a pipeline of 1,000 commands answered in order, Redis's error
//! forms, a value written over RESP read back over HTTP) and, when installed,
//! `redis-cli`; a pipeline is sent as batches.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use support::http::value;
use support::process::run_with_input;
use support::resp::{RespNode, CALL};

fn call<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// The error message of a command that must fail.
fn error(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(con) {
        Ok(v) => panic!("{args:?} answered {v:?}, not an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn redis_clients_read_and_write_diskv() {
    let root = tempfile::tempdir().unwrap();
    let node = RespNode::start(root.path());
    let mut con = node.connect();

    assert_eq!(call::<String>(&mut con, &["PING"]), "PONG");
    assert_eq!(call::<String>(&mut con, &["ECHO", "hi there"]), "hi there");
    assert_eq!(call::<String>(&mut con, &["SELECT", "0"]), "OK");

    // INFO describes the replica in this process: a one-replica group leads its log.
    let info: String = call(&mut con, &["INFO"]);
    for line in [
        "redis_version:7.0.0",
        "role:master",
        "diskv_paxos_role:leader",
        "aof_enabled:1",
    ] {
        assert!(
            info.lines().any(|l| l == line),
            "no {line:?} in INFO:\n{info}"
        );
    }
    let info: String = call(&mut con, &["INFO", "persistence"]);
    assert!(
        info.contains("diskv_storage_no_space:0") && !info.contains("# Server"),
        "{info}"
    );

    // SET / GET / GETSET / SET GET.
    assert_eq!(call::<String>(&mut con, &["SET", "user:1", "Ada"]), "OK");
    assert_eq!(
        call::<Option<String>>(&mut con, &["GET", "user:1"]).as_deref(),
        Some("Ada")
    );
    assert_eq!(call::<Option<String>>(&mut con, &["GET", "user:2"]), None);
    assert_eq!(
        call::<Option<String>>(&mut con, &["GETSET", "user:1", "Grace"]).as_deref(),
        Some("Ada")
    );
    assert_eq!(
        call::<Option<String>>(&mut con, &["SET", "user:1", "Hedy", "GET"]).as_deref(),
        Some("Grace")
    );
    assert_eq!(call::<i64>(&mut con, &["STRLEN", "user:1"]), 4);
    assert_eq!(call::<String>(&mut con, &["TYPE", "user:1"]), "string");
    assert_eq!(call::<String>(&mut con, &["TYPE", "user:2"]), "none");
    assert_eq!(call::<i64>(&mut con, &["TTL", "user:1"]), -1);
    assert_eq!(call::<i64>(&mut con, &["PTTL", "user:2"]), -2);

    // EXISTS / DEL count the keys that existed.
    call::<()>(&mut con, &["SET", "a", "1"]);
    call::<()>(&mut con, &["SET", "b", "2"]);
    assert_eq!(call::<i64>(&mut con, &["EXISTS", "a", "b", "c", "a"]), 3);
    assert_eq!(call::<i64>(&mut con, &["DEL", "a", "b", "c"]), 2);
    assert_eq!(call::<i64>(&mut con, &["UNLINK", "a"]), 0);
    assert_eq!(call::<i64>(&mut con, &["EXISTS", "a", "b"]), 0);

    // MSET / MGET.
    assert_eq!(
        call::<String>(&mut con, &["MSET", "m1", "x", "m2", "y"]),
        "OK"
    );
    assert_eq!(
        call::<Vec<Option<String>>>(&mut con, &["MGET", "m1", "nope", "m2"]),
        vec![Some("x".to_string()), None, Some("y".to_string())]
    );

    // INCR and friends: one replicated Incr each.
    assert_eq!(call::<i64>(&mut con, &["INCR", "n"]), 1);
    assert_eq!(call::<i64>(&mut con, &["INCRBY", "n", "41"]), 42);
    assert_eq!(call::<i64>(&mut con, &["DECR", "n"]), 41);
    assert_eq!(call::<i64>(&mut con, &["DECRBY", "n", "-9"]), 50);
    assert_eq!(
        call::<Option<String>>(&mut con, &["GET", "n"]).as_deref(),
        Some("50")
    );
    let e = error(&mut con, &["INCR", "m1"]);
    assert!(e.contains("value is not an integer or out of range"), "{e}");
    assert_eq!(
        call::<Option<String>>(&mut con, &["GET", "m1"]).as_deref(),
        Some("x"),
        "a refused INCR changes nothing"
    );

    // SETNX, SET NX/XX [GET], GETDEL, APPEND: one replicated operation each.
    assert_eq!(call::<i64>(&mut con, &["SETNX", "lock", "me"]), 1);
    assert_eq!(call::<i64>(&mut con, &["SETNX", "lock", "you"]), 0);
    assert_eq!(
        call::<Option<String>>(&mut con, &["SET", "lock", "you", "NX"]),
        None
    );
    assert_eq!(
        call::<Option<String>>(&mut con, &["SET", "lock", "you", "NX", "GET"]).as_deref(),
        Some("me"),
        "NX GET answers the old value and writes nothing"
    );
    assert_eq!(
        call::<Option<String>>(&mut con, &["SET", "gone", "v", "XX"]),
        None
    );
    assert_eq!(call::<Option<String>>(&mut con, &["GET", "gone"]), None);
    assert_eq!(
        call::<Option<String>>(&mut con, &["SET", "lock", "him", "XX"]).as_deref(),
        Some("OK")
    );
    assert_eq!(
        call::<Option<String>>(&mut con, &["GETDEL", "lock"]).as_deref(),
        Some("him")
    );
    assert_eq!(call::<Option<String>>(&mut con, &["GETDEL", "lock"]), None);
    assert_eq!(call::<i64>(&mut con, &["APPEND", "log", "héllo"]), 6);
    assert_eq!(call::<i64>(&mut con, &["APPEND", "log", " you"]), 10);
    assert_eq!(
        call::<Option<String>>(&mut con, &["GET", "log"]).as_deref(),
        Some("héllo you")
    );
    let e = error(&mut con, &["SET", "k", "v", "EX", "10"]);
    assert!(e.contains("never expire"), "{e}");
    let e = error(&mut con, &["SET", "k", "v", "NX", "XX"]);
    assert!(e.contains("syntax error"), "{e}");

    // A value written over RESP reads back byte-exact over HTTP.
    let text = "héllo wörld 😀\t ";
    call::<()>(&mut con, &["SET", "resp:greeting", text]);
    assert_eq!(value(&node.http, "resp:greeting").as_deref(), Some(text));

    // SCAN walks the ordered key space; KEYS matches a pattern.
    call::<()>(&mut con, &["FLUSHDB"]);
    assert_eq!(call::<i64>(&mut con, &["DBSIZE"]), 0);
    let mut want: Vec<String> = (0..25).map(|i| format!("scan:{i:02}")).collect();
    for k in &want {
        call::<()>(&mut con, &["SET", k, "v"]);
    }
    call::<()>(&mut con, &["SET", "other", "v"]);
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    for _ in 0..100 {
        let (next, keys): (String, Vec<String>) = call(
            &mut con,
            &["SCAN", &cursor, "MATCH", "scan:*", "COUNT", "7"],
        );
        seen.extend(keys);
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0", "SCAN did not finish in 100 calls");
    assert_eq!(seen, want);
    let mut keys: Vec<String> = call(&mut con, &["KEYS", "scan:1?"]);
    keys.sort();
    assert_eq!(keys, want[10..20].to_vec());
    assert_eq!(call::<i64>(&mut con, &["DBSIZE"]), 26);
    assert_eq!(call::<String>(&mut con, &["FLUSHALL"]), "OK");
    assert_eq!(
        call::<Vec<String>>(&mut con, &["KEYS", "*"]),
        Vec::<String>::new()
    );
    want.clear();

    // Errors in Redis's own words; the connection carries on after each.
    let e = error(&mut con, &["NOSUCH", "a", "b"]);
    assert!(
        e.contains("unknown command 'NOSUCH', with args beginning with: 'a' 'b'"),
        "{e}"
    );
    let e = error(&mut con, &["GET"]);
    assert!(
        e.contains("wrong number of arguments for 'get' command"),
        "{e}"
    );
    let e = error(&mut con, &["SET", "bad key", "v"]);
    assert!(
        e.contains("invalid key: key contains invalid characters"),
        "{e}"
    );
    let e = error(&mut con, &["SELECT", "1"]);
    assert!(e.contains("DB index is out of range"), "{e}");
    assert_eq!(call::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn a_pipeline_of_1000_commands_is_answered_in_order() {
    let root = tempfile::tempdir().unwrap();
    let node = RespNode::start(root.path());
    let mut con = node.connect();
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET")
            .arg(format!("pipe:{}", i % 20))
            .arg(format!("v{i}"));
        pipe.cmd("GET").arg(format!("pipe:{}", i % 20));
    }
    let replies: Vec<redis::Value> = pipe.query(&mut con).unwrap();
    assert_eq!(replies.len(), 1000);
    for (i, pair) in replies.chunks(2).enumerate() {
        let got: String = redis::from_redis_value(pair[1].clone()).unwrap();
        assert_eq!(got, format!("v{i}"), "reply {} out of order", 2 * i + 1);
    }

    // Inline commands and RESP3 on a raw socket.
    let mut raw = TcpStream::connect(&node.resp).unwrap();
    raw.set_read_timeout(Some(CALL)).unwrap();
    raw.write_all(b"PING\r\nHELLO 3\r\nGET nope\r\nQUIT\r\n")
        .unwrap();
    let mut got = Vec::new();
    raw.read_to_end(&mut got).unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("+PONG\r\n%7\r\n$6\r\nserver\r\n$5\r\ndiskv\r\n"),
        "{got}"
    );
    assert!(
        got.ends_with("_\r\n+OK\r\n"),
        "RESP3 null, then QUIT: {got}"
    );
}

#[test]
fn redis_cli_works_when_installed() {
    let Some(cli) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("redis-cli"))
            .find(|p| p.is_file())
    }) else {
        println!("redis-cli is not installed (Debian package redis-tools); skipping this test");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let node = RespNode::start(root.path());
    let port = node.resp.rsplit_once(':').unwrap().1;
    let out = run_with_input(
        cli.to_str().unwrap(),
        ["-h", "127.0.0.1", "-p", port],
        Some(b"SET cli:k hello\nGET cli:k\nNOSUCH\nDEL cli:k\nGET cli:k\n".to_vec()),
        CALL,
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(out.status.is_some(), "redis-cli did not finish: {all}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["OK", "hello"], "{all}");
    assert!(all.contains("unknown command 'NOSUCH'"), "{all}");
    assert_eq!(lines[lines.len() - 2..], ["1", ""], "{all}");
}

/// `examples/redis-py/quickstart.py`, the README's Python example, run against
/// `diskv serve --resp` with redis-py (installed by `.ci/run`).
#[test]
fn the_redis_py_example_runs_when_installed() {
    let has_redis_py = run_with_input("python3", ["-c", "import redis"], None, CALL)
        .status
        .is_some_and(|s| s.success());
    if !has_redis_py {
        println!("redis-py is not installed (pip install redis); skipping this test");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let node = RespNode::start(root.path());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/redis-py/quickstart.py"
    );
    let out = run_with_input("python3", [script, node.resp.as_str()], None, CALL);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(out.status.is_some_and(|s| s.success()), "{all}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "GET greeting -> hello",
            "INCR visits -> 1",
            "SET lock NX -> True",
            "SET lock NX -> None",
            "APPEND log -> 5",
            "GETDEL lock -> me",
            "10 pipelined INCR -> 11",
        ],
        "{all}"
    );
}

/// The KV replica's applied log index, from `/metrics`.
fn applied_index(node: &RespNode) -> u64 {
    let metrics = support::http::request(&node.http, "GET", "/metrics", b"")
        .unwrap()
        .text();
    metrics
        .lines()
        .find(|l| l.starts_with("diskv_rsm_applied_index"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no diskv_rsm_applied_index in\n{metrics}"))
}

/// A pipeline's run of single-key commands is one batch: 300 pipelined
/// commands (INCRs, GETs that must see the INCR before them, a refusal in the
/// middle) take a handful of log instances, not one per write, and every
/// reply is the one the commands' order gives.
#[test]
fn a_pipeline_is_sent_as_batches_in_order() {
    let root = tempfile::tempdir().unwrap();
    let node = RespNode::start(root.path());
    let mut con = node.connect();
    let _: String = redis::cmd("SET")
        .arg("warm")
        .arg("1")
        .query(&mut con)
        .unwrap();
    let before = applied_index(&node);
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for i in 0..100 {
        pipe.cmd("INCR").arg("batch:ctr");
        pipe.cmd("GET").arg("batch:ctr");
        if i == 50 {
            pipe.cmd("GET").arg("bad\nkey");
        } else {
            pipe.cmd("APPEND").arg("batch:log").arg("x");
        }
    }
    let replies: Vec<redis::RedisResult<redis::Value>> = pipe.query(&mut con).unwrap();
    assert_eq!(replies.len(), 300);
    let mut appended = 0;
    for (i, three) in replies.chunks(3).enumerate() {
        let n = i as i64 + 1;
        assert_eq!(
            redis::from_redis_value::<i64>(three[0].as_ref().unwrap().clone()).unwrap(),
            n,
            "INCR {i}"
        );
        assert_eq!(
            redis::from_redis_value::<String>(three[1].as_ref().unwrap().clone()).unwrap(),
            n.to_string(),
            "the GET after INCR {i} sees it"
        );
        if i == 50 {
            let e = three[2].as_ref().unwrap_err().to_string();
            assert!(e.contains("invalid key"), "{e}");
        } else {
            appended += 1;
            assert_eq!(
                redis::from_redis_value::<i64>(three[2].as_ref().unwrap().clone()).unwrap(),
                appended
            );
        }
    }
    let used = applied_index(&node) - before;
    assert!(
        used <= 20,
        "199 writes took {used} log instances: the pipeline was not batched"
    );
    let ctr: i64 = redis::cmd("GET").arg("batch:ctr").query(&mut con).unwrap();
    assert_eq!(ctr, 100);
}
