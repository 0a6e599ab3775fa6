//! The linearizability checker lives in the simulator crate (`diskv-sim`), which
//! checks every simulated run with it; the process tests use the same one.

pub use diskv_sim::linearizability::*;
