//! The randomized linearizability run of one KV group as real processes: clients
//! send random operations while replicas are SIGKILLed (some losing their disks),
//! restarted and SIGSTOPped; the history must be linearizable
//! ([`super::linearizability::check`]).

use super::kv_group::Group;
use super::line_client::wait_serving;
use super::line_ops::{op_line, parse_reply};
use super::linearizability::{check, History, Op};
use super::seed::Rng;
use std::time::{Duration, Instant};

/// The faults of one run besides SIGKILL + restart and SIGSTOP.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Replicas drop requests and replies (`--unreliable`).
    pub unreliable: bool,
    /// Percent of the SIGKILLs that also lose the replica's disk (0 = none).
    pub disk_loss_percent: u64,
}

/// One run of `random_crashes_are_linearizable`.
pub fn random_crashes_run(faults: Faults, seed: u64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const CLIENTS: usize = 4;
    const KEYS: [&str; 3] = ["x", "y", "z"];
    /// Cap per client, so the history stays small enough to check.
    const MAX_OPS: usize = 100;
    const CHAOS: Duration = Duration::from_secs(8);
    /// How long outstanding operations may take once the chaos stops.
    const DRAIN: Duration = Duration::from_secs(15);
    /// How long a replica may take to be admitted after losing its disk.
    const RECOVERY_LIMIT: Duration = Duration::from_secs(60);

    let net = if faults.unreliable {
        "unreliable"
    } else {
        "reliable"
    };
    let tag = if faults.disk_loss_percent > 0 {
        format!("{net}+disk-loss")
    } else {
        net.to_string()
    };
    eprintln!("random_crashes_are_linearizable[{tag}]: seed {seed}");
    let t0 = Instant::now();
    let mut g = Group::start_with(3, faults.unreliable);
    let mut warm = g.client(&format!("{tag}-warm"));
    wait_serving(&mut warm);
    drop(warm);
    let warmup = t0.elapsed();

    let h = History::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for ci in 0..CLIENTS {
        let mut c = g.client(&format!("{tag}-c{ci}"));
        let stop = stop.clone();
        let h = h.clone();
        let mut rng = Rng::new(seed, ci as u64 + 1);
        handles.push(std::thread::spawn(move || {
            let (mut returned, mut timed_out) = (0usize, 0usize);
            let mut stopped_at: Option<Instant> = None;
            for j in 0..MAX_OPS {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // Spread the operations over the chaos.
                std::thread::sleep(Duration::from_millis(rng.next() % 150));
                let key = KEYS[(rng.next() % KEYS.len() as u64) as usize];
                let val = format!("c{ci}.{j};");
                let op = match rng.next() % 100 {
                    0..=29 => Op::get(key),
                    30..=49 => Op::put(key, val),
                    50..=74 => Op::append(key, val),
                    75..=89 => Op::swap(key, val),
                    _ => Op::delete(key),
                };
                let line = op_line(&op);
                let id = h.invoke(ci as u64, op.clone());
                c.send(&line);
                let reply = loop {
                    if let Some(l) = c.try_recv(Duration::from_millis(100)) {
                        break Some(l);
                    }
                    if stop.load(Ordering::Relaxed) {
                        let at = *stopped_at.get_or_insert_with(Instant::now);
                        if at.elapsed() > DRAIN {
                            break None;
                        }
                    }
                };
                match reply {
                    Some(l) => {
                        h.ret(id, parse_reply(&mut c, &op, &l));
                        returned += 1;
                    }
                    None => {
                        // Unknown outcome; the client is killed when dropped.
                        h.timeout(id);
                        timed_out += 1;
                        break;
                    }
                }
            }
            drop(c);
            (returned, timed_out)
        }));
    }

    let mut rng = Rng::new(seed, 0);
    let (mut kills, mut stops, mut lost) = (0, 0, 0);
    let chaos = Instant::now();
    while chaos.elapsed() < CHAOS {
        // At most one replica down, stopped or recovering at any time.
        let victim = (rng.next() % 3) as usize;
        let lose_disk = rng.next() % 100 < faults.disk_loss_percent;
        if lose_disk {
            g.lose_disk(victim);
            lost += 1;
        } else {
            g.kill9(victim);
        }
        kills += 1;
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 400));
        g.spawn(victim, true);
        if lose_disk {
            // One disk at a time: the next fault only once this one is admitted.
            g.wait_recovered(victim, RECOVERY_LIMIT);
        }
        std::thread::sleep(Duration::from_millis(500 + rng.next() % 300));
        let paused = (victim + 1 + (rng.next() % 2) as usize) % 3;
        g.sigstop(paused);
        stops += 1;
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 400));
        g.sigcont(paused);
        std::thread::sleep(Duration::from_millis(500 + rng.next() % 300));
    }
    stop.store(true, Ordering::Relaxed);
    let chaos_end = Instant::now();
    let mut returned = 0;
    let mut timed_out = 0;
    for hd in handles {
        let (r, t) = hd.join().expect("client thread");
        returned += r;
        timed_out += t;
    }

    let drain = chaos_end.elapsed();
    // Final reads, in the history: every acknowledged write must show.
    let mut c = g.client(&format!("{tag}-final"));
    for key in KEYS {
        let op = Op::get(key);
        let id = h.invoke(100, op.clone());
        let l = c.req(&op_line(&op));
        let r = parse_reply(&mut c, &op, &l);
        eprintln!("random_crashes_are_linearizable[{tag}]: final {l}");
        h.ret(id, r);
    }
    drop(c);

    let t_check = Instant::now();
    let verdict = check(&h);
    eprintln!(
        "random_crashes_are_linearizable[{tag}]: {} ops ({returned} returned, {timed_out} \
         unknown, +3 final GETs), {kills} SIGKILLs ({lost} with disk loss), {stops} SIGSTOPs, warm-up {warmup:?}, \
         drain {drain:?}, check {:?}, run {:?}",
        h.len(),
        t_check.elapsed(),
        t0.elapsed()
    );
    assert!(
        verdict.is_ok(),
        "[{tag}] seed {seed}: {verdict}\nhistory: {:#?}",
        h.operations()
    );
    // Not vacuous. With --unreliable every lost request or reply costs the Clerk a
    // 3 s attempt timeout (clerk.rs ATTEMPT), so only tens of operations get through.
    let floor = if faults.unreliable {
        CLIENTS
    } else {
        CLIENTS * 10
    };
    assert!(
        returned >= floor,
        "[{tag}] seed {seed}: too few operations returned: {returned} < {floor}"
    );
}
