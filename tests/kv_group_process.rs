//! One KV replica group as users run it: a `diskv shardmaster` process, three
//! `diskv server` processes and `diskv client` processes speaking the line protocol
//! of docs/REFERENCE.md §4, with SIGKILL and `--restart`.

mod support;

use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};
use support::kv_group::Group;
use support::line_client::{wait_serving, Client};
use support::random_crashes::{random_crashes_run, Faults};
use support::seed::{seed, Rng};

#[test]
fn client_protocol() {
    let g = Group::start(3);
    let mut c = g.client("proto");
    wait_serving(&mut c);

    assert_eq!(c.req("PUT a 1"), "PUT a not_found");
    assert_eq!(c.req("PUT a 2"), "PUT a found");
    assert_eq!(c.req("GET a"), "GET a 2");
    assert_eq!(c.req("APPEND b x"), "APPEND b not_found");
    assert_eq!(c.req("APPEND b y"), "APPEND b found");
    assert_eq!(c.req("GET b"), "GET b xy");
    assert_eq!(c.req("SWAP c new"), "SWAP c null");
    assert_eq!(c.req("SWAP c newer"), "SWAP c new");
    assert_eq!(c.req("GET c"), "GET c newer");
    assert_eq!(c.req("GET nope"), "GET nope null");
    assert_eq!(c.req("DELETE nope"), "DELETE nope not_found");
    assert_eq!(c.req("PUT d 4"), "PUT d not_found");
    assert_eq!(c.req("DELETE d"), "DELETE d found");
    assert_eq!(c.req("GET d"), "GET d null");
    assert_eq!(c.req("PUT e 5"), "PUT e not_found");

    // SCAN: inclusive bounds, sorted, deleted keys absent.
    c.send("SCAN a c");
    assert_eq!(c.recv(), "SCAN a c BEGIN");
    assert_eq!(c.recv(), "  a 2");
    assert_eq!(c.recv(), "  b xy");
    assert_eq!(c.recv(), "  c newer");
    assert_eq!(c.recv(), "SCAN END");
    c.send("SCAN x z");
    assert_eq!(c.recv(), "SCAN x z BEGIN");
    assert_eq!(c.recv(), "SCAN END");
    c.send("SCAN a z");
    assert_eq!(c.recv(), "SCAN a z BEGIN");
    for want in ["  a 2", "  b xy", "  c newer", "  e 5"] {
        assert_eq!(c.recv(), want);
    }
    assert_eq!(c.recv(), "SCAN END");

    // Malformed lines: an ERROR, and the client carries on.
    for bad in ["PUT k", "FOO", "GET", "GET a b", "put a 1", "STOP now"] {
        let r = c.req(bad);
        assert!(r.starts_with("ERROR "), "{bad:?} answered {r:?}");
        assert!(r.len() > "ERROR ".len(), "{bad:?}: no reason in {r:?}");
    }
    assert_eq!(c.req("GET a"), "GET a 2", "the client carries on");
    assert_eq!(
        c.req("PUT k v"),
        "PUT k not_found",
        "'PUT k' changed nothing"
    );

    c.send("STOP");
    assert_eq!(c.recv(), "STOP");
    let status = c
        .wait_exit(Duration::from_secs(10))
        .expect("client did not exit after STOP");
    assert!(status.success(), "client exited with {status}");
    // Nothing else on stdout: the reader sees end of file with no further line.
    match c.next_line(Duration::from_secs(5)) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("after STOP: {other:?}"),
    }
}

#[test]
fn basic_persistence() {
    let mut g = Group::start(3);
    let mut c = g.client("writer");
    wait_serving(&mut c);
    let keys: Vec<(String, String)> = (0..10)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    for (k, v) in &keys {
        assert_eq!(c.req(&format!("PUT {k} {v}")), format!("PUT {k} not_found"));
    }
    assert_eq!(c.req("APPEND k0 +"), "APPEND k0 found");
    drop(c);

    for i in 0..3 {
        g.kill9(i);
    }
    let mut bg = g.client("background");
    bg.send("GET k3");
    assert_eq!(
        bg.try_recv(Duration::from_secs(2)),
        None,
        "a GET answered with every replica dead"
    );
    for i in 0..3 {
        g.spawn(i, true);
    }
    assert_eq!(bg.recv(), "GET k3 v3");
    for (k, v) in &keys {
        let v = if k == "k0" {
            format!("{v}+")
        } else {
            v.clone()
        };
        assert_eq!(bg.req(&format!("GET {k}")), format!("GET {k} {v}"));
    }
}

