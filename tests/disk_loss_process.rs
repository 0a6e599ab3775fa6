//! Replicas that lose their disks, as real processes (6.824 Lab 5 scenarios): a
//! replica is SIGKILLed, its directory replaced by an empty one, and it is started
//! again with `--restart` (docs/REFERENCE.md §2). It must come back as a new acceptor
//! incarnation and hold the group's data again; nothing acknowledged may be lost;
//! a group of which a majority lost their disks must halt rather than serve an empty
//! state.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::kv_group::{Group, MAJORITY_LOST};
use support::line_client::{wait_serving, Client};
use support::random_crashes::{random_crashes_run, Faults};
use support::seed::{seed, Rng};

/// How long a replica may take to be admitted again after losing its disk.
const RECOVERY: Duration = Duration::from_secs(60);

/// How long a request must stay unanswered to count as "not served" (6.824: 3 s).
const NOT_SERVED: Duration = Duration::from_secs(3);

/// The value of `key` ("" if missing).
fn get(c: &mut Client, key: &str) -> String {
    let r = c.req(&format!("GET {key}"));
    let v = r
        .strip_prefix(&format!("GET {key} "))
        .unwrap_or_else(|| panic!("GET {key} answered {r:?}"));
    if v == "null" {
        String::new()
    } else {
        v.to_string()
    }
}

/// Sends `APPEND key val` and checks the reply's form.
fn append(c: &mut Client, key: &str, val: &str) {
    let r = c.req(&format!("APPEND {key} {val}"));
    assert!(
        r == format!("APPEND {key} found") || r == format!("APPEND {key} not_found"),
        "APPEND {key} {val} answered {r:?}"
    );
}

/// What the keys of a test must hold: every write goes through here.
#[derive(Default)]
struct Expect {
    values: BTreeMap<String, String>,
    writes: usize,
}

impl Expect {
    /// Appends a fresh token to `key`.
    fn append(&mut self, c: &mut Client, key: &str) {
        let tok = format!("a{};", self.writes);
        self.writes += 1;
        append(c, key, &tok);
        self.values
            .entry(key.to_string())
            .or_default()
            .push_str(&tok);
    }

    /// Puts a fresh value to `key`.
    fn put(&mut self, c: &mut Client, key: &str) {
        let v = format!("p{}", self.writes);
        self.writes += 1;
        let r = c.req(&format!("PUT {key} {v}"));
        assert!(r.starts_with(&format!("PUT {key} ")), "PUT answered {r:?}");
        self.values.insert(key.to_string(), v);
    }

    /// Every key holds exactly what was acknowledged.
    fn check(&self, c: &mut Client, when: &str) {
        for (k, v) in &self.values {
            assert_eq!(&get(c, k), v, "key {k} {when}");
        }
    }

    fn value(&self, key: &str) -> String {
        self.values.get(key).cloned().unwrap_or_default()
    }
}

/// The identity record of a recovered replica names its new incarnation.
fn assert_incarnation(dir: &Path, want: u64) {
    let path = dir.join("identity");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = paxos::fs::durable::unseal(text.as_bytes()).expect("a sealed identity");
    let id: serde_json::Value = serde_json::from_slice(json).expect("identity is JSON");
    assert_eq!(id["incarnation"], want, "{}: {text}", path.display());
    assert!(id["recovering"].is_null(), "{}: {text}", path.display());
}

/// Appends made by concurrent clients, `x{client}.{n};` each: every acknowledged one
/// must be in `v` exactly once and in each client's order; nothing else may be.
fn check_appends(v: &str, acked: &[usize], in_flight_allowed: bool) {
    let tokens: Vec<&str> = v.split(';').filter(|s| !s.is_empty()).collect();
    for (ci, &n) in acked.iter().enumerate() {
        let mine: Vec<usize> = tokens
            .iter()
            .filter_map(|t| t.strip_prefix(&format!("x{ci}.")))
            .map(|n| n.parse().expect("a token number"))
            .collect();
        let want: Vec<usize> = (0..n).collect();
        let got = if in_flight_allowed && mine.len() == n + 1 && mine[n] == n {
            &mine[..n]
        } else {
            &mine[..]
        };
        assert_eq!(got, &want[..], "client {ci}'s appends in {v:?}");
    }
    for t in &tokens {
        let ci: Option<usize> = t
            .strip_prefix('x')
            .and_then(|r| r.split('.').next())
            .and_then(|c| c.parse().ok());
        assert!(
            ci.is_some_and(|ci| ci < acked.len()),
            "unexpected token {t:?} in {v:?}"
        );
    }
}

