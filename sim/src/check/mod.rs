//! The invariants checked during every simulated run (the module of each says
//! how): (a) one chosen value per instance, in each group ([`votes`]), (b) equal
//! states for equal applied prefixes ([`digest`]); (c) no acknowledged write lost
//! and (d) every KV client history linearizable are checked on the clients'
//! history at the end of the run ([`crate::linearizability`]); (e) liveness by the
//! world once faults stop ([`crate::world`]); (f) the shardmaster's
//! configurations are the clients' writes, each once, in real-time order, every
//! answer one of them, each rebalanced by the rules ([`configs`], [`balance`]).

pub mod balance;
pub mod configs;
pub mod digest;
pub mod votes;

pub use configs::ConfigLog;
pub use digest::Digests;
pub use votes::Votes;