#[test]
fn one_restart() {
    let mut g = Group::start(3);
    let mut c = g.client("appender");
    wait_serving(&mut c);
    let mut want = String::new();
    let mut n = 0;
    let mut append = |c: &mut Client, want: &mut String| {
        let tok = format!("t{n};");
        n += 1;
        let r = c.req(&format!("APPEND log {tok}"));
        assert!(r.starts_with("APPEND log "), "{r}");
        want.push_str(&tok);
    };
    for _ in 0..10 {
        append(&mut c, &mut want);
    }
    for victim in [0, 2] {
        g.kill9(victim);
        for _ in 0..10 {
            append(&mut c, &mut want);
        }
        g.spawn(victim, true);
        for _ in 0..10 {
            append(&mut c, &mut want);
        }
    }
    assert_eq!(c.req("GET log"), format!("GET log {want}"));
    // The restarted replicas caught up: kill the others so only they can answer
    // together with one survivor.
    g.kill9(1);
    for _ in 0..5 {
        append(&mut c, &mut want);
    }
    assert_eq!(c.req("GET log"), format!("GET log {want}"));
}

#[test]
fn concurrent_crash_reliable() {
    let mut g = Group::start(3);
    let mut warm = g.client("warm");
    wait_serving(&mut warm);
    drop(warm);

    const CLIENTS: usize = 4;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    for ci in 0..CLIENTS {
        let mut c = g.client(&format!("c{ci}"));
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut j = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let tok = format!("c{ci}.{j};");
                // Shared key for clients 0 and 1; own key for the others.
                let key = if ci < 2 {
                    "shared".to_string()
                } else {
                    format!("own{ci}")
                };
                let r = c.req(&format!("APPEND {key} {tok}"));
                assert!(r.starts_with(&format!("APPEND {key} ")), "{r}");
                acked.push(tok);
                j += 1;
            }
            acked
        }));
    }

    let mut rng = Rng::new(seed("concurrent_crash_reliable"), 0);
    let mut kills = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let victim = (rng.next() % 3) as usize;
        g.kill9(victim);
        kills += 1;
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 400));
        g.spawn(victim, true);
        std::thread::sleep(Duration::from_millis(700));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<Vec<String>> = handles
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect();

    let mut c = g.client("checker");
    let get = |c: &mut Client, key: &str| -> Vec<String> {
        let r = c.req(&format!("GET {key}"));
        let v = r
            .strip_prefix(&format!("GET {key} "))
            .unwrap_or_else(|| panic!("{r}"));
        v.split(';')
            .filter(|s| !s.is_empty())
            .map(|s| format!("{s};"))
            .collect()
    };
    let shared = get(&mut c, "shared");
    for (ci, acked_by_ci) in acked.iter().enumerate().take(2) {
        let mine: Vec<String> = shared
            .iter()
            .filter(|t| t.starts_with(&format!("c{ci}.")))
            .cloned()
            .collect();
        assert_eq!(&mine, acked_by_ci, "client {ci} on the shared key");
    }
    assert_eq!(shared.len(), acked[0].len() + acked[1].len());
    for (ci, acked_by_ci) in acked.iter().enumerate().skip(2) {
        assert_eq!(
            &get(&mut c, &format!("own{ci}")),
            acked_by_ci,
            "client {ci}"
        );
    }
    let total: usize = acked.iter().map(Vec::len).sum();
    eprintln!("concurrent_crash_reliable: {total} acknowledged appends, {kills} SIGKILLs");
    assert!(total >= CLIENTS * 5, "too few appends got through: {total}");
}