/// 6.824 OneLostDisk: each replica in turn loses its disk while writes go on, and
/// is restarted with `--restart`. It must rejoin as incarnation 1 and hold the data:
/// after all three lost their disks, the data only exists because recovery copied
/// it, and it must survive one more replica being killed.
#[test]
fn one_lost_disk() {
    let t0 = Instant::now();
    let mut g = Group::start(3);
    let mut c = g.client("ck");
    wait_serving(&mut c);
    let mut e = Expect::default();
    for _ in 0..8 {
        e.append(&mut c, "k1");
        e.put(&mut c, "k2");
    }
    for i in 0..3 {
        e.check(&mut c, &format!("before replica {i} lost its disk"));
        g.lose_disk(i);
        e.append(&mut c, "k1");
        e.put(&mut c, "k2");
        g.spawn(i, true);
        e.append(&mut c, "k1");
        e.append(&mut c, "k1");
        g.wait_recovered(i, RECOVERY);
        assert_incarnation(&g.dir(i), 1);
    }
    e.check(&mut c, "after every replica lost its disk in turn");
    // Only recovered replicas are left: kill one, the other two must serve it all
    // (one of them leads).
    g.kill9(0);
    e.check(&mut c, "with replica 0 killed after the recoveries");
    e.append(&mut c, "k1");
    e.check(&mut c, "after a write with replica 0 killed");
    eprintln!("one_lost_disk: {:?}", t0.elapsed());
}

/// 6.824 OneLostOneDown, five replicas: replica 0 is down (disk intact) throughout;
/// replicas 1..4 lose their disks one at a time, each restarted with `--restart`
/// and admitted before the next. With 0 down, every loss leaves exactly a majority.
/// At the end replica 0 comes back with its old disk.
#[test]
fn one_lost_one_down() {
    let t0 = Instant::now();
    let mut g = Group::start(5);
    let mut c = g.client("ck");
    wait_serving(&mut c);
    let mut e = Expect::default();
    for _ in 0..8 {
        e.append(&mut c, "k1");
        e.put(&mut c, "k2");
    }
    g.kill9(0);
    for i in 1..5 {
        e.check(&mut c, &format!("before replica {i} lost its disk"));
        g.lose_disk(i);
        e.append(&mut c, "k1");
        e.put(&mut c, "k2");
        g.spawn(i, true);
        e.append(&mut c, "k1");
        e.append(&mut c, "k1");
        g.wait_recovered(i, RECOVERY);
        assert_incarnation(&g.dir(i), 1);
    }
    e.check(&mut c, "after replicas 1..4 lost their disks in turn");
    g.spawn(0, true);
    e.put(&mut c, "a");
    e.put(&mut c, "a");
    e.check(&mut c, "after replica 0 came back with its old disk");
    eprintln!("one_lost_one_down: {:?}", t0.elapsed());
}

/// 6.824 ConcurrentCrashReliable with disk loss: four clients append to one key
/// while replicas are killed and restarted, most of them losing their disks (never
/// more than one replica down or recovering at a time). Every acknowledged append is
/// in the value exactly once and in its client's order; afterwards every replica in
/// turn is killed and the value stays the same.
#[test]
fn concurrent_crash_with_disk_loss() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const CLIENTS: usize = 4;
    let t0 = Instant::now();
    let mut g = Group::start(3);
    let mut ck = g.client("checker");
    wait_serving(&mut ck);

    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for ci in 0..CLIENTS {
        let mut c = g.client(&format!("c{ci}"));
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 5 {
                append(&mut c, "k", &format!("x{ci}.{n};"));
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            n
        }));
    }
    // (victim, loses its disk)
    let faults = [(0, false), (1, true), (2, true), (0, true), (1, false)];
    for (victim, lose) in faults {
        if lose {
            g.lose_disk(victim);
        } else {
            g.kill9(victim);
        }
        std::thread::sleep(Duration::from_millis(500));
        get(&mut ck, "k");
        g.spawn(victim, true);
        if lose {
            g.wait_recovered(victim, RECOVERY);
        }
        get(&mut ck, "k");
    }
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<usize> = handles
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect();
    let vx = get(&mut ck, "k");
    check_appends(&vx, &acked, false);
    for i in 0..3 {
        g.kill9(i);
        assert_eq!(get(&mut ck, "k"), vx, "replica {i} killed");
        g.spawn(i, true);
        assert_eq!(get(&mut ck, "k"), vx, "replica {i} restarted");
    }
    eprintln!(
        "concurrent_crash_with_disk_loss: {} acknowledged appends, {:?}",
        acked.iter().sum::<usize>(),
        t0.elapsed()
    );
}

