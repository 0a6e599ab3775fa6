//! A deterministic simulator of whole diskv replica groups, in the manner of
//! FoundationDB's simulation and TigerBeetle's VOPR: one seeded thread runs the
//! real code — the Paxos core with its durability rules, the segment log, the
//! apply side of the replicated state machine, the KV state machine with its
//! checkpoint files, identity records, quarantine, probing and disk-loss recovery
//! — on a simulated network ([`net`]) and simulated disks (`paxos::fs::SimFs`),
//! and draws every source of nondeterminism (delays, drops, crashes, what a crash
//! keeps of unsynced data, clock drift, which fault strikes when) from the seed.
//! The same seed replays the same run, event for event.
//!
//! Every run checks the invariants listed in [`check`]; a failing seed prints a
//! one-line command that replays it with a full trace.
//!
//! Run it with `make sim` (a sweep of a few minutes), `SEEDS=100000 make sim` for
//! long runs, or `cargo run --release -p diskv-sim -- --seed N --trace` to replay.

pub mod check;
pub mod client;
pub mod clock;
pub mod faults;
pub mod linearizability;
pub mod master_client;
pub mod net;
pub mod packet;
pub mod replica;
pub mod sweep;
pub mod trace;
pub mod world;

pub use world::{Report, RunOptions, World};

/// Runs one seed to the end.
pub fn run(opts: &RunOptions) -> Report {
    World::new(opts).run()
}
