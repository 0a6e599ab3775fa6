//! A randomized sharding test checked for linearizability: concurrent clients run
//! Get / Put / Append / Swap / Delete / Scan (line protocol) and Clear (a Clerk)
//! on keys spread over every shard, while shards Move and groups Leave and Join at
//! random and replicas of both groups of each handoff are SIGKILLed and restarted
//! with `--restart`. The whole history, Scans and Clears expanded per key, must be
//! linearizable. Seeded: the seed is printed; `DISKV_TEST_SEED=<seed>` replays the
//! test's choices (not the timing of the processes).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::cluster::ShardCluster;
use support::line_client::wait_serving;
use support::line_ops::{op_line, parse_reply};
use support::linearizability::{check, History, Op, Ret};
use support::seed::{seed, Rng};

const NSHARDS: usize = 6;
const KEYS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
const CLIENTS: usize = 4;
/// Cap per client, so the history stays small enough to check.
const MAX_OPS: usize = 200;
const CHAOS: Duration = Duration::from_secs(15);
/// How long outstanding operations may take once the chaos stops.
const DRAIN: Duration = Duration::from_secs(30);

/// One client's random operation `j`.
fn random_op(rng: &mut Rng, ci: usize, j: usize) -> Op {
    let key = *rng.pick(&KEYS);
    let val = format!("c{ci}.{j};");
    match rng.below(100) {
        0..=24 => Op::get(key),
        25..=39 => Op::put(key, val),
        40..=64 => Op::append(key, val),
        65..=74 => Op::swap(key, val),
        75..=84 => Op::delete(key),
        _ => {
            let (a, b) = (*rng.pick(&KEYS), *rng.pick(&KEYS));
            Op::scan(a.min(b), a.max(b))
        }
    }
}

/// A line-protocol client thread: random operations until `stop`, each recorded.
fn client_thread(
    cl: &ShardCluster,
    h: &History,
    stop: &Arc<AtomicBool>,
    seed: u64,
    ci: usize,
) -> std::thread::JoinHandle<(usize, usize)> {
    let mut c = cl.client(&format!("c{ci}"));
    let (h, stop) = (h.clone(), stop.clone());
    let mut rng = Rng::new(seed, ci as u64 + 1);
    std::thread::spawn(move || {
        let (mut returned, mut unknown) = (0, 0);
        let mut stopped_at: Option<Instant> = None;
        for j in 0..MAX_OPS {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(rng.below(120)));
            let op = random_op(&mut rng, ci, j);
            let id = h.invoke(ci as u64, op.clone());
            c.send(&op_line(&op));
            let first = loop {
                if let Some(l) = c.try_recv(Duration::from_millis(100)) {
                    break Some(l);
                }
                if stop.load(Ordering::Relaxed)
                    && stopped_at.get_or_insert_with(Instant::now).elapsed() > DRAIN
                {
                    break None;
                }
            };
            let Some(first) = first else {
                // Unknown outcome; the client is killed when dropped.
                h.timeout(id);
                unknown += 1;
                break;
            };
            let ret = parse_reply(&mut c, &op, &first);
            h.ret(id, ret);
            returned += 1;
        }
        (returned, unknown)
    })
}

/// A Clerk thread that clears every shard now and then.
fn clear_thread(
    masters: String,
    h: &History,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let (h, stop) = (h.clone(), stop.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            let mut clerk = diskv::Clerk::new(vec![masters]).await;
            let mut cleared = 0;
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let id = h.invoke(CLIENTS as u64, Op::Clear);
                match tokio::time::timeout(DRAIN, clerk.clear()).await {
                    Ok(Ok(())) => {
                        h.ret(id, Ret::Done);
                        cleared += 1;
                    }
                    Ok(Err(e)) => panic!("Clear failed: {e}"),
                    Err(_) => {
                        h.timeout(id);
                        break;
                    }
                }
            }
            cleared
        })
    })
}