/// 6.824 Simultaneous, on the `--unreliable` network: each round starts an Append
/// from a fresh client, kills a replica while it is in flight (every other round
/// with disk loss), reads, restarts the replica and waits for the Append. Every
/// finished Append is in the value exactly once, in order. A round after a lost
/// disk starts only once that replica reports "voting again": until every instance
/// its lost incarnation may have voted in is decided, the group still needs a
/// majority of the old membership and cannot lose another replica (issue #6: the
/// report used to come as soon as the reincarnation was decided, and the next
/// round's kill then stalled the group until the killed replica came back).
#[test]
fn simultaneous() {
    const ROUNDS: usize = 6;
    let mut rng = Rng::new(seed("simultaneous"), 0);
    let t0 = Instant::now();
    let mut g = Group::start_with(3, true);
    let mut ck = g.client("checker");
    wait_serving(&mut ck);
    let mut done = 0;
    for round in 0..ROUNDS {
        let (tx, rx) = mpsc::channel();
        let mut c = g.client(&format!("append{round}"));
        std::thread::spawn(move || {
            append(&mut c, "k", &format!("x0.{round};"));
            let _ = tx.send(());
        });
        std::thread::sleep(Duration::from_millis(rng.next() % 200));
        let victim = round % 3;
        let lose = round % 2 == 0;
        if lose {
            g.lose_disk(victim);
        } else {
            g.kill9(victim);
        }
        std::thread::sleep(Duration::from_millis(300));
        check_appends(&get(&mut ck, "k"), &[done], true);
        g.spawn(victim, true);
        if lose {
            g.wait_recovered(victim, RECOVERY);
        }
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("round {round}: the Append did not finish"));
        done += 1;
    }
    check_appends(&get(&mut ck, "k"), &[done], false);
    eprintln!("simultaneous: {ROUNDS} rounds, {:?}", t0.elapsed());
}

/// Appends a few tokens to `k1` and returns the expectation (6.824 start of the
/// RejoinMix tests).
fn rejoin_start(n: usize) -> (Group, Client, Expect) {
    let g = Group::start(n);
    let mut c = g.client("ck");
    wait_serving(&mut c);
    let mut e = Expect::default();
    for _ in 0..8 {
        e.append(&mut c, "k1");
    }
    e.check(&mut c, "at the start");
    (g, c, e)
}

/// Sends a GET from a fresh client and checks that no reply comes within
/// [`NOT_SERVED`]; returns the client, whose reply is still pending.
fn assert_not_served(g: &Group, name: &str, key: &str, why: &str) -> Client {
    let mut bg = g.client(name);
    bg.send(&format!("GET {key}"));
    if let Some(r) = bg.try_recv(NOT_SERVED) {
        panic!("{why}, yet GET {key} was answered: {r:?}");
    }
    bg
}

/// 6.824 RejoinMix1, five replicas: replica 0 misses two appends (down, disk
/// intact), then 1 and 2 lose their disks and 3 and 4 go down. 0 (stale) with the
/// diskless 1 and 2 are three processes but not a quorum: a Get must not be
/// answered within 3 s. Once 3 and 4 are back, everything is served.
#[test]
fn rejoin_mix1() {
    let t0 = Instant::now();
    let (mut g, mut c, mut e) = rejoin_start(5);
    g.kill9(0);
    e.append(&mut c, "k1");
    e.append(&mut c, "k1");
    e.check(&mut c, "with replica 0 down");
    g.lose_disk(1);
    g.lose_disk(2);
    g.kill9(3);
    g.kill9(4);
    g.spawn(0, true);
    g.spawn(1, true);
    g.spawn(2, true);
    let before = e.value("k1");
    let mut bg = assert_not_served(
        &g,
        "mix1-bg",
        "k1",
        "only a stale replica and two that lost their disks are up",
    );
    g.spawn(3, true);
    g.spawn(4, true);
    e.append(&mut c, "k1");
    e.check(&mut c, "once replicas 3 and 4 are back");
    let late = bg.recv();
    assert!(
        late == format!("GET k1 {before}") || late == format!("GET k1 {}", e.value("k1")),
        "the pending GET answered {late:?}"
    );
    g.wait_recovered(1, RECOVERY);
    g.wait_recovered(2, RECOVERY);
    eprintln!("rejoin_mix1: {:?}", t0.elapsed());
}

