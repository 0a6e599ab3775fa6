//! The invariants checked during every simulated run (the module of each says
//! how): (a) one chosen value per instance ([`votes`]), (b) equal states for equal
//! applied prefixes ([`digest`]); (c) no acknowledged write lost and (d) every
//! client history linearizable are checked on the clients' history at the end of
//! the run ([`crate::linearizability`]); (e) liveness by the world once faults
//! stop ([`crate::world`]).

pub mod digest;
pub mod votes;

pub use digest::Digests;
pub use votes::Votes;
