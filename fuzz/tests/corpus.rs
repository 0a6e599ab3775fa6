//! Every fuzz target over its whole corpus (seeds and the inputs of past findings,
//! which are regression tests), then a short mutation run bounded by iterations
//! and by time: part of `make test`. Long runs: `make fuzz`.

use diskv_fuzz::runner::{run_target, Options};
use std::time::{Duration, Instant};

/// Mutants per target, and the most time each may take (whichever comes first):
/// at most 20 s for all targets, about 10 s on two cores in a debug build.
const MUTANTS: u64 = 100_000;
const SECONDS_PER_TARGET: f64 = 1.5;

#[test]
fn every_target_passes_its_corpus_and_a_short_mutation_run() {
    let started = Instant::now();
    let opts = Options {
        duration: Some(Duration::from_secs_f64(SECONDS_PER_TARGET)),
        iterations: Some(MUTANTS),
        seed: 18,
        // Debug builds are slow; a hang is still a hang at this deadline.
        deadline: Duration::from_secs(10),
        ..Options::default()
    };
    let mut failed = Vec::new();
    for target in diskv_fuzz::all() {
        let report = run_target(target, &opts);
        println!("{report}");
        assert!(report.corpus > 0, "{}: empty corpus", target.name);
        if report.finding.is_some() {
            failed.push(report.to_string());
        }
    }
    println!("all targets in {:.1} s", started.elapsed().as_secs_f64());
    assert!(failed.is_empty(), "fuzz failures:\n{}", failed.join("\n"));
}

#[test]
fn the_committed_seeds_are_the_ones_the_encoders_make() {
    let corpus = diskv_fuzz::crate_dir().join("corpus");
    for target in diskv_fuzz::all() {
        let files = diskv_fuzz::runner::read_corpus(&corpus.join(target.name));
        for (name, bytes) in (target.seeds)() {
            let file = format!("seed-{name}");
            let found = files.iter().find(|(n, _)| *n == file);
            // Transport seeds hold a tarpc deadline (time left), which moves.
            if target.name != "transport" {
                assert_eq!(
                    found.map(|(_, b)| b),
                    Some(&bytes),
                    "{}/{file} is stale: run `diskv-fuzz --write-seeds`",
                    target.name
                );
            } else {
                assert!(found.is_some(), "{}/{file} missing", target.name);
            }
        }
    }
}