fn dir_size(p: &Path) -> u64 {
    let mut sum = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                sum += dir_size(&e.path());
            } else {
                sum += md.len();
            }
        }
    }
    sum
}

fn list_files(p: &Path) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                list_files(&e.path());
            } else {
                eprintln!("disk_use: {} {}", e.path().display(), md.len());
            }
        }
    }
}

#[test]
fn disk_use() {
    let g = Group::start(3);
    let mut c = g.client("disk");
    wait_serving(&mut c);
    // ~1.1 KB of live values: one 1,000-byte value overwritten, plus small keys.
    let keys = ["big"];
    for k in ["s1", "s2", "s3"] {
        c.req(&format!("PUT {k} small"));
    }
    for round in 0..110 {
        for k in keys {
            // 1,000-byte values, different each round.
            let v: String =
                std::iter::repeat_n(char::from(b'a' + (round % 26) as u8), 1000).collect();
            let r = c.req(&format!("PUT {k} {v}"));
            assert!(r.starts_with(&format!("PUT {k} ")), "{r}");
        }
    }
    let last: String = std::iter::repeat_n(char::from(b'a' + (109 % 26) as u8), 1000).collect();
    assert_eq!(c.req("GET big"), format!("GET big {last}"));
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..3 {
        list_files(&g.dir(i));
    }
    let total: u64 = (0..3).map(|i| dir_size(&g.dir(i))).sum();
    eprintln!(
        "disk_use: replica dirs {:?} = {total} bytes",
        (0..3).map(|i| dir_size(&g.dir(i))).collect::<Vec<_>>()
    );
    assert!(
        total < 20_000,
        "three replica directories hold {total} bytes after 110 rounds of 1,000-byte Puts"
    );
}

/// 6.824 AppendUse: n Appends of 1,000-byte values to one key; once the group is idle,
/// the three replica directories together hold under 3·n·1000 + 20,000 bytes.
#[test]
fn append_use() {
    const N: usize = 120;
    let g = Group::start(3);
    let mut c = g.client("append-use");
    wait_serving(&mut c);
    let mut want = String::with_capacity(N * 1000);
    for round in 0..N {
        // 1,000 bytes, different each round: a 4-digit round number, then filler.
        let fill = char::from(b'a' + (round % 26) as u8);
        let mut v = format!("{round:04}");
        v.extend(std::iter::repeat_n(fill, 1000 - 4));
        assert_eq!(v.len(), 1000);
        let r = c.req(&format!("APPEND k {v}"));
        let exp = if round == 0 {
            "APPEND k not_found"
        } else {
            "APPEND k found"
        };
        assert_eq!(r, exp, "round {round}");
        want.push_str(&v);
    }
    let got = c.req("GET k");
    assert!(
        got == format!("GET k {want}"),
        "the value is not the {N} appends in order (got {} bytes, want {})",
        got.len(),
        want.len() + "GET k ".len()
    );
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..3 {
        list_files(&g.dir(i));
    }
    let sizes: Vec<u64> = (0..3).map(|i| dir_size(&g.dir(i))).collect();
    let total: u64 = sizes.iter().sum();
    let bound = (3 * N * 1000 + 20_000) as u64;
    eprintln!("append_use: n={N}, replica dirs {sizes:?} = {total} bytes (bound {bound})");
    assert!(
        total < bound,
        "three replica directories hold {total} bytes ({sizes:?}) after {N} Appends of \
         1,000 bytes; AppendUse allows under {bound}"
    );
}

#[test]
fn random_crashes_are_linearizable() {
    let seed = seed("random_crashes_are_linearizable");
    // The two runs are independent groups; run them side by side to bound the time.
    let run = |unreliable| {
        std::thread::spawn(move || {
            random_crashes_run(
                Faults {
                    unreliable,
                    disk_loss_percent: 0,
                },
                seed,
            )
        })
    };
    let reliable = run(false);
    let unreliable = run(true);
    let r = reliable.join();
    let u = unreliable.join();
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
    if let Err(e) = u {
        std::panic::resume_unwind(e);
    }
}
