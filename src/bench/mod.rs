//! `diskv bench`: a YCSB-style load generator (see docs/BENCHMARKS.md).
//!
//! [`store`] is the seam between the workload driver and the systems it measures:
//! diskv itself, and (behind the `compare` feature) etcd and Redis.

#[cfg(feature = "compare")]
pub mod peers;
pub mod store;
