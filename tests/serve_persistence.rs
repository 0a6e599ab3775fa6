//! `diskv serve` keeps every acknowledged write across restarts: the five
//! scenarios of the persistence stage, each once with a clean stop (SIGTERM: exit 0
//! within 5 s) and once with SIGKILL right after the last acknowledgement.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use support::http::{delete, must_put, request, value, ServeNode};

/// How the node is stopped before each restart.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Term,
    Kill,
}

fn stop(node: &mut ServeNode, how: Stop) {
    match how {
        Stop::Term => node.sigterm(),
        Stop::Kill => node.kill9(),
    }
}

/// Asserts the node holds exactly `expected` among `keys`.
#[track_caller]
fn check(node: &ServeNode, expected: &BTreeMap<String, Option<String>>) {
    for (k, v) in expected {
        assert_eq!(&value(&node.addr, k), v, "key {k}");
    }
}

fn overwrite_and_delete(how: Stop) {
    let root = tempfile::tempdir().unwrap();
    let mut node = ServeNode::start(root.path());
    let a = node.addr.clone();
    must_put(&a, "kenya:capital", "Nairobi");
    must_put(&a, "germany:capital", "Berlin");
    must_put(&a, "germany:capital", "Berlin (since 1990)");
    must_put(&a, "france:capital", "Paris");
    assert_eq!(delete(&a, "france:capital").status, 200);
    stop(&mut node, how);
    assert_eq!(node.restart(), 2, "Loaded N keys");
    let expected = BTreeMap::from([
        ("kenya:capital".to_string(), Some("Nairobi".to_string())),
        (
            "germany:capital".to_string(),
            Some("Berlin (since 1990)".to_string()),
        ),
        ("france:capital".to_string(), None),
    ]);
    check(&node, &expected);
}

fn repeated_restarts(how: Stop) {
    let root = tempfile::tempdir().unwrap();
    let mut node = ServeNode::start(root.path());
    let mut expected = BTreeMap::new();
    for cycle in 0..4 {
        for i in 0..5 {
            let (k, v) = (format!("c{cycle}:k{i}"), format!("v{cycle}.{i}"));
            must_put(&node.addr, &k, &v);
            expected.insert(k, Some(v));
        }
        // Change something written in an earlier cycle too.
        if cycle > 0 {
            let k = format!("c{}:k0", cycle - 1);
            assert_eq!(delete(&node.addr, &k).status, 200);
            expected.insert(k, None);
        }
        stop(&mut node, how);
        let loaded = node.restart();
        assert_eq!(loaded, expected.values().flatten().count(), "cycle {cycle}");
        check(&node, &expected);
    }
}

fn sequential_writes(how: Stop) {
    let root = tempfile::tempdir().unwrap();
    let mut node = ServeNode::start(root.path());
    let start = Instant::now();
    let val = |i: usize| format!("{i:05}:{}", "x".repeat(1018));
    for i in 0..500 {
        must_put(&node.addr, &format!("seq:{i}"), &val(i));
    }
    eprintln!("500 sequential 1 KB PUTs in {:?}", start.elapsed());
    stop(&mut node, how);
    assert_eq!(node.restart(), 500);
    for i in 0..500 {
        assert_eq!(value(&node.addr, &format!("seq:{i}")), Some(val(i)));
    }
}

