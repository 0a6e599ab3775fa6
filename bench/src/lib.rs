//! `diskv bench`: a YCSB-style load generator (see docs/BENCHMARKS.md).
//!
//! - [`store`] is the seam between the driver and the systems it measures: diskv
//!   ([`diskv_store::DiskvStore`], one Clerk per client) and, from `bench/src/peers/`,
//!   etcd and Redis.
//! - [`driver::run_workload`] runs one [`spec::RunSpec`] (a YCSB workload at one
//!   client count) against any `&dyn Store` and returns a [`report::RunReport`]:
//!   per operation kind, count, ops/s, p50/p95/p99/max latency (HDR histograms
//!   merged over clients) and errors. It connects the clients, loads the records
//!   if asked, warms up, then measures; failed and timed-out operations are
//!   counted, never fatal.
//! - [`workload`], [`distribution`] and [`keys`]: the six core workloads, YCSB's
//!   scrambled zipfian / latest / uniform choices, `user<12 digits>` keys and the
//!   key space that inserts grow.
//! - [`target`]: `--masters` or a local cluster spawned with `--spawn GxR|serve`.
//! - [`scale`]: `diskv bench scale`, memory, disk and restart time of one node
//!   as its data grows.
//! - [`sweep`]: the preset matrices (`diskv bench sweep --preset quick|full`),
//!   [`figures`] and [`plot`] their SVG charts, [`doc`] the tables of
//!   docs/BENCHMARKS.md.
//!
//! # Adding a store
//!
//! Implement [`store::Store`] (a label and `connect`) and [`store::StoreClient`]
//! (read, update, insert, scan), then:
//!
//! - one run: `run_workload(&my_store, &RunSpec { workload: Workload::B, ..RunSpec::default() })`;
//! - from the CLI: return it from `extra_stores` in `src/cmd/bench.rs` (e.g. behind
//!   a `--compare` flag): `diskv bench` then runs every workload and client count on
//!   it after diskv, into the same results, tables and charts;
//! - in a sweep: [`sweep::run_sweep`] takes the extra stores and runs them on the
//!   first shape's run list (workload A at each client count, then B-F).

#[cfg(feature = "compare")]
pub mod compare;
pub mod diskv_store;
pub mod distribution;
pub mod doc;
pub mod driver;
pub mod error;
pub mod figures;
pub mod keys;
pub mod machine;
#[cfg(feature = "compare")]
pub mod peers;
pub mod plot;
pub mod report;
pub mod scale;
pub mod spec;
pub mod store;
pub mod sweep;
pub mod target;
pub mod workload;

pub use driver::run_workload;
pub use report::RunReport;
pub use spec::{Limit, RunSpec};
pub use store::Store;
pub use workload::Workload;
