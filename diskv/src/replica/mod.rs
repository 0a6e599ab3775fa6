//! One replica of a KV group: the process side around the state machine. It
//! opens and checks the replica's directory, serves the KV RPC, recovers a lost
//! disk from its peers, and (as leader) walks the group through configurations.

pub mod disk;
pub mod identity;
pub mod options;
mod reconfig;
mod recovery;
pub mod server;
pub mod service;
pub mod shard_snapshots;