fn concurrent_writes(how: Stop) {
    let root = tempfile::tempdir().unwrap();
    let mut node = ServeNode::start(root.path());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    // 1,000 PUTs, 50 in flight: 50 writers with 20 PUTs each.
    let writers: Vec<_> = (0..50)
        .map(|w| {
            let (addr, acked) = (node.addr.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..20 {
                    let k = format!("conc:{w}:{i}");
                    must_put(&addr, &k, &format!("{w}-{i}"));
                    acked.lock().unwrap().push(k);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("a writer panicked");
    }
    eprintln!("1,000 PUTs, 50 in flight, in {:?}", start.elapsed());
    stop(&mut node, how);
    assert_eq!(node.restart(), 1000);
    let acked = acked.lock().unwrap();
    assert_eq!(acked.len(), 1000);
    for k in acked.iter() {
        let (w, i) = k["conc:".len()..].split_once(':').unwrap();
        assert_eq!(value(&node.addr, k), Some(format!("{w}-{i}")));
    }
}

fn clear_survives(how: Stop) {
    let root = tempfile::tempdir().unwrap();
    let mut node = ServeNode::start(root.path());
    for i in 0..20 {
        must_put(&node.addr, &format!("old:{i}"), "x");
    }
    assert_eq!(
        request(&node.addr, "DELETE", "/clear", b"").unwrap().status,
        200
    );
    must_put(&node.addr, "new", "after clear");
    stop(&mut node, how);
    assert_eq!(node.restart(), 1);
    for i in 0..20 {
        assert_eq!(value(&node.addr, &format!("old:{i}")), None);
    }
    assert_eq!(value(&node.addr, "new").as_deref(), Some("after clear"));
}

#[test]
fn sigterm_overwrites_and_deletes_survive() {
    overwrite_and_delete(Stop::Term);
}

#[test]
fn sigterm_four_restart_cycles() {
    repeated_restarts(Stop::Term);
}

#[test]
fn sigterm_500_sequential_writes() {
    sequential_writes(Stop::Term);
}

#[test]
fn sigterm_1000_concurrent_writes() {
    concurrent_writes(Stop::Term);
}

#[test]
fn sigterm_clear_survives() {
    clear_survives(Stop::Term);
}

#[test]
fn sigkill_overwrites_and_deletes_survive() {
    overwrite_and_delete(Stop::Kill);
}

#[test]
fn sigkill_four_restart_cycles() {
    repeated_restarts(Stop::Kill);
}

#[test]
fn sigkill_500_sequential_writes() {
    sequential_writes(Stop::Kill);
}

#[test]
fn sigkill_1000_concurrent_writes() {
    concurrent_writes(Stop::Kill);
}

#[test]
fn sigkill_clear_survives() {
    clear_survives(Stop::Kill);
}

/// SIGTERM while 20 writers keep writing: requests in flight finish, the node exits
/// 0 within 5 s, and every acknowledged write is there after the restart.
#[test]
fn sigterm_during_writes_keeps_every_acknowledged_write() {
    let root = tempfile::tempdir().unwrap();
    let mut node = ServeNode::start(root.path());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..20)
        .map(|w| {
            let (addr, acked) = (node.addr.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let k = format!("w{w}:{i}");
                    // Refused connections and cut responses end the writer; only a
                    // 200 counts as acknowledged.
                    match request(&addr, "PUT", &format!("/kv/{k}"), k.as_bytes()) {
                        Ok(r) if r.status == 200 => acked.lock().unwrap().push(k),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    support::process::wait_until(
        std::time::Duration::from_secs(30),
        "some writes acknowledged",
        || acked.lock().unwrap().len() >= 200,
    );
    node.sigterm();
    for w in writers {
        w.join().expect("a writer panicked");
    }
    let acked = acked.lock().unwrap().clone();
    let loaded = node.restart();
    assert!(
        loaded >= acked.len(),
        "loaded {loaded} < acked {}",
        acked.len()
    );
    for k in &acked {
        assert_eq!(value(&node.addr, k).as_deref(), Some(k.as_str()));
    }
}

/// A data directory whose group lost its files (the shardmaster still knows the
/// group) is refused loudly, never served empty.
#[test]
fn a_lost_group_directory_is_refused_not_served_empty() {
    let root = tempfile::tempdir().unwrap();
    let mut node = ServeNode::start(root.path());
    must_put(&node.addr, "precious", "data");
    node.sigterm();
    std::fs::remove_dir_all(node.data.join("group-1")).unwrap();
    let data = node.data.display().to_string();
    let out = support::process::run(
        support::process::diskv_bin(),
        ["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        std::time::Duration::from_secs(30),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{out:?}");
    assert!(out.stderr.contains("has lost its data"), "{}", out.stderr);
    assert!(!out.stdout.contains("Server listening"), "{}", out.stdout);
}