/// RejoinMix2 (not in the 6.824 tester; ours), five replicas: a replica that lost
/// its disk is admitted by a majority that includes a stale replica, and then the
/// data must live on the formerly stale and the recovered replicas. 0 misses
/// appends (down, disk intact); 1 loses its disk and 2 goes down; 0 (stale) and 1
/// (diskless) come back with 3 and 4 up: 0, 3 and 4 admit 1. Then 2 comes back and
/// 3 and 4, the only replicas that never missed anything, are killed: 0, 1 and 2
/// must serve every acknowledged append.
#[test]
fn rejoin_mix2() {
    let t0 = Instant::now();
    let (mut g, mut c, mut e) = rejoin_start(5);
    g.kill9(0);
    for _ in 0..4 {
        e.append(&mut c, "k1");
    }
    g.lose_disk(1);
    g.kill9(2);
    g.spawn(0, true);
    g.spawn(1, true);
    g.wait_recovered(1, RECOVERY);
    e.append(&mut c, "k1");
    e.check(&mut c, "after replica 1 was admitted");
    g.spawn(2, true);
    g.kill9(3);
    g.kill9(4);
    e.check(&mut c, "on replicas 0 (was stale), 1 (recovered) and 2");
    e.append(&mut c, "k1");
    e.check(&mut c, "after a write on replicas 0, 1 and 2");
    eprintln!("rejoin_mix2: {:?}", t0.elapsed());
}

/// 6.824 RejoinMix3, five replicas: 1 and 2 go down (disks intact) and miss many
/// appends; 0 then loses its disk; 1, 2 and 0 come back. Replica 0 must not change
/// its mind about instances it voted in before: two concurrent Appends end up as
/// prior + x1 + x2 or prior + x2 + x1, never anything else.
#[test]
fn rejoin_mix3() {
    let t0 = Instant::now();
    let (mut g, mut c, mut e) = rejoin_start(5);
    g.kill9(1);
    g.kill9(2);
    for _ in 0..30 {
        e.append(&mut c, "k1");
    }
    g.lose_disk(0);
    std::thread::sleep(Duration::from_millis(50));
    g.spawn(1, true);
    g.spawn(2, true);
    g.spawn(0, true);
    let prior = e.value("k1");
    let writers: Vec<_> = ["x1;", "x2;"]
        .into_iter()
        .enumerate()
        .map(|(n, x)| {
            let mut w = g.client(&format!("mix3-w{n}"));
            let h = std::thread::spawn(move || append(&mut w, "k1", x));
            std::thread::sleep(Duration::from_millis(10));
            h
        })
        .collect();
    for w in writers {
        w.join().expect("append thread");
    }
    let got = get(&mut c, "k1");
    assert!(
        got == format!("{prior}x1;x2;") || got == format!("{prior}x2;x1;"),
        "after the concurrent appends k1 = {got:?}, prior {prior:?}"
    );
    g.wait_recovered(0, RECOVERY);
    eprintln!("rejoin_mix3: {:?}", t0.elapsed());
}

/// Two of three replicas lose their disks at once and restart with `--restart`:
/// nothing guarantees the acknowledged data survives elsewhere, so they must halt
/// with an error that says so, and the group must not serve (least of all an empty
/// state).
#[test]
fn majority_lost_disks_halts() {
    let t0 = Instant::now();
    let mut g = Group::start(3);
    let mut c = g.client("ck");
    wait_serving(&mut c);
    let mut e = Expect::default();
    e.put(&mut c, "k");
    e.check(&mut c, "before the loss");
    drop(c);
    g.lose_disk(1);
    g.lose_disk(2);
    g.spawn(1, true);
    g.spawn(2, true);
    for i in [1, 2] {
        let p = g.server(i);
        let status = p
            .wait_exit(RECOVERY)
            .unwrap_or_else(|| panic!("replica {i} did not halt; stderr:\n{}", p.stderr_tail(20)));
        assert!(!status.success(), "replica {i} halted with {status}");
        assert!(
            p.stderr().contains(MAJORITY_LOST),
            "replica {i} halted without saying why:\n{}",
            p.stderr_tail(20)
        );
    }
    let mut bg = assert_not_served(&g, "halted", "k", "a majority of the group lost its disks");
    drop(bg.try_recv(Duration::from_millis(1)));
    eprintln!("majority_lost_disks_halts: {:?}", t0.elapsed());
}

/// The randomized linearizability run of the group (kv_group_process.rs), with half
/// of its SIGKILLs also losing the replica's disk. Seeded; `DISKV_TEST_SEED` replays.
#[test]
fn random_crashes_with_disk_loss_are_linearizable() {
    random_crashes_run(
        Faults {
            unreliable: false,
            disk_loss_percent: 50,
        },
        seed("random_crashes_with_disk_loss_are_linearizable"),
    );
}
