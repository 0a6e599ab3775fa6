//! The randomized linearizability run of one KV group as real processes: clients
//! send random operations while replicas are SIGKILLed (some losing their disks),
//! restarted and SIGSTOPped; the history must be linearizable
//! ([`super::workload`]).

use super::kv_group::Group;
use super::line_client::wait_serving;
use super::seed::Rng;
use super::workload::{Outcome, Workload};
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
    const CLIENTS: usize = 4;
    const CHAOS: Duration = Duration::from_secs(8);
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

    let clients = (0..CLIENTS)
        .map(|ci| g.client(&format!("{tag}-c{ci}")))
        .collect();
    let work = Workload::start(
        &format!("random_crashes_are_linearizable[{tag}]"),
        clients,
        seed,
    );

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
    let chaos_end = Instant::now();
    let last = g.client(&format!("{tag}-final"));
    let Outcome {
        returned,
        timed_out,
        ops,
    } = work.finish(last, seed);
    let drain = chaos_end.elapsed();
    eprintln!(
        "random_crashes_are_linearizable[{tag}]: {ops} ops ({returned} returned, {timed_out} \
         unknown, +3 final GETs), {kills} SIGKILLs ({lost} with disk loss), {stops} SIGSTOPs, warm-up {warmup:?}, \
         drain and check {drain:?}, run {:?}",
        t0.elapsed()
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
