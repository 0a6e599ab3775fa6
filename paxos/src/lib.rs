//! Durable multi-Paxos for diskv's replica groups and shardmaster.
//!
//! The crate has one idea: **the protocol is a plain state machine, and everything
//! that touches the world is outside it.**
//!
//! - [`core::Replica`] is the sans-I/O protocol: acceptor, leader (a distinguished
//!   proposer that runs phase 1 once for the whole log suffix, then one phase-2
//!   round per instance, batching commands and keeping up to `window` instances in
//!   flight) and learner. It takes messages, ticks and requests and emits a
//!   [`core::Ready`]: records to persist, messages to send, decided instances.
//! - [`membership`] says which acceptor incarnation votes in which instance: a
//!   type the core, its records and its messages share.
//! - [`storage`] keeps the records: an append-only log of checksummed segment
//!   files with group commit ([`storage::SegmentLog`]), and an in-memory store for
//!   tests.
//! - [`fs`] is the file I/O of all durable state behind one trait: the machine's
//!   file system ([`fs::OsFs`]) or a simulated disk that loses, at a crash, exactly
//!   what was not synced ([`fs::SimFs`]).
//! - [`transport`] moves messages: tarpc over TCP with a postcard codec.
//! - [`node::PaxosNode`] drives a replica on tokio and offers the application API:
//!   the 6.824 calls (`start_instance`, `status`, `done`, `max`, `min`), command
//!   proposals, linearizable reads (from the leader's lease, or read-index), and
//!   the ordered stream of decisions.
//! - [`sim`] runs whole groups deterministically from a seed, with a network that
//!   drops, delays, duplicates, reorders and partitions, and replicas that crash.
//!
//! # Persist before reply, and leases: the rules that must never break
//!
//! 1. An acceptor's **promise** (`Record::Promised`) is durable — fdatasync has
//!    returned — before the `Promise` message that reveals it leaves the process.
//! 2. An acceptor's **accepted value** (`Record::Accepted`, which also carries the
//!    implied promise) is durable before the `Accepted` message leaves the process.
//! 3. The core decides, record by record and message by message, what may leave
//!    before what is durable (`core/durability.rs`), and every driver — the tokio
//!    one and the simulator — carries out its [`core::Ready`] mechanically: send
//!    `messages` at once; append `records` after every earlier Ready's, syncing at
//!    once if `sync`; send `after_sync` only once every record appended so far is
//!    durable; report durability back with [`core::Replica::on_durable`]. An
//!    acceptor's message (`Promise`, `Accepted`, `Reject`) waits for every
//!    `Promised`, `Accepted` and `Membership` record before it, so a repeated reply
//!    needs no new record. Exceptions: a leader's `Accept` and `Heartbeat` reveal no
//!    acceptor state, so they leave at once, but only once a promise at or above
//!    their ballot is durable on this replica (a restarted leader never reuses it);
//!    a follower's `HeartbeatAck` reveals none either and leaves at once.
//! 4. Messages a replica sends to itself go through the same gate: the leader's own
//!    accept counts towards a majority only after its record is durable.
//! 5. Decisions need no sync of their own: a decided value is already durable on a
//!    majority. `Committed`, `Learned` and `Forgotten` records only speed up
//!    restarts (a Ready holding only those has `sync == false`); if they are lost,
//!    the value is learned again from the peers. A `Committed { upto }` record is
//!    handed out only once the value records of every instance below `upto` are
//!    durable, so it can never outlive them.
//! 6. New log files and deletions are made durable with an fsync of their
//!    directory before anything depends on them.
//! 7. A log that fails its checksum anywhere but a torn tail is corrupt: the log
//!    refuses to open (the replica must not vote with forgotten promises); the
//!    application moves the directory aside ([`quarantine`]) and recovers from its
//!    peers as a lost disk. An empty directory asks its peers first ([`probe`]).
//! 8. A replica that lost its disk is a new acceptor incarnation: it votes only in
//!    instances after its reincarnation (decided through the log) plus the window,
//!    and every vote carries its incarnation (see [`membership::Membership`]). Ballots
//!    carry it too, so no two incarnations share a ballot. An operator's
//!    membership change (add, promote, remove, move a seat) takes effect the same
//!    way, one at a time; a new or moved seat is claimed by an empty process
//!    exactly as a lost disk comes back.
//! 9. At start, the log fdatasyncs its last segment and fsyncs its directory and
//!    that directory's parent: what a killed process left in the page cache
//!    (appends, segments created or deleted, the log folder itself) is made durable
//!    before anything acts on it.
//!
//! 10. **Leader leases rest on one clock assumption**: every replica's ticks come
//!     at a rate within ρ = [`core::MAX_CLOCK_DRIFT_PERCENT`] (10%) of nominal —
//!     the driver counts them from a monotonic clock and catches up with ticks a
//!     stall made it miss before the core handles anything else
//!     ([`core::Replica::advance`]) — and every replica of a group has the same
//!     `election_ticks` and tick length. A replica that acknowledges a leader's
//!     heartbeat promises no other candidate's ballot, not even its own, for
//!     `election_ticks` of its ticks (the promise guard), and a restarted replica
//!     (a crash, a lost disk) in a group of several promises no one for its
//!     first `election_ticks`. A
//!     leader whose heartbeat round sent at its tick `t` was acknowledged by a
//!     majority holds a lease until its tick `t + lease_ticks`
//!     ([`core::CoreConfig::lease_ticks`]: the guard on the fastest clock outlasts
//!     the lease on the slowest), and while it holds one (and has decided every
//!     instance its election recovered) it answers reads at once, without a
//!     round trip; any change of role, or a higher ballot seen, ends it. Without
//!     a lease, reads take read-index, which assumes nothing about clocks. A
//!     clock outside the bound can make a lease read stale, never a decision
//!     unsafe: rules 1–9 and the agreement of the log assume nothing about time.
//!
//! The unit tests in `core/tests/persistence.rs` check rules 1–2 record by record,
//! `core/tests/lease.rs` rule 10, and the simulator checks agreement and
//! linearizability over thousands of seeded runs with crashes, each replica's
//! clock at its own rate within ρ.

pub mod core;
pub mod error;
pub mod fs;
pub mod host;
pub mod membership;
pub mod message;
pub mod node;
pub mod probe;
pub mod quarantine;
pub mod record;
pub mod recovery;
pub mod replica_dir;
pub mod rsm;
pub mod sim;
pub mod storage;
pub mod transport;
pub mod types;

/// The byte decoders the crate keeps private, for the fuzz targets of the
/// `diskv-fuzz` crate only: not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::storage::frame::{
        encode as encode_frame, parse as parse_frame, EncodeError, FrameDefect, HEADER_LEN,
        MAX_FRAME_PAYLOAD,
    };
}

pub use error::PaxosError;
pub use message::{Envelope, Message, PromisedSlot};
pub use node::{Decision, NodeOptions, PaxosNode};
pub use record::Record;
pub use storage::{Storage, StorageError};
pub use transport::Transport;
pub use types::{Ballot, Command, Entry, NodeId, Reincarnation, Slot};