/// One random reconfiguration, then SIGKILLs one replica of each group of the
/// handoff it starts and restarts them. Returns what it did.
fn chaos_step(cl: &mut ShardCluster, rng: &mut Rng, joined: &mut Vec<u64>) -> String {
    let latest = cl.query().expect("query");
    // A left group may join again by itself: a replica started with `--join` that
    // becomes leader for the first time joins its group if the latest config lacks
    // it (docs/REFERENCE.md §2). So `joined` is what the test asked for, not a check.
    let (from, to, what) = match rng.below(10) {
        0 | 1 if joined.len() == 3 => {
            let gid = joined.remove(rng.below(3) as usize);
            cl.admin_ok(&["leave", &gid.to_string()]);
            (gid, *rng.pick(joined), format!("leave {gid}"))
        }
        2 | 3 if joined.len() < 3 => {
            let gid = (1..=3).find(|g| !joined.contains(g)).expect("a left group");
            let from = *rng.pick(joined);
            cl.join(gid);
            joined.push(gid);
            (from, gid, format!("join {gid}"))
        }
        _ => {
            let shard = rng.below(NSHARDS as u64) as usize;
            let to = *rng.pick(joined);
            cl.move_shard(shard, to);
            (latest.shards[shard], to, format!("move {shard} {to}"))
        }
    };
    std::thread::sleep(Duration::from_millis(rng.below(300)));
    let mut victims = vec![(from, rng.below(3) as usize)];
    if to != from {
        victims.push((to, rng.below(3) as usize));
    }
    for &(gid, i) in &victims {
        cl.kill9(gid, i);
    }
    std::thread::sleep(Duration::from_millis(200 + rng.below(400)));
    for &(gid, i) in &victims {
        cl.restart(gid, i);
    }
    std::thread::sleep(Duration::from_millis(300 + rng.below(400)));
    format!("{what}, killed {victims:?}")
}

#[test]
fn random_reconfigurations_and_crashes_are_linearizable() {
    let t0 = Instant::now();
    let seed = seed("random_reconfigurations_and_crashes_are_linearizable");
    let mut cl = ShardCluster::start(NSHARDS);
    for gid in 1..=3 {
        cl.start_group(gid, 3, false);
    }
    cl.wait_groups(&[1, 2, 3]);
    let mut warm = cl.client("warm");
    wait_serving(&mut warm);
    drop(warm);
    let shards: std::collections::BTreeSet<usize> = KEYS.iter().map(|k| cl.shard_of(k)).collect();
    assert!(
        shards.len() >= 4,
        "the keys fall in too few shards: {shards:?}"
    );

    let h = History::new();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|ci| client_thread(&cl, &h, &stop, seed, ci))
        .collect();
    let clears = clear_thread(cl.masters.clone(), &h, &stop);

    let mut rng = Rng::new(seed, 0);
    let mut joined = vec![1, 2, 3];
    let mut steps = 0;
    let chaos = Instant::now();
    while chaos.elapsed() < CHAOS {
        let did = chaos_step(&mut cl, &mut rng, &mut joined);
        eprintln!("chaos {steps} at {:?}: {did}", chaos.elapsed());
        steps += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut returned, mut unknown) = (0, 0);
    for t in clients {
        let (r, u) = t.join().expect("client thread");
        returned += r;
        unknown += u;
    }
    let cleared = clears.join().expect("clear thread");

    // Final reads, in the history: every acknowledged write must show.
    let mut c = cl.client("final");
    let mut finals = KEYS.iter().map(|k| Op::get(*k)).collect::<Vec<_>>();
    finals.push(Op::scan(KEYS[0], KEYS[KEYS.len() - 1]));
    for op in finals {
        let id = h.invoke(100, op.clone());
        c.send(&op_line(&op));
        let first = c.recv();
        let ret = parse_reply(&mut c, &op, &first);
        eprintln!("final {op:?}: {ret:?}");
        h.ret(id, ret);
    }

    let t_check = Instant::now();
    let verdict = check(&h);
    eprintln!(
        "random_reconfigurations_and_crashes_are_linearizable: {} ops ({returned} returned, \
         {unknown} unknown, {cleared} clears), {steps} chaos steps, check {:?}, total {:?}",
        h.len(),
        t_check.elapsed(),
        t0.elapsed()
    );
    assert!(
        verdict.is_ok(),
        "seed {seed}: {verdict}\nhistory: {:#?}",
        h.operations()
    );
    assert!(
        returned >= CLIENTS * 10,
        "seed {seed}: too few operations returned: {returned}"
    );
    assert!(cleared >= 1, "seed {seed}: no Clear completed");
}
