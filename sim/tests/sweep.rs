//! The sweep `make test` runs: the first `SIM_TEST_SEEDS` seeds (default 400) of
//! the simulator, on every core, every invariant checked in each. `make sim` runs
//! the long sweep (a few minutes, `SEEDS` seeds) on the release build.

use diskv_sim::sweep::sweep;

#[test]
fn every_invariant_holds_over_a_sweep_of_seeds() {
    let seeds = std::env::var("SIM_TEST_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let result = sweep(0, seeds, threads, 1, None, &|_| {});
    if let Some(r) = result.failures.first() {
        panic!(
            "seed {} failed: {}\nreplay: cargo run --release -p diskv-sim -- --seed {} --trace",
            r.seed, r.violations[0], r.seed
        );
    }
    assert_eq!(result.runs, seeds, "every seed ran");
}
