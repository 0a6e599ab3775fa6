//! A 3-replica KV group driven through Clerks on loopback, fsync on: 1 and 64
//! concurrent clients, 50% Get / 50% Put of 1 KB values over 1,000 keys.
//! `DISKV_BENCH_SECS` sets the measured seconds per load level (default 5).
//! Prints a table and writes `<target>/tmp/bench/clerk.json`.

use diskv::{Clerk, KvServer, ServerOptions};
use diskv_testkit::listeners;
use hdrhistogram::Histogram;
use rand::Rng;
use shardmaster::server::{ServerOptions as MasterOptions, ShardmasterServer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEYS: usize = 1000;
const VALUE: usize = 1024;

struct Level {
    clients: usize,
    ops: u64,
    secs: f64,
    gets: Histogram<u64>,
    puts: Histogram<u64>,
}

async fn run_level(masters: &[String], clients: usize, secs: u64) -> Level {
    let mut clerks = Vec::new();
    for _ in 0..clients {
        clerks.push(Clerk::new(masters.to_vec()).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Mutex::new((
        Histogram::<u64>::new(3).expect("hist"),
        Histogram::<u64>::new(3).expect("hist"),
        0u64,
    )));
    let mut tasks = Vec::new();
    for mut ck in clerks {
        let (stop, measuring, hist) = (stop.clone(), measuring.clone(), hist.clone());
        tasks.push(tokio::spawn(async move {
            let value = "v".repeat(VALUE);
            let mut local = (
                Histogram::<u64>::new(3).expect("hist"),
                Histogram::<u64>::new(3).expect("hist"),
                0u64,
            );
            while !stop.load(Ordering::Relaxed) {
                let (key, get) = {
                    let mut rng = rand::thread_rng();
                    (
                        format!("key{:04}", rng.gen_range(0..KEYS)),
                        rng.gen_bool(0.5),
                    )
                };
                let t = Instant::now();
                let ok = if get {
                    ck.get(&key).await.is_ok()
                } else {
                    ck.put(&key, &value).await.is_ok()
                };
                let us = t.elapsed().as_micros() as u64;
                if ok && measuring.load(Ordering::Relaxed) {
                    let h = if get { &mut local.0 } else { &mut local.1 };
                    let _ = h.record(us.max(1));
                    local.2 += 1;
                }
            }
            let mut all = hist.lock().expect("lock");
            let _ = all.0.add(&local.0);
            let _ = all.1.add(&local.1);
            all.2 += local.2;
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let (gets, puts, ops) = std::mem::replace(
        &mut *hist.lock().expect("lock"),
        (
            Histogram::new(3).expect("h"),
            Histogram::new(3).expect("h"),
            0,
        ),
    );
    Level {
        clients,
        ops,
        secs: elapsed,
        gets,
        puts,
    }
}

fn main() {
    let secs: u64 = std::env::var("DISKV_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // Cargo's scratch folder inside the target dir, whatever the working directory.
    let bench_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&bench_dir).expect("bench dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir_in(&bench_dir).expect("tempdir");
        let (mls, maddrs) = listeners(1).await;
        let mut mo = MasterOptions::new(dir.path().join("sm"), 0, maddrs.clone());
        mo.nshards = Some(10);
        let _master = ShardmasterServer::start(mls.into_iter().next().expect("l"), mo).await.expect("shardmaster");
        let (kls, kaddrs) = listeners(3).await;
        // All at once: a new replica waits for its peers to say the group is new too.
        let starts = kls.into_iter().enumerate().map(|(i, l)| {
            let o = ServerOptions {
                gid: 1,
                masters: maddrs.clone(),
                peers: kaddrs.clone(),
                me: i,
                dir: dir.path().join(format!("kv{i}")),
                restart: false,
                join: true,
                unreliable: false,
                nshards: None,
            };
            KvServer::start(l, o)
        });
        let servers: Vec<KvServer> = futures::future::join_all(starts)
            .await
            .into_iter()
            .map(|s| s.expect("kv"))
            .collect();
        // Load every key once.
        let mut loader = Clerk::new(maddrs.clone()).await;
        let value = "v".repeat(VALUE);
        for k in 0..KEYS {
            loader.put(&format!("key{k:04}"), &value).await.expect("load");
        }
        println!("diskv Clerk benchmark: 3-replica group on 127.0.0.1, fsync on, 50% Get / 50% Put, {VALUE} B values, {KEYS} keys, {secs} s per level");
        println!("  data dir: {}", dir.path().display());
        println!("  clients     ops/s   get p50 µs  get p99 µs   put p50 µs  put p99 µs");
        let mut json = Vec::new();
        let levels: Vec<usize> = std::env::var("DISKV_BENCH_CLIENTS")
            .ok()
            .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 64]);
        for clients in levels {
            let l = run_level(&maddrs, clients, secs).await;
            let rate = l.ops as f64 / l.secs;
            println!(
                "  {:>7} {:>9.0} {:>12} {:>11} {:>12} {:>11}",
                l.clients,
                rate,
                l.gets.value_at_quantile(0.5),
                l.gets.value_at_quantile(0.99),
                l.puts.value_at_quantile(0.5),
                l.puts.value_at_quantile(0.99)
            );
            json.push(serde_json::json!({
                "clients": l.clients, "ops_per_sec": rate,
                "get_p50_us": l.gets.value_at_quantile(0.5), "get_p99_us": l.gets.value_at_quantile(0.99),
                "put_p50_us": l.puts.value_at_quantile(0.5), "put_p99_us": l.puts.value_at_quantile(0.99),
            }));
        }
        let out = bench_dir.join("clerk.json");
        std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap_or_default()).expect("write json");
        println!("  written: {}", out.display());
        drop(servers);
    });
}
